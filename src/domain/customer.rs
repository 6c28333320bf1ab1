//! A customer's own link to their callback: an opaque token (32 random bytes, base64url)
//! kept only as its SHA-256, good while the callback is pending and until a day after its
//! due time; and the times the customer may choose instead (the skill's calling hours,
//! calendar included, on the hour, in their zone).

use chrono::{DateTime, Duration, DurationRound, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use super::{Opening, Skill};

/// How many other times the page offers.
const OPTIONS: usize = 12;
/// How far ahead it looks for them.
const OPTIONS_DAYS: i64 = 14;

/// A new link's token and the digest it is stored as.
#[derive(Clone)]
pub struct LinkToken {
    pub token: String,
    pub digest: Vec<u8>,
}

impl std::fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkToken(…)")
    }
}

impl LinkToken {
    pub fn generate() -> Self {
        use base64::Engine;
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Self {
            digest: Self::digest_of(&token),
            token,
        }
    }

    pub fn digest_of(token: &str) -> Vec<u8> {
        Sha256::digest(token.as_bytes()).to_vec()
    }

    /// `<base>/c/<token>`.
    pub fn url(&self, base_url: &str) -> String {
        format!("{}/c/{}", base_url.trim_end_matches('/'), self.token)
    }
}

/// Whether a string could be a link token at all (so that garbage costs no look-up).
pub fn plausible_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Until when a link given for a callback due at `due_at` works.
pub fn link_expiry(due_at: DateTime<Utc>) -> DateTime<Utc> {
    due_at + Duration::days(1)
}

/// Other times a customer may move their callback to: on the hour, from the next one at
/// least half an hour away, inside the skill's calling hours in the customer's `zone`, not
/// the current due time.
pub fn other_times(
    skill: &Skill,
    zone: Tz,
    now: DateTime<Utc>,
    due_at: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let start = (now + Duration::minutes(30))
        .duration_trunc(Duration::hours(1))
        .map(|t| t + Duration::hours(1))
        .unwrap_or(now);
    (0..OPTIONS_DAYS * 24)
        .map(|h| start + Duration::hours(h))
        .filter(|t| *t != due_at && matches!(skill.policy.opening(*t, zone), Opening::Now))
        .take(OPTIONS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_stored_as_digests() {
        let a = LinkToken::generate();
        let b = LinkToken::generate();
        assert_ne!(a.token, b.token);
        assert!(plausible_token(&a.token), "{}", a.token);
        assert_eq!(a.digest, LinkToken::digest_of(&a.token));
        assert!(!plausible_token("short"));
        assert!(!plausible_token(&format!("{}!", &a.token[..42])));
        assert_eq!(
            a.url("https://cb.example.com/"),
            format!("https://cb.example.com/c/{}", a.token)
        );
    }
}
