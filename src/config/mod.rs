//! Typed settings: `config/callbackd.toml` (or `--config PATH`), then `CALLBACKD_SECTION__KEY`
//! environment variables on top. Everything is parsed and checked once here (time zones,
//! regions and cron schedules into their types, URLs into secrets that never print), so the
//! rest of the daemon only ever sees valid values.

mod console;
mod cxone;
mod defaults;
mod validate;
pub mod values;
mod webhooks;

pub use console::{ConsoleSettings, GroupGrantSettings, OidcSettings, PermissionSource};
pub use cxone::CxoneSettings;
pub use values::{Cron, Region, Secret, SecretUrl, TimeZone};
pub use webhooks::{PublicSettings, WebhookSettings};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    pub pacing: PacingSettings,
    pub maintenance: MaintenanceSettings,
    pub console: ConsoleSettings,
    pub webhooks: WebhookSettings,
    pub public: PublicSettings,
    pub cxone: CxoneSettings,
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
    /// Failed token lookups per second for one network address (bursts of five seconds'
    /// worth); past it, its tokens not in the cache are refused with 429. 0: no limit.
    pub token_lookups_per_second: u32,
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
    /// `sslmode` (`require`, `verify-ca`, `verify-full`) is read from the URL.
    pub url: SecretUrl,
    /// A primary and its replicas, instead of `url`: callbackd uses the one that accepts
    /// writes, and follows it when a replica is promoted. Empty: `url` alone.
    #[serde(default)]
    pub urls: Vec<SecretUrl>,
    pub create_if_missing: bool,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    /// PEM file of the CA(s) the server's certificate must chain to (`verify-ca`,
    /// `verify-full`); unset: the system's trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), when the server asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpSettings {
    /// The broker (`amqp://` or `amqps://`), when `urls` is empty.
    pub url: SecretUrl,
    /// Several nodes of a cluster: callbackd connects to the first that answers and, when
    /// the connection is lost, to the next, with backoff and jitter. Empty: `url` alone.
    #[serde(default)]
    pub urls: Vec<SecretUrl>,
    /// PEM file of the CA(s) the broker's certificate must chain to (`amqps://`; the host
    /// name in the URL must match the certificate); unset: the system's trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM): with `?auth_mechanism=external` in the URL,
    /// the broker authenticates callbackd by it (RabbitMQ's `rabbitmq_auth_mechanism_ssl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
    pub exchange: String,
    /// The topic exchange every callback event is published to (routing key
    /// `<kind>.<skillId>`). Empty: events are not published.
    pub events_exchange: String,
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
    /// `user_id`, which the broker verifies). Empty: the outcomes queue is not consumed,
    /// unless `outcome_publishers_open` says any user that may publish to it is trusted.
    pub outcome_publishers: Vec<String>,
    /// With no `outcome_publishers`: apply outcomes from any broker user that may publish to
    /// the queue (any of them can then complete or fail any callback).
    pub outcome_publishers_open: bool,
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

/// Limits on publication where a skill sets none; 0 means no limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacingSettings {
    /// Callbacks routed to one agent, published and without a final outcome, at once.
    pub agent_max_in_flight: u32,
    /// A skill's callbacks published and without a final outcome at once.
    pub skill_max_in_flight: u32,
    /// A skill's publications a minute, spread evenly.
    pub skill_max_per_minute: u32,
}

