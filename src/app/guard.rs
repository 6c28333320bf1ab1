//! Who the caller is: a bearer token looked up, with a bounded number of failures per
//! network address.
//!
//! A token the daemon holds in its cache costs nothing to check. Any other costs a database
//! query, and anyone can send many unknown ones — guessing, or a misconfigured client in a
//! loop — which would use up the pool the creates need. So each address may fail at most
//! `api.token_lookups_per_second` lookups a second (bursts of five seconds' worth); past it,
//! every token of that address the cache does not hold is answered 429 with the wait, and
//! the database is not asked, until the budget recovers. Lookups that find a user are not
//! counted: a busy client with a good token is never refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{App, AppError};
use crate::domain::{SecurityUser, TokenHash};

/// Addresses forgotten once their limit has recovered, every this many lookups.
const PRUNE_EVERY: u64 = 4096;

/// Addresses refused at once, at most: past it the oldest refusals are forgotten first.
const BLOCKED_MAX: usize = 10_000;

/// The failed token lookups each address may make.
pub struct TokenLookups {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses over their budget, and until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    seen: AtomicU64,
}

impl TokenLookups {
    /// `per_second` failed lookups per address (bursts of five times that); 0: no limit.
    pub fn new(per_second: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN));
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            blocked: Mutex::new(HashMap::new()),
            seen: AtomicU64::new(0),
        }
    }

    /// Whether `peer` may have a token looked up now, or how long it must wait.
    pub(crate) fn admit(&self, peer: IpAddr) -> Result<(), Duration> {
        let mut blocked = self
            .blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match blocked.get(&peer) {
            Some(until) if *until > Instant::now() => Err(*until - Instant::now()),
            Some(_) => {
                blocked.remove(&peer);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed lookup of `peer`'s; past its budget, refuses it for the wait.
    pub(crate) fn failed(&self, peer: IpAddr) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        if self.seen.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            limiter.retain_recent();
        }
        if let Err(not_until) = limiter.check_key(&peer) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut blocked = self
                .blocked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if blocked.len() >= BLOCKED_MAX {
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
            }
            if blocked.len() < BLOCKED_MAX {
                blocked.insert(peer, Instant::now() + wait);
            }
            tracing::warn!(peer = %peer, "failed token lookups from this address over api.token_lookups_per_second; refusing its unknown tokens for a while");
        }
    }
}

/// The enabled security user whose token this is, asked from `peer` (when known).
/// [`AppError::Unauthenticated`] for an unknown or disabled token, [`AppError::TooMany`]
/// when `peer` has failed too many lookups lately.
pub async fn authenticate(
    app: &App,
    peer: Option<IpAddr>,
    token: &str,
) -> Result<SecurityUser, AppError> {
    let hash = TokenHash::of(token);
    let unknown = || AppError::Unauthenticated("the token is unknown or disabled".into());
    match app.store.cached_user(&hash) {
        Some(Some(user)) => return Ok(user),
        Some(None) => return Err(unknown()),
        None => {}
    }
    if let Some(peer) = peer
        && let Err(wait) = app.token_lookups.admit(peer)
    {
        return Err(AppError::TooMany { retry_after: wait });
    }
    let user = app.store.authenticate(&hash).await?;
    if user.is_none()
        && let Some(peer) = peer
    {
        app.token_lookups.failed(peer);
    }
    user.ok_or_else(unknown)
}
