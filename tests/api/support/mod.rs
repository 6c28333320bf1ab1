//! What the tests use that is not itself a test: a real AMQP consumer standing in for a
//! dialer.

pub mod consumer;