impl PacingSettings {
    pub fn defaults(&self) -> crate::domain::PacingDefaults {
        let limit = |n: u32| (n > 0).then_some(n);
        crate::domain::PacingDefaults {
            skill_max_in_flight: limit(self.skill_max_in_flight),
            skill_max_per_minute: limit(self.skill_max_per_minute),
            agent_max_in_flight: limit(self.agent_max_in_flight),
        }
    }
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
    /// After a pass that emptied the due index, wait at least this long before the next.
    pub gather_ms: u64,
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
    pub time_zone: TimeZone,
    pub backlog_report: Cron,
    pub timers: Cron,
    pub purge: Cron,
    pub retention_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSettings {
    pub default_time_zone: TimeZone,
    pub default_region: Region,
    pub past_grace_seconds: u64,
    pub horizon_days: u64,
    /// What a create for a number with a pending callback in the skill gets, where the
    /// skill says nothing: `allow`, `existing` or `refuse`.
    pub duplicate_policy: crate::domain::DuplicatePolicy,
    /// Pending callbacks one number may have in a skill at once; 0: no limit.
    pub max_pending_per_number: u32,
    /// Creates one number may have in a skill per day (the skill's calendar day); 0: no
    /// limit.
    pub max_creates_per_number_per_day: u32,
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

    pub fn schedule_rules(&self) -> crate::domain::ScheduleRules {
        crate::domain::ScheduleRules {
            default_time_zone: self.schedule.default_time_zone.0,
            past_grace: chrono::Duration::seconds(
                i64::try_from(self.schedule.past_grace_seconds).unwrap_or(i64::MAX / 1000),
            ),
            horizon: chrono::Duration::days(
                i64::try_from(self.schedule.horizon_days).unwrap_or(365_000),
            ),
            default_region: self.schedule.default_region.0,
            admission: crate::domain::NumberAdmission {
                duplicates: self.schedule.duplicate_policy,
                max_pending: Some(self.schedule.max_pending_per_number).filter(|n| *n > 0),
                max_per_day: Some(self.schedule.max_creates_per_number_per_day).filter(|n| *n > 0),
            },
        }
    }
}

impl LifecycleSettings {
    /// The defaults a skill's own rules override (`domain::SkillPolicy`).
    pub fn defaults(&self) -> crate::domain::LifecycleDefaults {
        crate::domain::LifecycleDefaults {
            retry_backoff_seconds: self.retry_backoff_seconds.clone(),
            max_attempts: self.max_attempts,
            agent_fallback_seconds: self.agent_fallback_seconds,
            outcome_deadline_seconds: self.outcome_deadline_seconds,
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
    pub fn gather(&self) -> Duration {
        Duration::from_millis(self.gather_ms)
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
    #[allow(clippy::result_large_err)] // figment's Jail closure returns its own error type.
    fn bad_time_zone_names_the_setting() {
        // Parsed when read: an invalid zone never reaches a `Settings`.
        figment::Jail::expect_with(|jail| {
            jail.set_env("CALLBACKD_SCHEDULE__DEFAULT_TIME_ZONE", "Mars/Olympus");
            let err = Settings::load(None).expect_err("must fail").to_string();
            assert!(err.contains("schedule.default_time_zone"), "{err}");
            assert!(err.contains("Mars/Olympus"), "{err}");
            Ok(())
        });
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

    fn oidc_settings() -> Settings {
        let mut s = Settings::default();
        let o = &mut s.console.oidc;
        o.enabled = true;
        o.issuer = "https://login.example.com/realms/contact".into();
        o.client_id = "callbackd".into();
        o.redirect_url = "https://callbackd.example.com/console/oidc/callback".into();
        o.groups = vec![GroupGrantSettings {
            group: "supervisors".into(),
            permissions: vec!["callbacks:read".into(), "callbacks:cancel".into()],
            skills: Some(vec![101]),
        }];
        s
    }

    #[test]
    fn oidc_settings_are_checked_naming_the_setting() {
        oidc_settings().validate().expect("valid");
        type Breaks = fn(&mut Settings);
        let cases: [(&str, Breaks); 7] = [
            ("console.oidc.issuer", |s| {
                s.console.oidc.issuer = "login.example.com".into()
            }),
            ("console.oidc.issuer", |s| {
                s.console.oidc.issuer = "http://login.example.com".into()
            }),
            ("console.oidc.client_id", |s| {
                s.console.oidc.client_id = " ".into()
            }),
            ("console.oidc.redirect_url", |s| {
                s.console.oidc.redirect_url = "https://callbackd.example.com/elsewhere".into()
            }),
            ("console.oidc.groups", |s| {
                s.console.oidc.groups[0].permissions = vec!["callbacks:destroy".into()]
            }),
            ("console.oidc.groups", |s| s.console.oidc.groups.clear()),
            ("console.token_sign_in", |s| {
                s.console.oidc.enabled = false;
                s.console.token_sign_in = false;
            }),
        ];
        for (setting, break_it) in cases {
            let mut s = oidc_settings();
            break_it(&mut s);
            let err = s.validate().expect_err(setting).to_string();
            assert!(err.contains(setting), "{setting}: {err}");
        }
        // A provider on this host may speak plain http (a test provider).
        let mut s = oidc_settings();
        s.console.oidc.issuer = "http://localhost:9000".into();
        s.console.oidc.redirect_url = "http://127.0.0.1:8080/console/oidc/callback".into();
        s.validate().expect("loopback http");
        // Linked users need no group grants.
        s.console.oidc.groups.clear();
        s.console.oidc.permissions_from = PermissionSource::User;
        s.validate().expect("linked users");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns its own error type.
    fn the_client_secret_comes_from_the_environment_and_never_prints() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CALLBACKD_CONSOLE__OIDC__CLIENT_SECRET", "hunter2");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.console.oidc.client_secret.expose(), "hunter2");
            assert!(!format!("{s:?}").contains("hunter2"));
            Ok(())
        });
    }

    #[test]
    fn gather_is_at_most_a_second_and_may_be_zero() {
        let mut s = Settings::default();
        s.dispatch.gather_ms = 1_001;
        let err = s.validate().expect_err("too long").to_string();
        assert!(err.contains("dispatch.gather_ms"), "{err}");
        s.dispatch.gather_ms = 0;
        s.validate().expect("no gathering");
        s.dispatch.gather_ms = 1_000;
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
