//! The checks that span settings or bound numbers; each error names the setting.

use super::*;

impl Settings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, problem: String| Err(ConfigError::Invalid { setting, problem });
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
        for (setting, url) in std::iter::once(("database.url", &self.database.url))
            .chain(self.database.urls.iter().map(|u| ("database.urls", u)))
        {
            if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                return invalid(
                    setting,
                    "must start with postgres:// or postgresql://".into(),
                );
            }
        }
        for (setting, url) in std::iter::once(("amqp.url", &self.amqp.url))
            .chain(self.amqp.urls.iter().map(|u| ("amqp.urls", u)))
        {
            if !url.starts_with("amqp://") && !url.starts_with("amqps://") {
                return invalid(
                    setting,
                    format!("`{url}` must start with amqp:// or amqps://"),
                );
            }
        }
        for (prefix, ca, cert, key) in [
            (
                "database",
                &self.database.ca_file,
                &self.database.client_cert_file,
                &self.database.client_key_file,
            ),
            (
                "amqp",
                &self.amqp.ca_file,
                &self.amqp.client_cert_file,
                &self.amqp.client_key_file,
            ),
        ] {
            check_tls_files(prefix, ca, cert, key)?;
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
        if let Some(base) = self.public.base_url()
            && !(base.starts_with("https://") || base.starts_with("http://"))
        {
            return invalid(
                "public.base_url",
                format!("`{base}` is not an http(s) URL (empty: no customer links)"),
            );
        }
        self.cxone.validate()?;
        let events = &self.amqp.events_exchange;
        if events.starts_with("amq.") || *events == self.amqp.exchange {
            return invalid(
                "amqp.events_exchange",
                format!(
                    "`{events}` is not usable: it must not start with `amq.` nor be amqp.exchange (empty: no event stream)"
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
        if d.gather_ms > 1_000 {
            return invalid(
                "dispatch.gather_ms",
                format!("{} is not in 0..=1000", d.gather_ms),
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
        let l = &self.lifecycle;
        if l.retry_backoff_seconds.is_empty() || l.retry_backoff_seconds.contains(&0) {
            return invalid(
                "lifecycle.retry_backoff_seconds",
                "needs at least one positive number of seconds".into(),
            );
        }
        let p = &self.pacing;
        for (key, value) in [
            ("pacing.agent_max_in_flight", p.agent_max_in_flight),
            ("pacing.skill_max_in_flight", p.skill_max_in_flight),
            ("pacing.skill_max_per_minute", p.skill_max_per_minute),
        ] {
            if value > i32::MAX as u32 {
                return invalid(key, format!("{value} is larger than 2147483647"));
            }
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
        self.console.validate()
    }
}

impl ConsoleSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, problem: String| Err(ConfigError::Invalid { setting, problem });
        let o = &self.oidc;
        if !o.enabled {
            if !self.token_sign_in {
                return invalid(
                    "console.token_sign_in",
                    "nobody could sign in to the console: switch console.oidc.enabled on first"
                        .into(),
                );
            }
            return Ok(());
        }
        if let Err(problem) = provider_url(&o.issuer) {
            return invalid("console.oidc.issuer", problem);
        }
        if o.client_id.trim().is_empty() {
            return invalid("console.oidc.client_id", "must be set".into());
        }
        match provider_url(&o.redirect_url) {
            Err(problem) => return invalid("console.oidc.redirect_url", problem),
            Ok(url) if url.path() != "/console/oidc/callback" || url.query().is_some() => {
                return invalid(
                    "console.oidc.redirect_url",
                    format!(
                        "`{}` must be this daemon's /console/oidc/callback (https://<host>/console/oidc/callback)",
                        o.redirect_url
                    ),
                );
            }
            Ok(_) => {}
        }
        if o.groups_claim.trim().is_empty() || o.name_claim.trim().is_empty() {
            return invalid(
                "console.oidc.groups_claim",
                "console.oidc.groups_claim and console.oidc.name_claim must be set".into(),
            );
        }
        for grant in &o.groups {
            if let Err(problem) = grant.to_domain() {
                return invalid(
                    "console.oidc.groups",
                    format!("group `{}`: {problem}", grant.group),
                );
            }
        }
        if o.permissions_from == PermissionSource::Claims && o.groups.is_empty() {
            return invalid(
                "console.oidc.groups",
                "permissions come from claims (console.oidc.permissions_from = \"claims\") but no group grants any".into(),
            );
        }
        Ok(())
    }
}

/// An identity provider's URL: https, or http on this host only (a test provider), since
/// codes and tokens travel over it.
fn provider_url(value: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(value).map_err(|e| format!("`{value}` is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(format!(
            "`{value}` must be an https:// URL (http:// only on this host)"
        )),
    }
}

/// TLS files must exist when named, and a client certificate comes with its key.
fn check_tls_files(
    prefix: &'static str,
    ca: &Option<PathBuf>,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> Result<(), ConfigError> {
    let settings: [(&'static str, &Option<PathBuf>); 3] = match prefix {
        "database" => [
            ("database.ca_file", ca),
            ("database.client_cert_file", cert),
            ("database.client_key_file", key),
        ],
        _ => [
            ("amqp.ca_file", ca),
            ("amqp.client_cert_file", cert),
            ("amqp.client_key_file", key),
        ],
    };
    for (setting, path) in settings {
        if let Some(path) = path
            && !path.is_file()
        {
            return Err(ConfigError::Invalid {
                setting,
                problem: format!("no such file: {}", path.display()),
            });
        }
    }
    if cert.is_some() != key.is_some() {
        return Err(ConfigError::Invalid {
            setting: settings[1].0,
            problem: "a client certificate needs its key, and a key its certificate".into(),
        });
    }
    Ok(())
}
