//! callbackd's test kit, shared by the integration tests (`tests/api`, `tests/ha`) and the
//! benchmark suite (`benches/suite`): each piece of set-up written once.
//!
//! - [`app`]: callbackd spawned in-process on a fresh, randomly named database and its own
//!   exchange and queues ([`TestApp`]), dropped with it.
//! - [`fixtures`]: the seeded directory, request bodies, times.
//! - [`http`]: talking to the spawned app over real HTTP.
//! - [`db`]: reading and writing the test's database directly.
//! - [`broker`]: RabbitMQ set-up as callbackd does it (exchange, bound queues), and what a
//!   dialer sends back (outcomes).
//! - [`tap`]: a real AMQP consumer standing in for a dialer.
//! - [`daemon`]: the `callbackd` binary as a child process.
//! - [`cli`]: the `callbackd` binary's commands.
//!
//! Nothing here runs without the services: it is a dev-dependency only, and `cargo test
//! --lib` does not use it.

pub mod app;
pub mod broker;
pub mod cli;
pub mod daemon;
pub mod db;
pub mod fixtures;
pub mod http;
pub mod prelude;
pub mod tap;

pub use app::TestApp;

/// A port nobody listens on now (taken and released at once, for a process that binds it
/// a moment later).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
