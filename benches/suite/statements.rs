//! The daemon's dispatch statements and the retention purge's drop of a partition of
//! history, exactly as it runs them (exported by the library for
//! this suite), and a connection with its dispatcher sessions' planner settings.

use sqlx::PgConnection;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

pub use callbackd::store::statements::{
    CLAIM_DUE as CLAIM, DISPATCHER_PLANNER, DropDay, GATE_LOCKS, GATE_READINGS, HELD, HELD_GATES,
    HOLD, NEXT_DUE,
};

/// A connection with the dispatcher pool's session settings (`Store::for_dispatcher`):
/// sorts and bitmap scans priced out, JIT off.
pub async fn dispatcher_connection(url: &str) -> anyhow::Result<PgConnection> {
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()?
        .disable_statement_logging()
        .options(DISPATCHER_PLANNER);
    Ok(PgConnection::connect_with(&options).await?)
}
