//! The test's database, read and written directly: counts, states, rows inserted faster
//! than the API would, and dropping the database afterwards.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::app::TestApp;
use crate::fixtures::SKILL;

/// The PostgreSQL server tests create their databases on.
pub fn server_url() -> String {
    std::env::var("CALLBACKD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

impl TestApp {
    /// Rows in the callbacks, events and idempotency tables.
    pub async fn row_counts(&self) -> (i64, i64, i64) {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM callbacks), (SELECT count(*) FROM callback_events),
                    (SELECT count(*) FROM idempotency_keys)",
        )
        .fetch_one(&self.pool)
        .await
        .expect("counts")
    }

    /// Inserts `n` callbacks due now straight into the table (faster than the API).
    pub async fn insert_due(&self, n: i64, target_agent: Option<i64>) -> Vec<String> {
        sqlx::query_scalar(
            "INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id,
                target_agent_id, notes, scheduled_for, due_at, created_by)
             SELECT gen_random_uuid(), 'First ' || i, 'Last', '+14155552671', $2, $3, '',
                    now(), now(), 'test'
             FROM generate_series(1, $1) AS i
             RETURNING id::text",
        )
        .bind(n)
        .bind(SKILL)
        .bind(target_agent)
        .fetch_all(&self.pool)
        .await
        .expect("callbacks inserted")
    }

    /// Waits (up to 10 s) until `n` callbacks are recorded dispatched: a consumer can see a
    /// message a moment before the dispatcher's transaction commits.
    pub async fn wait_dispatched(&self, n: i64) {
        for _ in 0..200 {
            if self.states().await.get("dispatched") == Some(&n) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("expected {n} dispatched, have {:?}", self.states().await);
    }

    /// Callbacks per state.
    pub async fn states(&self) -> std::collections::BTreeMap<String, i64> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM callbacks GROUP BY state")
                .fetch_all(&self.pool)
                .await
                .expect("states");
        rows.into_iter().collect()
    }

    /// Stands in for the dispatcher: moves a callback to another state.
    pub async fn force_state(&self, id: &str, state: &str) {
        sqlx::query("UPDATE callbacks SET state = $2 WHERE id = $1::uuid")
            .bind(id)
            .bind(state)
            .execute(&self.pool)
            .await
            .expect("state forced");
    }
}

/// Drops a test's database (connections and all) on the server of [`server_url`].
pub async fn drop_database(name: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let options = PgConnectOptions::from_str(&server_url())?.database("postgres");
    let mut conn = options.connect().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}
