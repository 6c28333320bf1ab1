//! Who the caller is: a bearer token looked up, at a bounded rate per network address.
//!
//! A token the daemon holds in its cache costs nothing to check. Any other costs a database
//! query, and anyone can send many — unknown tokens, a guessed one a second — which would use
//! up the pool the creates need. So each address may have at most
//! `api.token_lookups_per_second` tokens looked up (bursts of five seconds' worth); past it
//! the answer is 429 with the wait, and the database is not asked.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{App, AppError};
use crate::domain::{SecurityUser, TokenHash};

/// Addresses forgotten once their limit has recovered, every this many lookups.
const PRUNE_EVERY: u64 = 4096;

/// The token lookups each address may make.
pub struct TokenLookups {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    seen: AtomicU64,
}

impl TokenLookups {
    /// `per_second` lookups per address (bursts of five times that); 0: no limit.
    pub fn new(per_second: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN));
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            seen: AtomicU64::new(0),
        }
    }

    /// One lookup for `peer`, or how long it must wait.
    fn admit(&self, peer: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.seen.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter
            .check_key(&peer)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The enabled security user whose token this is, asked from `peer` (when known).
/// [`AppError::Unauthenticated`] for an unknown or disabled token, [`AppError::TooMany`]
/// when `peer` has used up its lookups.
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
        tracing::warn!(peer = %peer, "token lookups from this address over api.token_lookups_per_second; refused");
        return Err(AppError::TooMany { retry_after: wait });
    }
    app.store.authenticate(&hash).await?.ok_or_else(unknown)
}
