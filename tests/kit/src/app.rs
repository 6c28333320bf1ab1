//! Spawns callbackd in-process against a fresh, randomly named database, seeds a directory,
//! and gives the test an admin token. The database, the exchange and the test's queues are
//! removed when the `TestApp` is dropped.

use callbackd::cli;
use callbackd::config::Settings;
use callbackd::startup::Application;
use callbackd::store::Store;
use reqwest::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::broker::delete_exchange;
use crate::db::{drop_database, server_url};
use crate::fixtures::seed_directory;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub pool: sqlx::PgPool,
    /// A token with every permission and every skill.
    pub admin: String,
    /// This test's own exchange (declared only when the dispatcher runs).
    pub exchange: String,
    pub settings: Settings,
    db_name: String,
    pub shutdown: CancellationToken,
    peers: Vec<CancellationToken>,
}

/// Settings for a test: its own database and exchange, no shared queues, no dispatcher.
pub fn test_settings(db_name: &str) -> Settings {
    let mut settings = Settings::default();
    settings.api.listen = "127.0.0.1:0".parse().expect("address");
    settings.database.url = format!("{}/{db_name}", server_url()).into();
    settings.database.create_if_missing = true;
    settings.database.max_connections = 5;
    settings.api.max_body_bytes = 16 * 1024;
    settings.amqp.exchange = format!("{db_name}.callbacks");
    settings.amqp.events_exchange = format!("{db_name}.events");
    settings.amqp.queues = Vec::new();
    // Per-test outcome queues: RabbitMQ 3.10 can be left with an orphaned quorum queue
    // (every later declare fails with `cluster_not_formed`) when one test deletes a shared
    // queue while another declares it.
    settings.amqp.outcomes_queue = format!("{db_name}.outcomes");
    settings.amqp.dead_letter_queue = format!("{db_name}.outcomes.dead");
    // Tests publish outcomes as the local broker's user, mostly without naming it.
    settings.amqp.outcome_publishers_open = true;
    settings.amqp.reconnect_initial_ms = 100;
    settings.amqp.reconnect_max_ms = 1000;
    settings.dispatch.enabled = false;
    settings.dispatch.poll_interval_ms = 1000;
    settings.dispatch.retry_initial_ms = 200;
    settings.dispatch.retry_max_ms = 400;
    settings.dispatch.shutdown_deadline_ms = 5000;
    settings
}

pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        callbackd::telemetry::init(callbackd::config::LogFormat::Pretty, "debug");
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// With the dispatcher running, publishing to this test's exchange; ready to consume.
    pub async fn spawn_dispatching() -> Self {
        Self::spawn_dispatching_with(|_| {}).await
    }

    pub async fn spawn_dispatching_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let app = Self::spawn_with(|s| {
            s.dispatch.enabled = true;
            adjust(s);
        })
        .await;
        app.wait_ready().await;
        app
    }

    /// Another daemon on the same database and exchange; returns its base URL once its
    /// `/readyz` says ready (database and, when it dispatches, the broker).
    pub async fn spawn_peer(&mut self, adjust: impl FnOnce(&mut Settings)) -> String {
        let mut settings = self.settings.clone();
        settings.api.listen = "127.0.0.1:0".parse().expect("address");
        adjust(&mut settings);
        let app = Application::build(settings).await.expect("peer builds");
        let base = format!("http://{}", app.local_addr());
        let readyz = format!("{base}/readyz");
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        self.peers.push(shutdown);
        for _ in 0..200 {
            if let Ok(r) = self.client.get(&readyz).send().await
                && r.status() == StatusCode::OK
            {
                return base;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the peer daemon did not become ready");
    }

    /// Waits until `/readyz` says ready (database and, when dispatching, the broker).
    pub async fn wait_ready(&self) {
        for _ in 0..100 {
            let (status, _) = self.call(Method::GET, "/readyz", None, None).await;
            if status == StatusCode::OK {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("callbackd did not become ready");
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        init_logs();
        let db_name = format!("callbackd_test_{}", uuid::Uuid::now_v7().simple());
        let mut settings = test_settings(&db_name);
        adjust(&mut settings);
        let app = Application::build(settings.clone())
            .await
            .expect("app builds");
        let base = format!("http://{}", app.local_addr());
        let store = app.store().clone();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(settings.database.url.expose())
            .await
            .expect("test pool");
        seed_directory(&store).await;
        let admin = cli::add_user(&store, "admin", &["all".into()], &[], None)
            .await
            .expect("admin user")
            .expose()
            .to_owned();
        Self {
            base,
            client: reqwest::Client::new(),
            store,
            pool,
            admin,
            exchange: settings.amqp.exchange.clone(),
            settings,
            db_name,
            shutdown,
            peers: Vec::new(),
        }
    }

    /// The environment that points a `callbackd` child process at this test's database,
    /// exchange and outcome queues (and declares no queues of its own).
    pub fn child_env(&self) -> [(&'static str, String); 7] {
        [
            (
                "CALLBACKD_AMQP__EVENTS_EXCHANGE",
                self.settings.amqp.events_exchange.clone(),
            ),
            (
                "CALLBACKD_DATABASE__URL",
                self.settings.database.url.expose().to_owned(),
            ),
            ("CALLBACKD_AMQP__EXCHANGE", self.exchange.clone()),
            ("CALLBACKD_AMQP__QUEUES", "[]".into()),
            (
                "CALLBACKD_AMQP__OUTCOMES_QUEUE",
                self.settings.amqp.outcomes_queue.clone(),
            ),
            (
                "CALLBACKD_AMQP__DEAD_LETTER_QUEUE",
                self.settings.amqp.dead_letter_queue.clone(),
            ),
            (
                "CALLBACKD_AMQP__OUTCOME_PUBLISHERS_OPEN",
                self.settings.amqp.outcome_publishers_open.to_string(),
            ),
        ]
    }

    /// A new security user with these permissions (and skill allow-list); returns its token.
    pub async fn token(&self, name: &str, permissions: &[&str], skills: &[i64]) -> String {
        let permissions: Vec<String> = permissions.iter().map(|p| p.to_string()).collect();
        let skills: Vec<String> = skills.iter().map(|s| s.to_string()).collect();
        cli::add_user(&self.store, name, &permissions, &skills, None)
            .await
            .expect("user created")
            .expose()
            .to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for peer in &self.peers {
            peer.cancel();
        }
        let db_name = self.db_name.clone();
        let exchange = self.exchange.clone();
        let events = self.settings.amqp.events_exchange.clone();
        let queues = [
            self.settings.amqp.outcomes_queue.clone(),
            self.settings.amqp.dead_letter_queue.clone(),
        ];
        // Drop runs inside the test's runtime, which cannot block on itself.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                delete_exchange(&exchange, &queues).await;
                delete_exchange(&events, &[]).await;
                drop_database(&db_name).await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.db_name);
        }
    }
}
