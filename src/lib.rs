//! callbackd: stores callback commitments and publishes them to RabbitMQ when they mature.
//! See `ARCHITECTURE.md` for the map.

pub mod api;
pub mod cli;
pub mod config;
pub mod domain;
pub mod startup;
pub mod store;
pub mod telemetry;
