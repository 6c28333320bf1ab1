//! callbackd: stores callback commitments and publishes them to RabbitMQ when they mature.
//! See `ARCHITECTURE.md` for the map.

pub mod amqp;
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod console;
pub mod customer;
pub mod cxone;
pub mod dispatch;
pub mod domain;
pub mod events;
pub mod http;
pub mod instruments;
pub mod liveness;
pub mod maintenance;
pub mod startup;
pub mod store;
pub mod systemd;
pub mod telemetry;
pub mod wire;
