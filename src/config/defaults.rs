//! The defaults: what `config/callbackd.toml` shows (a unit test keeps the two equal).

use std::net::SocketAddr;

use chrono_tz::Tz;

use super::*;

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
                token_lookups_per_second: 50,
                header_read_timeout_ms: 10_000,
                body_read_timeout_ms: 5_000,
                write_timeout_ms: 10_000,
            },
            database: DatabaseSettings {
                url: "postgres://postgres@127.0.0.1:5432/callbackd".into(),
                urls: Vec::new(),
                create_if_missing: false,
                max_connections: 16,
                acquire_timeout_ms: 3_000,
                ca_file: None,
                client_cert_file: None,
                client_key_file: None,
            },
            amqp: AmqpSettings {
                url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
                urls: Vec::new(),
                ca_file: None,
                client_cert_file: None,
                client_key_file: None,
                exchange: "callbackd.callbacks".into(),
                events_exchange: "callbackd.events".into(),
                connect_timeout_ms: 5_000,
                reconnect_initial_ms: 500,
                reconnect_max_ms: 10_000,
                queues: Vec::new(),
                outcomes_queue: "callbackd.outcomes".into(),
                dead_letter_queue: "callbackd.outcomes.dead".into(),
                outcomes_prefetch: 64,
                outcomes_delivery_limit: 20,
                outcome_publishers: Vec::new(),
                outcome_publishers_open: false,
            },
            lifecycle: LifecycleSettings {
                retry_backoff_seconds: vec![600, 1800, 7200],
                max_attempts: 3,
                agent_fallback_seconds: 900,
                outcome_deadline_seconds: 86_400,
            },
            pacing: PacingSettings {
                agent_max_in_flight: 1,
                skill_max_in_flight: 0,
                skill_max_per_minute: 0,
            },
            schedule: ScheduleSettings {
                default_time_zone: TimeZone(Tz::UTC),
                default_region: Region(phonenumber::country::Id::US),
                past_grace_seconds: 300,
                horizon_days: 366,
                duplicate_policy: crate::domain::DuplicatePolicy::Allow,
                max_pending_per_number: 0,
                max_creates_per_number_per_day: 0,
            },
            dispatch: DispatchSettings {
                enabled: true,
                batch_size: 500,
                workers: 2,
                poll_interval_ms: 5_000,
                gather_ms: 5,
                publish_window: 256,
                confirm_timeout_ms: 10_000,
                retry_initial_ms: 1_000,
                retry_max_ms: 300_000,
                shutdown_deadline_ms: 10_000,
                instance_name: None,
            },
            maintenance: MaintenanceSettings {
                time_zone: TimeZone(Tz::UTC),
                backlog_report: "0 * * * * *".into(),
                timers: "*/5 * * * * *".into(),
                purge: "0 30 3 * * *".into(),
                retention_days: 30,
            },
            console: ConsoleSettings {
                token_sign_in: true,
                secure_cookies: false,
                oidc: OidcSettings {
                    enabled: false,
                    issuer: String::new(),
                    client_id: String::new(),
                    client_secret: Secret::default(),
                    redirect_url: String::new(),
                    scopes: vec!["profile".into(), "email".into()],
                    provider_name: "your organisation".into(),
                    permissions_from: PermissionSource::Claims,
                    groups_claim: "groups".into(),
                    name_claim: "preferred_username".into(),
                    groups: Vec::new(),
                },
            },
            webhooks: WebhookSettings::default(),
            public: PublicSettings::default(),
            cxone: CxoneSettings::default(),
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
impl Default for PacingSettings {
    fn default() -> Self {
        Settings::default().pacing
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
impl Default for ConsoleSettings {
    fn default() -> Self {
        Settings::default().console
    }
}
impl Default for OidcSettings {
    fn default() -> Self {
        Settings::default().console.oidc
    }
}
