//! callbackd: stores callback commitments and publishes them to RabbitMQ when they mature.
//! See `ARCHITECTURE.md` for the map.

pub mod amqp;
pub mod api;
pub mod cli;
pub mod config;
pub mod console;
pub mod dispatch;
pub mod domain;
pub mod instruments;
pub mod liveness;
pub mod maintenance;
pub mod outcomes;
pub mod startup;
pub mod store;
pub mod systemd;
pub mod telemetry;
pub mod wire;
