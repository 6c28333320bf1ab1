//! Settings of what callbackd tells the world: webhook deliveries (where subscriptions may
//! point, how long deliveries are tried) and the customers' own links.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::TargetRules;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Allow `http://` URLs (for receivers on the same host or a trusted network).
    pub allow_http: bool,
    /// Allow private, loopback and link-local targets (off: a subscription cannot reach
    /// into the daemon's own network, cloud metadata included).
    pub allow_private_targets: bool,
    /// How long one `POST` may take, connection included.
    pub timeout_ms: u64,
    /// A delivery is retried (5 s, doubling, at most an hour apart) for this long after its
    /// event, then marked failed.
    pub retry_for_seconds: u64,
    /// A subscription whose every attempt failed for this long is paused.
    pub pause_after_seconds: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_http: false,
            allow_private_targets: false,
            timeout_ms: 10_000,
            retry_for_seconds: 24 * 3600,
            pause_after_seconds: 6 * 3600,
        }
    }
}

impl WebhookSettings {
    pub fn rules(&self) -> TargetRules {
        TargetRules {
            allow_http: self.allow_http,
            allow_private: self.allow_private_targets,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    pub fn retry_for(&self) -> Duration {
        Duration::from_secs(self.retry_for_seconds)
    }

    pub fn pause_after(&self) -> Duration {
        Duration::from_secs(self.pause_after_seconds)
    }
}

/// What customers reach: their own link to their callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicSettings {
    /// The address customers reach this daemon at (`https://callbacks.example.com`); each
    /// new callback and each reminder then carries a `manageUrl` under it. Empty: no links.
    pub base_url: String,
    /// Wrong or dead links each address may open a second (bursts of five times that);
    /// past it, its links are refused for a while. 0: no limit.
    pub link_failures_per_second: u32,
}

impl Default for PublicSettings {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            link_failures_per_second: 1,
        }
    }
}

impl PublicSettings {
    /// The base URL, when customer links are on.
    pub fn base_url(&self) -> Option<&str> {
        Some(self.base_url.trim_end_matches('/')).filter(|b| !b.is_empty())
    }
}
