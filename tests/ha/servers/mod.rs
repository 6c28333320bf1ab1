//! Servers a test starts beside the machine's own, on ports of their own, and stops when
//! dropped (even when the test fails): a PostgreSQL cluster with TLS, a RabbitMQ node with a
//! TLS listener. What they rely on: docs/development.md, "Extra servers on one machine".
//!
//! `postgres`: a cluster with TLS, a primary with a synchronous replica; `rabbit`: a node.

use std::path::Path;
use std::process::Command;

mod postgres;
mod rabbit;

pub use postgres::{PgPair, TlsPostgres};
pub use rabbit::{NodeTls, RabbitNode};

/// A port nobody listens on now (taken and released at once).
fn free_port() -> u16 {
    testkit::free_port().expect("a free port")
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn pg_bin(tool: &str) -> String {
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .expect("a PostgreSQL version under /etc/postgresql");
    format!("/usr/lib/postgresql/{version}/bin/{tool}")
}

/// Runs a PostgreSQL tool as the `postgres` user (they refuse root).
fn as_postgres(tool: &str, args: &[&str]) -> std::process::Output {
    let bin = pg_bin(tool);
    let mut all = vec!["-u", "postgres", "--", bin.as_str()];
    all.extend_from_slice(args);
    run("runuser", &all)
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("config file");
    std::io::Write::write_all(&mut file, text.as_bytes()).expect("config written");
}
