//! Settings from `DIALER_*` environment variables, each with a default that works against a
//! local callbackd with its default configuration.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::dial::OUTCOMES;

pub struct Settings {
    pub url: String,
    pub exchange: String,
    pub queue: String,
    pub bindings: Vec<String>,
    /// false: the queue is declared and bound by someone else (callbackd's `amqp.queues`).
    pub declare: bool,
    pub outcomes_queue: String,
    pub prefetch: u16,
    pub outcome: String,
    pub dial_time: Duration,
    /// The `user_id` property of outcomes: the user name of the URL (see `handle`).
    pub user_id: String,
}

impl Settings {
    pub fn from_env() -> Result<Self> {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or(default.into());
        let url = var("DIALER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
        let uri: lapin::uri::AMQPUri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("DIALER_AMQP_URL is not an AMQP URL: {e}"))?;
        let outcome = var("DIALER_OUTCOME", "completed");
        if !OUTCOMES.contains(&outcome.as_str()) {
            bail!("DIALER_OUTCOME `{outcome}` is not one of {OUTCOMES:?}");
        }
        let number = |name: &str, default: &str| {
            var(name, default)
                .parse::<u64>()
                .with_context(|| format!("{name} is not a whole number"))
        };
        Ok(Settings {
            user_id: uri.authority.userinfo.username,
            url,
            exchange: var("DIALER_EXCHANGE", "callbackd.callbacks"),
            queue: var("DIALER_QUEUE", "callbackd.dialer.rust"),
            bindings: var("DIALER_BINDINGS", "skill.*,agent.*")
                .split(',')
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(String::from)
                .collect(),
            declare: var("DIALER_DECLARE", "true") != "false",
            outcomes_queue: var("DIALER_OUTCOMES_QUEUE", "callbackd.outcomes"),
            prefetch: u16::try_from(number("DIALER_PREFETCH", "10")?)
                .context("DIALER_PREFETCH is too large")?,
            outcome,
            dial_time: Duration::from_millis(number("DIALER_DIAL_MS", "100")?),
        })
    }
}
