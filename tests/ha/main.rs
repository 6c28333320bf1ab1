//! The secure and highly available deployment, on servers each test starts beside the
//! machine's own: TLS on both links. These start and stop extra PostgreSQL and RabbitMQ
//! instances, so they are `#[ignore]`d in `cargo test` and run serially in their own CI step:
//!
//! ```sh
//! cargo test --test ha -- --ignored --test-threads=1 --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod cluster;
mod failover;
mod pki;
mod servers;
mod tls;
