//! Webhooks: subscriptions that receive callback events as signed HTTP `POST`s, in the
//! *Standard Webhooks* convention, and the rules they are judged by — where they may point
//! (no plain HTTP, no private network, unless allowed), their secret, their retries.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{EventKind, SkillId};

/// The prefix of a webhook secret, as Standard Webhooks libraries read it.
const SECRET_PREFIX: &str = "whsec_";
/// A generated secret's key length.
const SECRET_BYTES: usize = 32;
/// At most this many skills or kinds per subscription.
const MAX_FILTER: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("name: `{0}` must be 1 to 100 letters, digits, `.`, `_` or `-`")]
    Name(String),
    #[error("url: {0}")]
    Url(String),
    #[error("kinds: `{0}` is not an event kind")]
    Kind(String),
    #[error("{field}: at most {MAX_FILTER} entries")]
    TooMany { field: &'static str },
    #[error(
        "secret: a Standard Webhooks secret is `whsec_` followed by the base64 of 24 to 64 bytes (leave it out to have one generated)"
    )]
    Secret,
}

/// Where webhooks may point: plain `http://` and private or loopback addresses are
/// refused unless a setting allows them (a webhook must not become a way into the
/// daemon's own network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetRules {
    pub allow_http: bool,
    pub allow_private: bool,
}

impl TargetRules {
    /// A URL a webhook may be given: `https` (or allowed `http`), a host, no credentials,
    /// and, when the host is an address, one the rules allow.
    pub fn check_url(&self, raw: &str) -> Result<url::Url, WebhookError> {
        let url = url::Url::parse(raw.trim()).map_err(|e| WebhookError::Url(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(WebhookError::Url(
                    "only https:// URLs are allowed (webhooks.allow_http allows http://)".into(),
                ));
            }
            other => return Err(WebhookError::Url(format!("`{other}:` is not http(s)"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(WebhookError::Url(
                "credentials in the URL are not allowed; the signature authenticates callbackd"
                    .into(),
            ));
        }
        let refused = |what: &str| {
            WebhookError::Url(format!(
                "{what} is a private, loopback or link-local address (webhooks.allow_private_targets allows it)"
            ))
        };
        match url.host() {
            None => return Err(WebhookError::Url("it has no host".into())),
            Some(url::Host::Ipv4(ip)) if !self.allows(IpAddr::V4(ip)) => {
                return Err(refused(&ip.to_string()));
            }
            Some(url::Host::Ipv6(ip)) if !self.allows(IpAddr::V6(ip)) => {
                return Err(refused(&ip.to_string()));
            }
            Some(url::Host::Domain(name))
                if !self.allow_private
                    && (name.eq_ignore_ascii_case("localhost")
                        || name.to_ascii_lowercase().ends_with(".localhost")) =>
            {
                return Err(refused(name));
            }
            Some(_) => {}
        }
        Ok(url)
    }

    /// Whether a webhook may connect to `ip` (checked again for every name resolved, so a
    /// name that later resolves to a private address is refused too).
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || !is_private(ip)
    }
}

/// Loopback, private (RFC 1918, unique local), link-local (cloud metadata), shared
/// (CGNAT), unspecified and broadcast addresses.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// A webhook's signing secret: `whsec_<base64 key>`. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        use base64::Engine;
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(WebhookError::Secret)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| WebhookError::Secret)?;
        if !(24..=64).contains(&key.len()) {
            return Err(WebhookError::Secret);
        }
        Ok(Self {
            text: text.to_owned(),
            key,
        })
    }

    pub fn generate() -> Self {
        use base64::Engine;
        use rand::RngCore;
        let mut key = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self {
            text: format!(
                "{SECRET_PREFIX}{}",
                base64::engine::general_purpose::STANDARD.encode(&key)
            ),
            key,
        }
    }

    /// As stored and as shown once, to the one who set it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The `webhook-signature` header of one delivery: `v1,<base64 HMAC-SHA256 of
    /// "<id>.<timestamp>.<body>">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        use base64::Engine;
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            // HMAC takes a key of any length; this cannot happen.
            return String::new();
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let signature = mac.finalize().into_bytes();
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(signature)
        )
    }
}

