//! Spawns callbackd against a fresh, randomly named database, seeds a directory, and talks
//! to it over real HTTP. The database is dropped when the `TestApp` is.

use std::str::FromStr;

use callbackd::cli;
use callbackd::config::Settings;
use callbackd::domain::{Agent, AgentId, Direction, MediaType, Skill, SkillId};
use callbackd::startup::Application;
use callbackd::store::Store;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;

/// The PostgreSQL server tests create their databases on.
pub fn server_url() -> String {
    std::env::var("CALLBACKD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// Seeded skills: 101 outbound phone (London), 102 inbound chat, 103 inactive outbound phone,
/// 104 outbound phone (New York), 105 inbound phone, 106 outbound phone without a zone.
pub const SKILL: i64 = 101;
pub const SKILL_CHAT: i64 = 102;
pub const SKILL_INACTIVE: i64 = 103;
pub const SKILL_NEW_YORK: i64 = 104;
pub const SKILL_INBOUND_PHONE: i64 = 105;
pub const SKILL_NO_ZONE: i64 = 106;
/// Seeded agents: 7 active (`jdoe`), 8 inactive (`gone`).
pub const AGENT: i64 = 7;
pub const AGENT_INACTIVE: i64 = 8;

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
    settings.database.max_connections = 5;
    settings.api.max_body_bytes = 16 * 1024;
    settings.amqp.exchange = format!("{db_name}.callbacks");
    settings.amqp.queues = Vec::new();
    // Per-test outcome queues: RabbitMQ 3.10 can be left with an orphaned quorum queue
    // (every later declare fails with `cluster_not_formed`) when one test deletes a shared
    // queue while another declares it.
    settings.amqp.outcomes_queue = format!("{db_name}.outcomes");
    settings.amqp.dead_letter_queue = format!("{db_name}.outcomes.dead");
    settings.amqp.reconnect_initial_ms = 100;
    settings.amqp.reconnect_max_ms = 1000;
    settings.dispatch.enabled = false;
    settings.dispatch.poll_interval_ms = 1000;
    settings.dispatch.retry_initial_ms = 200;
    settings.dispatch.retry_max_ms = 400;
    settings.dispatch.shutdown_deadline_ms = 5000;
    settings
}

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

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
        let admin = cli::add_user(&store, "admin", &["all".into()], &[])
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
    pub fn child_env(&self) -> [(&'static str, String); 5] {
        [
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
        ]
    }

    /// A new security user with these permissions (and skill allow-list); returns its token.
    pub async fn token(&self, name: &str, permissions: &[&str], skills: &[i64]) -> String {
        let permissions: Vec<String> = permissions.iter().map(|p| p.to_string()).collect();
        let skills: Vec<String> = skills.iter().map(|s| s.to_string()).collect();
        cli::add_user(&self.store, name, &permissions, &skills)
            .await
            .expect("user created")
            .expose()
            .to_owned()
    }

    /// Sends a request; answers the status and the JSON body (`Value::Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        read(response).await
    }

    /// Sends `body` as it is (not necessarily JSON) with the admin token.
    pub async fn call_raw(&self, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent");
        read(response).await
    }

    pub async fn create(&self, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/v1/callbacks", Some(&self.admin), Some(body))
            .await
    }

    /// Creates a callback that must succeed; returns its id.
    pub async fn create_ok(&self, body: &Value) -> String {
        let (status, answer) = self.create(body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer["callbackId"]
            .as_str()
            .expect("callbackId")
            .to_owned()
    }

    pub async fn get_callback(&self, id: &str) -> Value {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/v1/callbacks/{id}"),
                Some(&self.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn events(&self, id: &str) -> Vec<Value> {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/v1/callbacks/{id}/events"),
                Some(&self.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().expect("items").clone()
    }

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

    /// PUT a skill (an outbound phone skill plus `extra` fields); panics unless it succeeds.
    pub async fn put_skill(&self, id: i64, extra: serde_json::Value) {
        let mut body = serde_json::json!({
            "name": format!("skill {id}"), "mediaType": "phone", "direction": "outbound", "active": true
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let (status, answer) = self
            .call(
                Method::PUT,
                &format!("/v1/skills/{id}"),
                Some(&self.admin),
                Some(&body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    /// POST an outcome over HTTP.
    pub async fn report(&self, id: &str, attempt: i64, outcome: &str) -> (StatusCode, Value) {
        let body = serde_json::json!({ "attempt": attempt, "outcome": outcome });
        self.call(
            Method::POST,
            &format!("/v1/callbacks/{id}/outcomes"),
            Some(&self.admin),
            Some(&body),
        )
        .await
    }

    /// Waits (up to `secs`) until the callback is in `state`; returns it.
    pub async fn wait_state(&self, id: &str, state: &str, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let callback = self.get_callback(id).await;
            if callback["state"] == state {
                return callback;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never became {state}: {callback}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Publishes to this test's outcomes queue with the AMQP `user_id` property, waiting for
    /// the broker's confirm; `Err` when the broker refuses it (a forged `user_id`).
    pub async fn publish_outcome_as(
        &self,
        body: &[u8],
        user_id: Option<&str>,
    ) -> Result<(), String> {
        let connection =
            lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
                .await
                .expect("broker connection");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(Default::default())
            .await
            .expect("confirms");
        let mut properties = lapin::BasicProperties::default();
        if let Some(user) = user_id {
            properties = properties.with_user_id(user.into());
        }
        let confirmed = match channel
            .basic_publish(
                "".into(),
                self.settings.amqp.outcomes_queue.as_str().into(),
                // Returned when the queue does not exist (yet).
                lapin::options::BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties,
            )
            .await
        {
            Ok(confirm) => match confirm.await {
                Ok(lapin::Confirmation::Ack(None)) => Ok(()),
                other => Err(format!("{other:?}")),
            },
            Err(e) => Err(e.to_string()),
        };
        let _ = connection.close(200, "sent".into()).await;
        confirmed
    }

    /// Publishes raw bytes to this test's outcomes queue, as a dialer would.
    pub async fn publish_outcome(&self, body: &[u8]) {
        let connection =
            lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
                .await
                .expect("broker connection");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .basic_publish(
                "".into(),
                self.settings.amqp.outcomes_queue.as_str().into(),
                lapin::options::BasicPublishOptions::default(),
                body,
                lapin::BasicProperties::default(),
            )
            .await
            .expect("published");
        let _ = connection.close(200, "sent".into()).await;
    }

    /// Takes `n` messages from this test's dead-letter queue (waiting up to 10 s) and
    /// returns the reason each carries in `x-callbackd-reason`.
    pub async fn dead_letter_reasons(&self, n: usize) -> Vec<String> {
        let connection =
            lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
                .await
                .expect("broker connection");
        let channel = connection.create_channel().await.expect("channel");
        let mut reasons = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while reasons.len() < n && std::time::Instant::now() < deadline {
            let got = channel
                .basic_get(
                    self.settings.amqp.dead_letter_queue.as_str().into(),
                    lapin::options::BasicGetOptions { no_ack: true },
                )
                .await
                .expect("basic_get");
            match got {
                Some(message) => {
                    let reason = message
                        .delivery
                        .properties
                        .headers()
                        .as_ref()
                        .and_then(|h| h.inner().get("x-callbackd-reason").cloned());
                    match reason {
                        Some(lapin::types::AMQPValue::LongString(text)) => {
                            reasons.push(text.to_string())
                        }
                        other => panic!("no reason header: {other:?}"),
                    }
                }
                None => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        let _ = connection.close(200, "done".into()).await;
        reasons
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

/// An answer other than success: its status, its result code, and a message saying why.
pub fn assert_result(status: StatusCode, body: &Value, want_status: StatusCode, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["result"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

pub async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"))
    };
    (status, body)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for peer in &self.peers {
            peer.cancel();
        }
        let db_name = self.db_name.clone();
        let exchange = self.exchange.clone();
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
                drop_database(&db_name).await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.db_name);
        }
    }
}

/// Declares the exchange as callbackd does, for tests that bind before a daemon runs.
pub async fn declare_exchange(name: &str) {
    let connection = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .expect("broker connection");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .exchange_declare(
            name.into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("exchange declared");
    let _ = connection.close(200, "declared".into()).await;
}

async fn delete_exchange(name: &str, queues: &[String]) {
    let Ok(connection) =
        lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    if let Ok(channel) = connection.create_channel().await {
        let _ = channel
            .exchange_delete(
                name.into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await;
        for queue in queues {
            let _ = channel
                .queue_delete(
                    queue.as_str().into(),
                    lapin::options::QueueDeleteOptions::default(),
                )
                .await;
        }
    }
    let _ = connection.close(200, "test done".into()).await;
}

async fn drop_database(name: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
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

async fn seed_directory(store: &Store) {
    let skill = |id, media_type, direction, active, tz: Option<&str>| Skill {
        id: SkillId::new(id).expect("id"),
        name: format!("skill {id}"),
        media_type,
        direction,
        active,
        time_zone: tz.map(|t| t.parse().expect("zone")),
        policy: Default::default(),
    };
    let skills = [
        skill(
            SKILL,
            MediaType::Phone,
            Direction::Outbound,
            true,
            Some("Europe/London"),
        ),
        skill(SKILL_CHAT, MediaType::Chat, Direction::Inbound, true, None),
        skill(
            SKILL_INACTIVE,
            MediaType::Phone,
            Direction::Outbound,
            false,
            None,
        ),
        skill(
            SKILL_NEW_YORK,
            MediaType::Phone,
            Direction::Outbound,
            true,
            Some("America/New_York"),
        ),
        skill(
            SKILL_INBOUND_PHONE,
            MediaType::Phone,
            Direction::Inbound,
            true,
            None,
        ),
        skill(
            SKILL_NO_ZONE,
            MediaType::Phone,
            Direction::Outbound,
            true,
            None,
        ),
    ];
    let agents = [
        Agent {
            id: AgentId::new(AGENT).expect("id"),
            username: "jdoe".into(),
            active: true,
        },
        Agent {
            id: AgentId::new(AGENT_INACTIVE).expect("id"),
            username: "gone".into(),
            active: false,
        },
    ];
    store
        .import_directory(&skills, &agents)
        .await
        .expect("directory seeded");
}

/// RFC 3339 in UTC, `offset` from now.
pub fn in_(offset: Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn parse_time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a time string"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// A create body that succeeds; tests change one field at a time.
pub fn valid_body() -> Value {
    serde_json::json!({
        "firstName": "Ada",
        "lastName": "Lovelace",
        "phoneNumber": "+442079460958",
        "skillId": SKILL,
        "targetAgentId": "",
        "scheduleDate": in_(Duration::hours(2)),
        "notes": "re: invoice 42",
    })
}

/// `valid_body()` with one field replaced (or removed, with `Value::Null` and `remove`).
pub fn with(field: &str, value: Value) -> Value {
    let mut body = valid_body();
    body[field] = value;
    body
}

pub fn without(field: &str) -> Value {
    let mut body = valid_body();
    body.as_object_mut().expect("object").remove(field);
    body
}
