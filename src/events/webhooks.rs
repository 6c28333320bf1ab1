//! Webhook deliveries: each is `POST`ed as JSON (the event stream's body), signed in the
//! Standard Webhooks convention (`webhook-id`, `webhook-timestamp`, `webhook-signature`),
//! with no redirect followed and no connection to an address the rules refuse (checked
//! for every resolved name, so a name cannot be pointed at the private network later). A
//! failure is retried with a doubling pause until `webhooks.retry_for_seconds` after the
//! event, then marked failed; a subscription whose every attempt failed for
//! `webhooks.pause_after_seconds` is paused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::config::WebhookSettings;
use crate::domain::{TargetRules, WebhookSecret, retry_after};
use crate::store::{AttemptRecord, DueDelivery, Store};

/// Deliveries leased at once.
const BATCH: i64 = 32;
/// The pause when nothing is due.
const IDLE: Duration = Duration::from_millis(500);

pub struct Deliverer {
    store: Store,
    client: reqwest::Client,
    settings: WebhookSettings,
}

/// Resolves names as the system does, keeping only addresses the rules allow.
struct GuardedResolver {
    rules: TargetRules,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let rules = self.rules;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| rules.allows(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{host} resolves to no address a webhook may reach (private, loopback and link-local ones are refused unless webhooks.allow_private_targets)"
                )
                .into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Deliverer {
    pub fn new(store: Store, settings: WebhookSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout())
            .connect_timeout(settings.timeout())
            .user_agent(concat!("callbackd/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                rules: settings.rules(),
            }))
            .build()?;
        Ok(Self {
            store,
            client,
            settings,
        })
    }

    /// Runs until `shutdown`; the deliveries in hand are finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let pause = match self.store.lease_deliveries(BATCH).await {
                Ok(due) if due.is_empty() => IDLE,
                Ok(due) => {
                    let full = due.len() as i64 == BATCH;
                    let attempts = due.iter().map(|d| self.attempt(d));
                    for record in futures_util::future::join_all(attempts).await {
                        self.record(&record).await;
                    }
                    if full { Duration::ZERO } else { IDLE }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: due deliveries could not be read");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One `POST` of a delivery, and what it came to.
    async fn attempt(&self, delivery: &DueDelivery) -> AttemptRecord {
        let started = Instant::now();
        let answer = self.post(delivery).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (status, error) = match answer {
            Ok(status) if status.is_success() => (Some(status.as_u16()), None),
            Ok(status) => (Some(status.as_u16()), Some(format!("answered {status}"))),
            Err(e) => (None, Some(e)),
        };
        let delivered = error.is_none();
        let attempts = u32::try_from(delivery.attempts).unwrap_or(0) + 1;
        let wait = retry_after(attempts);
        let age = (Utc::now() - delivery.created_at)
            .to_std()
            .unwrap_or_default();
        let gave_up = !delivered && age + wait > self.settings.retry_for();
        AttemptRecord {
            delivery_id: delivery.id,
            webhook: delivery.webhook.clone(),
            event_id: delivery.event_id,
            status,
            error,
            duration_ms,
            delivered,
            gave_up,
            retry_in_seconds: wait.as_secs_f64(),
        }
    }

    async fn post(&self, delivery: &DueDelivery) -> Result<reqwest::StatusCode, String> {
        // The address rules again: the URL was checked when stored, the settings may be
        // stricter now.
        let url = self
            .settings
            .rules()
            .check_url(&delivery.url)
            .map_err(|e| e.to_string())?;
        let secret = WebhookSecret::parse(&delivery.secret).map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(&delivery.payload).map_err(|e| e.to_string())?;
        let id = format!("evt_{}", delivery.event_id);
        let timestamp = Utc::now().timestamp();
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", secret.sign(&id, timestamp, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(response.status())
    }

    async fn record(&self, attempt: &AttemptRecord) {
        let pause_after = self.settings.pause_after().as_secs_f64();
        match self.store.record_attempt(attempt, pause_after).await {
            Ok(paused) => {
                crate::instruments::webhook_attempt(attempt.delivered, attempt.gave_up);
                if attempt.gave_up {
                    tracing::warn!(webhook = %attempt.webhook, event_id = attempt.event_id,
                        error = attempt.error.as_deref().unwrap_or_default(),
                        "webhook delivery failed for good: its retry time is over");
                }
                if paused {
                    crate::instruments::webhook_paused();
                    tracing::error!(webhook = %attempt.webhook,
                        error = attempt.error.as_deref().unwrap_or_default(),
                        "webhook paused: every attempt failed for webhooks.pause_after_seconds; PUT it again to resume");
                }
            }
            Err(e) => {
                // The lease runs out and the delivery is tried again: a repeat, same id.
                tracing::warn!(webhook = %attempt.webhook, error = %e, "webhook attempt not recorded");
            }
        }
    }
}

/// A failed request in words, with its cause (reqwest's own message is only the outer
/// layer: "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