/// A subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub name: String,
    pub url: url::Url,
    /// The event kinds it receives; empty: all.
    pub kinds: Vec<EventKind>,
    /// The skills whose callbacks' events it receives; empty: all.
    pub skill_ids: Vec<SkillId>,
    pub secret: WebhookSecret,
    /// Switched off by a person (`active: false`).
    pub active: bool,
    /// Paused after failing for too long: no new deliveries until set active again.
    pub paused: Option<(DateTime<Utc>, String)>,
    /// Since when every attempt failed (none succeeded since).
    pub failing_since: Option<DateTime<Utc>>,
}

/// A subscription as `PUT /v1/webhooks/{name}` gives it.
#[derive(Debug, Clone, Default)]
pub struct WebhookInput {
    pub url: String,
    pub kinds: Vec<String>,
    pub skill_ids: Vec<SkillId>,
    /// Absent: keep the stored one, or generate one for a new subscription.
    pub secret: Option<String>,
    pub active: bool,
}

impl WebhookInput {
    /// The subscription `name` becomes; `kept` is the secret it has now, if it exists.
    pub fn into_webhook(
        self,
        name: &str,
        kept: Option<WebhookSecret>,
        rules: &TargetRules,
    ) -> Result<Webhook, WebhookError> {
        check_webhook_name(name)?;
        let url = rules.check_url(&self.url)?;
        if self.kinds.len() > MAX_FILTER {
            return Err(WebhookError::TooMany { field: "kinds" });
        }
        if self.skill_ids.len() > MAX_FILTER {
            return Err(WebhookError::TooMany { field: "skillIds" });
        }
        let mut kinds = Vec::with_capacity(self.kinds.len());
        for kind in &self.kinds {
            let kind: EventKind = kind.parse().map_err(|_| WebhookError::Kind(kind.clone()))?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        let mut skill_ids = self.skill_ids;
        skill_ids.sort();
        skill_ids.dedup();
        let secret = match (self.secret.as_deref().map(str::trim), kept) {
            (Some(text), _) if !text.is_empty() => WebhookSecret::parse(text)?,
            (_, Some(kept)) => kept,
            (_, None) => WebhookSecret::generate(),
        };
        Ok(Webhook {
            name: name.to_owned(),
            url,
            kinds,
            skill_ids,
            secret,
            active: self.active,
            paused: None,
            failing_since: None,
        })
    }
}

pub fn check_webhook_name(name: &str) -> Result<&str, WebhookError> {
    let ok = (1..=100).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(name)
    } else {
        Err(WebhookError::Name(name.to_owned()))
    }
}

/// How long after its `attempts`-th failed attempt a delivery is tried again: 5 s,
/// doubling, at most an hour.
pub fn retry_after(attempts: u32) -> Duration {
    let doubled = 5u64.saturating_mul(1u64 << attempts.saturating_sub(1).min(20));
    Duration::from_secs(doubled.min(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_and_public_unless_allowed() {
        let strict = TargetRules::default();
        assert!(strict.check_url("https://crm.example.com/hooks").is_ok());
        for refused in [
            "http://crm.example.com/hooks",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://169.254.169.254/latest",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://localhost:8443/x",
            "https://user:pw@crm.example.com/x",
            "ftp://crm.example.com/x",
            "not a url",
        ] {
            assert!(strict.check_url(refused).is_err(), "{refused}");
        }
        let local = TargetRules {
            allow_http: true,
            allow_private: true,
        };
        assert!(local.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(is_private("::ffff:192.168.1.1".parse().expect("ip")));
        assert!(!is_private("8.8.8.8".parse().expect("ip")));
    }

    #[test]
    fn secrets_round_trip_and_sign_as_the_convention_says() {
        let secret =
            WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        // The Standard Webhooks specification's example.
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
        let generated = WebhookSecret::generate();
        assert_eq!(
            WebhookSecret::parse(generated.expose()).expect("parses"),
            generated
        );
    }

    #[test]
    fn retries_double_up_to_an_hour() {
        assert_eq!(retry_after(1), Duration::from_secs(5));
        assert_eq!(retry_after(2), Duration::from_secs(10));
        assert_eq!(retry_after(30), Duration::from_secs(3600));
    }
}
