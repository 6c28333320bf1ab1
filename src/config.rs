//! Typed settings: `config/callbackd.toml` (or `--config PATH`), then `CALLBACKD_SECTION__KEY`
//! environment variables on top. Everything is checked once here, so the rest of the daemon
//! only ever sees valid values.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chrono_tz::Tz;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// How long a dispatcher session may sit idle inside its claim before PostgreSQL ends it
/// (`idle_in_transaction_session_timeout`): the bound on a claim whose host vanished.
pub const CLAIM_IDLE_LIMIT_MS: u64 = 60_000;
/// The longest `dispatch.confirm_timeout_ms`: confirms must arrive well within that limit.
const CONFIRM_TIMEOUT_MAX_MS: u64 = CLAIM_IDLE_LIMIT_MS / 2;

/// Environment variables with this prefix override the file: `CALLBACKD_DATABASE__URL`.
pub const ENV_PREFIX: &str = "CALLBACKD_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting `{setting}`: {problem} (from {source_name})")]
    Load {
        setting: String,
        problem: String,
        source_name: String,
    },
    #[error("setting `{setting}`: {problem}")]
    Invalid {
        setting: &'static str,
        problem: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub api: ApiSettings,
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub schedule: ScheduleSettings,
    pub dispatch: DispatchSettings,
    pub lifecycle: LifecycleSettings,
    pub maintenance: MaintenanceSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub request_timeout_ms: u64,
    pub default_page_size: u32,
    pub max_page_size: u32,
    /// Open HTTP connections at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// `/v1` requests in progress at once; further ones are answered 503 at once.
    pub max_concurrent_requests: usize,
    /// A client must finish sending a request's headers within this long (also the idle
    /// limit of a kept-alive connection between requests), else the connection is closed.
    pub header_read_timeout_ms: u64,
    /// A client must finish sending a request's body within this long, else 408.
    pub body_read_timeout_ms: u64,
    /// A write to a client that makes no progress for this long (the client reads nothing)
    /// ends the connection.
    pub write_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    pub url: String,
    pub create_if_missing: bool,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpSettings {
    pub url: String,
    pub exchange: String,
    pub connect_timeout_ms: u64,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
    /// Quorum queues to declare and bind at start-up.
    pub queues: Vec<QueueSettings>,
    /// Where dialers report outcomes; declared at start-up. Empty: no outcome consumer.
    pub outcomes_queue: String,
    /// Where malformed or unknown outcomes go, with the reason.
    pub dead_letter_queue: String,
    pub outcomes_prefetch: u16,
    /// Deliveries of one outcome message after which the broker dead-letters it.
    pub outcomes_delivery_limit: u32,
    /// RabbitMQ users whose outcome messages are applied (checked against the message's
    /// `user_id`, which the broker verifies). Empty: any user that may publish to the queue.
    pub outcome_publishers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleSettings {
    pub retry_backoff_seconds: Vec<u32>,
    pub max_attempts: u32,
    pub agent_fallback_seconds: u32,
    /// A dispatched or accepted callback with no final outcome this long after its
    /// publication fails (event `outcome_deadline`), so nothing waits forever.
    pub outcome_deadline_seconds: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub name: String,
    /// Routing-key patterns of the topic exchange: `agent.*`, `skill.101`, `#`.
    pub bindings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchSettings {
    pub enabled: bool,
    pub batch_size: u32,
    /// Dispatch loops in this daemon, each with its own claim transaction.
    pub workers: u32,
    pub poll_interval_ms: u64,
    pub publish_window: usize,
    pub confirm_timeout_ms: u64,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    pub shutdown_deadline_ms: u64,
    pub instance_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceSettings {
    pub time_zone: String,
    pub backlog_report: String,
    pub timers: String,
    pub purge: String,
    pub retention_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSettings {
    pub default_time_zone: String,
    pub default_region: String,
    pub past_grace_seconds: u64,
    pub horizon_days: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stdout is not a terminal (systemd, pipes), pretty otherwise.
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive; `RUST_LOG` wins when set.
    pub filter: String,
}

impl ConfigError {
    /// Names the setting in the file's spelling (`api.listen`) whichever layer it came from.
    fn from_figment(err: figment::Error) -> Self {
        let source_name = match &err.metadata {
            Some(meta) => match &meta.source {
                Some(source) => format!("{} {source}", meta.name),
                None => meta.name.to_string(),
            },
            None => "defaults".to_owned(),
        };
        ConfigError::Load {
            setting: err.path.join(".").to_ascii_lowercase(),
            problem: err.kind.to_string(),
            source_name,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            api: ApiSettings {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                max_body_bytes: 64 * 1024,
                request_timeout_ms: 10_000,
                default_page_size: 100,
                max_page_size: 1000,
                max_connections: 1024,
                max_concurrent_requests: 256,
                header_read_timeout_ms: 10_000,
                body_read_timeout_ms: 5_000,
                write_timeout_ms: 10_000,
            },
            database: DatabaseSettings {
                url: "postgres://postgres@127.0.0.1:5432/callbackd".into(),
                create_if_missing: true,
                max_connections: 16,
                acquire_timeout_ms: 3_000,
            },
            amqp: AmqpSettings {
                url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
                exchange: "callbackd.callbacks".into(),
                connect_timeout_ms: 5_000,
                reconnect_initial_ms: 500,
                reconnect_max_ms: 10_000,
                queues: vec![QueueSettings {
                    name: "callbackd.dialer".into(),
                    bindings: vec!["#".into()],
                }],
                outcomes_queue: "callbackd.outcomes".into(),
                dead_letter_queue: "callbackd.outcomes.dead".into(),
                outcomes_prefetch: 64,
                outcomes_delivery_limit: 20,
                outcome_publishers: Vec::new(),
            },
            lifecycle: LifecycleSettings {
                retry_backoff_seconds: vec![600, 1800, 7200],
                max_attempts: 3,
                agent_fallback_seconds: 900,
                outcome_deadline_seconds: 86_400,
            },
            schedule: ScheduleSettings {
                default_time_zone: "UTC".into(),
                default_region: "US".into(),
                past_grace_seconds: 300,
                horizon_days: 366,
            },
            dispatch: DispatchSettings {
                enabled: true,
                batch_size: 500,
                workers: 2,
                poll_interval_ms: 5_000,
                publish_window: 256,
                confirm_timeout_ms: 10_000,
                retry_initial_ms: 1_000,
                retry_max_ms: 300_000,
                shutdown_deadline_ms: 10_000,
                instance_name: None,
            },
            maintenance: MaintenanceSettings {
                time_zone: "UTC".into(),
                backlog_report: "0 * * * * *".into(),
                timers: "*/5 * * * * *".into(),
                purge: "0 30 3 * * *".into(),
                retention_days: 30,
            },
            log: LogSettings {
                format: LogFormat::Auto,
                filter: "info,sqlx::postgres::notice=warn,tokio_cron_scheduler=warn".into(),
            },
        }
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        Settings::default().api
    }
}
impl Default for DatabaseSettings {
    fn default() -> Self {
        Settings::default().database
    }
}
impl Default for AmqpSettings {
    fn default() -> Self {
        Settings::default().amqp
    }
}
impl Default for ScheduleSettings {
    fn default() -> Self {
        Settings::default().schedule
    }
}
impl Default for DispatchSettings {
    fn default() -> Self {
        Settings::default().dispatch
    }
}
impl Default for LifecycleSettings {
    fn default() -> Self {
        Settings::default().lifecycle
    }
}
impl Default for MaintenanceSettings {
    fn default() -> Self {
        Settings::default().maintenance
    }
}
impl Default for LogSettings {
    fn default() -> Self {
        Settings::default().log
    }
}

impl Settings {
    /// Defaults, then the file (when given; a missing file is an error), then the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = path {
            if !path.is_file() {
                return Err(ConfigError::Invalid {
                    setting: "--config",
                    problem: format!("no such file: {}", path.display()),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only `SECTION__KEY` variables are settings; `CALLBACKD_CONFIG` names the file.
        let env = Env::prefixed(ENV_PREFIX)
            .filter(|key| key.as_str().contains("__"))
            .split("__");
        let settings: Settings = figment
            .merge(env)
            .extract()
            .map_err(ConfigError::from_figment)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, problem: String| Err(ConfigError::Invalid { setting, problem });
        if self.time_zone().is_none() {
            return invalid(
                "schedule.default_time_zone",
                format!(
                    "`{}` is not an IANA time zone name",
                    self.schedule.default_time_zone
                ),
            );
        }
        if self.region().is_none() {
            return invalid(
                "schedule.default_region",
                format!(
                    "`{}` is not a two-letter region code such as US or GB",
                    self.schedule.default_region
                ),
            );
        }
        if self.schedule.horizon_days == 0 {
            return invalid("schedule.horizon_days", "must be at least 1".into());
        }
        if self.api.max_body_bytes < 1024 {
            return invalid("api.max_body_bytes", "must be at least 1024".into());
        }
        if self.api.default_page_size == 0 || self.api.default_page_size > self.api.max_page_size {
            return invalid(
                "api.default_page_size",
                format!(
                    "must be between 1 and api.max_page_size ({})",
                    self.api.max_page_size
                ),
            );
        }
        if self.api.max_connections == 0 {
            return invalid("api.max_connections", "must be at least 1".into());
        }
        if self.api.max_concurrent_requests == 0 {
            return invalid("api.max_concurrent_requests", "must be at least 1".into());
        }
        for (setting, value) in [
            ("api.request_timeout_ms", self.api.request_timeout_ms),
            (
                "api.header_read_timeout_ms",
                self.api.header_read_timeout_ms,
            ),
            ("api.body_read_timeout_ms", self.api.body_read_timeout_ms),
            ("api.write_timeout_ms", self.api.write_timeout_ms),
        ] {
            if value == 0 {
                return invalid(setting, "must be positive".into());
            }
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1".into());
        }
        if !self.database.url.starts_with("postgres://")
            && !self.database.url.starts_with("postgresql://")
        {
            return invalid(
                "database.url",
                "must start with postgres:// or postgresql://".into(),
            );
        }
        if !self.amqp.url.starts_with("amqp://") {
            return invalid("amqp.url", "must start with amqp://".into());
        }
        if self.amqp.exchange.is_empty() || self.amqp.exchange.starts_with("amq.") {
            return invalid(
                "amqp.exchange",
                format!(
                    "`{}` is not usable: it must be non-empty and not start with `amq.`",
                    self.amqp.exchange
                ),
            );
        }
        for queue in &self.amqp.queues {
            if queue.name.is_empty() || queue.name.starts_with("amq.") || queue.bindings.is_empty()
            {
                return invalid(
                    "amqp.queues",
                    format!(
                        "queue `{}` needs a name not starting with `amq.` and at least one binding",
                        queue.name
                    ),
                );
            }
        }
        if self.amqp.reconnect_initial_ms == 0
            || self.amqp.reconnect_max_ms < self.amqp.reconnect_initial_ms
        {
            return invalid(
                "amqp.reconnect_max_ms",
                "must be at least amqp.reconnect_initial_ms, which must be positive".into(),
            );
        }
        let d = &self.dispatch;
        if d.batch_size == 0 || d.batch_size > 10_000 {
            return invalid(
                "dispatch.batch_size",
                format!("{} is not in 1..=10000", d.batch_size),
            );
        }
        // The due-notify trigger covers 60 s ahead; a longer sleep could miss a callback.
        if d.poll_interval_ms == 0 || d.poll_interval_ms > 60_000 {
            return invalid(
                "dispatch.poll_interval_ms",
                format!("{} is not in 1..=60000", d.poll_interval_ms),
            );
        }
        if d.workers == 0 || d.workers > 16 {
            return invalid(
                "dispatch.workers",
                format!("{} is not in 1..=16", d.workers),
            );
        }
        if d.publish_window == 0 {
            return invalid("dispatch.publish_window", "must be at least 1".into());
        }
        // A claim is held open while its batch awaits confirms; past the dispatcher
        // sessions' idle limit PostgreSQL would end the session and the batch would be
        // published again. Leave room for recording the batch.
        if d.confirm_timeout_ms == 0 || d.confirm_timeout_ms > CONFIRM_TIMEOUT_MAX_MS {
            return invalid(
                "dispatch.confirm_timeout_ms",
                format!(
                    "{} is not in 1..={CONFIRM_TIMEOUT_MAX_MS}: a batch's claim must end well within the dispatcher sessions' idle limit ({CLAIM_IDLE_LIMIT_MS} ms)",
                    d.confirm_timeout_ms
                ),
            );
        }
        if d.retry_initial_ms == 0 || d.retry_max_ms < d.retry_initial_ms {
            return invalid(
                "dispatch.retry_max_ms",
                "must be at least dispatch.retry_initial_ms, which must be positive".into(),
            );
        }
        let m = &self.maintenance;
        if m.time_zone.parse::<Tz>().is_err() {
            return invalid(
                "maintenance.time_zone",
                format!("`{}` is not an IANA time zone name", m.time_zone),
            );
        }
        for (setting, expr) in [
            ("maintenance.backlog_report", &m.backlog_report),
            ("maintenance.purge", &m.purge),
        ] {
            if !crate::maintenance::is_valid_cron(expr) {
                return invalid(
                    setting,
                    format!(
                        "`{expr}` is not a cron expression with seconds, such as \"0 30 3 * * *\""
                    ),
                );
            }
        }
        let l = &self.lifecycle;
        if l.retry_backoff_seconds.is_empty() || l.retry_backoff_seconds.contains(&0) {
            return invalid(
                "lifecycle.retry_backoff_seconds",
                "needs at least one positive number of seconds".into(),
            );
        }
        if l.max_attempts == 0 {
            return invalid("lifecycle.max_attempts", "must be at least 1".into());
        }
        if l.outcome_deadline_seconds == 0 || l.outcome_deadline_seconds > i32::MAX as u32 {
            return invalid(
                "lifecycle.outcome_deadline_seconds",
                format!("{} is not in 1..=2147483647", l.outcome_deadline_seconds),
            );
        }
        if self.amqp.outcomes_queue.starts_with("amq.")
            || (!self.amqp.outcomes_queue.is_empty() && self.amqp.dead_letter_queue.is_empty())
        {
            return invalid(
                "amqp.outcomes_queue",
                "must not start with `amq.`, and needs amqp.dead_letter_queue".into(),
            );
        }
        if self.amqp.outcomes_delivery_limit == 0 {
            return invalid("amqp.outcomes_delivery_limit", "must be at least 1".into());
        }
        if m.retention_days == 0 {
            return invalid("maintenance.retention_days", "must be at least 1".into());
        }
        Ok(())
    }

    pub fn time_zone(&self) -> Option<Tz> {
        self.schedule.default_time_zone.parse().ok()
    }

    pub fn region(&self) -> Option<phonenumber::country::Id> {
        let code = &self.schedule.default_region;
        if code.len() != 2 {
            return None;
        }
        code.to_ascii_uppercase().parse().ok()
    }

    /// The retry policy of a skill: its own settings over the configured defaults.
    pub fn retry_policy(&self, skill: &crate::domain::SkillPolicy) -> crate::domain::RetryPolicy {
        let seconds = skill
            .retry_backoff_seconds
            .as_ref()
            .filter(|b| !b.is_empty())
            .unwrap_or(&self.lifecycle.retry_backoff_seconds);
        crate::domain::RetryPolicy {
            backoff: seconds
                .iter()
                .map(|s| chrono::Duration::seconds(i64::from(*s)))
                .collect(),
            max_attempts: skill.max_attempts.unwrap_or(self.lifecycle.max_attempts),
        }
    }

    /// How long an agent-routed callback waits to be accepted; `None`: forever.
    pub fn agent_fallback(&self, skill: &crate::domain::SkillPolicy) -> Option<Duration> {
        let seconds = skill
            .agent_fallback_seconds
            .unwrap_or(self.lifecycle.agent_fallback_seconds);
        (seconds > 0).then(|| Duration::from_secs(u64::from(seconds)))
    }

    /// How long a published callback waits for its final outcome before it fails.
    pub fn outcome_deadline(&self, skill: &crate::domain::SkillPolicy) -> Duration {
        let seconds = skill
            .outcome_deadline_seconds
            .unwrap_or(self.lifecycle.outcome_deadline_seconds);
        Duration::from_secs(u64::from(seconds))
    }

    pub fn schedule_rules(&self) -> crate::domain::ScheduleRules {
        crate::domain::ScheduleRules {
            // validate() has checked these parse.
            default_time_zone: self.time_zone().unwrap_or(Tz::UTC),
            past_grace: chrono::Duration::seconds(
                i64::try_from(self.schedule.past_grace_seconds).unwrap_or(i64::MAX / 1000),
            ),
            horizon: chrono::Duration::days(
                i64::try_from(self.schedule.horizon_days).unwrap_or(365_000),
            ),
            default_region: self.region().unwrap_or(phonenumber::country::Id::US),
        }
    }
}

impl DispatchSettings {
    /// The name this daemon goes by in events, logs and its broker connection.
    pub fn instance(&self) -> String {
        self.instance_name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "callbackd".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
    pub fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.confirm_timeout_ms)
    }
    pub fn shutdown_deadline(&self) -> Duration {
        Duration::from_millis(self.shutdown_deadline_ms)
    }
}

impl ApiSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
}

impl DatabaseSettings {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().expect("defaults validate");
    }

    #[test]
    fn bad_time_zone_names_the_setting() {
        let mut s = Settings::default();
        s.schedule.default_time_zone = "Mars/Olympus".into();
        let err = s.validate().expect_err("must fail").to_string();
        assert!(err.contains("schedule.default_time_zone"), "{err}");
        assert!(err.contains("Mars/Olympus"), "{err}");
    }

    #[test]
    fn confirm_timeout_must_end_well_within_the_claim_idle_limit() {
        let mut s = Settings::default();
        s.dispatch.confirm_timeout_ms = CLAIM_IDLE_LIMIT_MS;
        let err = s.validate().expect_err("too long").to_string();
        assert!(err.contains("dispatch.confirm_timeout_ms"), "{err}");
        assert!(err.contains("idle limit"), "{err}");
        s.dispatch.confirm_timeout_ms = CONFIRM_TIMEOUT_MAX_MS;
        s.validate().expect("at the bound");
    }

    /// List settings are overridden whole from the environment, in TOML's inline syntax
    /// (as config/callbackd.toml documents).
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns its own error type.
    fn list_settings_are_overridden_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "CALLBACKD_AMQP__QUEUES",
                r#"[{name = "dialer.agents", bindings = ["agent.*"]}, {name = "dialer.skill.101", bindings = ["skill.101"]}]"#,
            );
            jail.set_env("CALLBACKD_AMQP__OUTCOME_PUBLISHERS", r#"["dialer"]"#);
            jail.set_env("CALLBACKD_LIFECYCLE__RETRY_BACKOFF_SECONDS", "[60, 300]");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.amqp.queues.len(), 2);
            assert_eq!(s.amqp.queues[0].name, "dialer.agents");
            assert_eq!(s.amqp.queues[1].bindings, vec!["skill.101".to_owned()]);
            assert_eq!(s.amqp.outcome_publishers, vec!["dialer".to_owned()]);
            assert_eq!(s.lifecycle.retry_backoff_seconds, vec![60, 300]);
            jail.set_env("CALLBACKD_AMQP__QUEUES", "[]");
            assert!(
                Settings::load(None)
                    .map_err(|e| e.to_string())?
                    .amqp
                    .queues
                    .is_empty()
            );
            Ok(())
        });
    }

    #[test]
    fn shipped_config_file_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/callbackd.toml");
        let from_file: Settings = Figment::new()
            .merge(Toml::file_exact(&path))
            .extract()
            .expect("config/callbackd.toml parses");
        let a = serde_json::to_value(from_file).expect("serialise");
        let b = serde_json::to_value(Settings::default()).expect("serialise");
        assert_eq!(
            a, b,
            "config/callbackd.toml drifted from Settings::default()"
        );
    }
}
