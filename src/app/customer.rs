//! A customer's own link: what they see, and their two actions — cancel, or move the call
//! to another time — through the same rules as a person's change, recorded with the actor
//! `customer`. A wrong, expired or dead link (its callback no longer pending) gets one
//! answer, and counts against the address's budget of failures.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::change::apply_change;
use super::{App, AppError};
use crate::domain::{
    Callback, CallbackId, CallbackState, ChangeInput, LinkToken, Skill, contact_zone, link_expiry,
    other_times, plausible_token,
};
use crate::store::CallbackChange;

/// The actor a customer's actions are recorded as.
pub const CUSTOMER: &str = "customer";

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Wrong, expired, or its callback no longer pending.
    #[error("this link is not valid any more")]
    Dead,
    /// Too many wrong links from this address.
    #[error("too many wrong links from this address; try again later")]
    TooMany(Duration),
    /// The action was refused (a time the rules refuse) or failed.
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<crate::store::StoreError> for LinkError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::App(AppError::Store(e))
    }
}

/// What the customer's page shows.
#[derive(Debug)]
pub struct CustomerView {
    pub callback: Callback,
    pub skill: Skill,
    /// The customer's zone.
    pub zone: Tz,
    /// Other times they may choose.
    pub options: Vec<DateTime<Utc>>,
}

/// A new link for a callback, when customer links are on (`public.base_url`): its token
/// and URL. It is stored once the callback is ([`store`]).
pub fn new_link(app: &App) -> Option<(LinkToken, String)> {
    let base = app.settings.public.base_url()?;
    let link = LinkToken::generate();
    let url = link.url(base);
    Some((link, url))
}

/// Stores a link given for `callback`, due at `due_at`. A failure only costs the customer
/// their link (logged): the callback is stored.
pub async fn store(app: &App, link: &LinkToken, callback: CallbackId, due_at: DateTime<Utc>) {
    if let Err(e) = app
        .store
        .insert_link(&link.digest, callback, link_expiry(due_at))
        .await
    {
        tracing::warn!(callback_id = %callback, error = %e, "customer link not stored");
    }
}

/// What the customer's page shows: a read, no lock (the dispatcher is not kept waiting by
/// a customer looking).
pub async fn open(app: &App, peer: Option<IpAddr>, token: &str) -> Result<CustomerView, LinkError> {
    let found = match linked(app, peer, token).await? {
        Some(id) => app.store.callback(id).await?,
        None => None,
    };
    let callback = match found {
        Some(c) if c.state == CallbackState::Pending => c,
        _ => return Err(dead(app, peer)),
    };
    let skill = app.store.skill(callback.skill_id).await?.ok_or_else(|| {
        LinkError::App(AppError::NotFound(format!(
            "skill {} does not exist",
            callback.skill_id
        )))
    })?;
    let zone = contact_zone(
        callback.time_zone,
        skill.time_zone,
        app.rules.default_time_zone,
    );
    let options = other_times(&skill, zone, Utc::now(), callback.due_at);
    Ok(CustomerView {
        callback,
        skill,
        zone,
        options,
    })
}

pub async fn cancel(app: &App, peer: Option<IpAddr>, token: &str) -> Result<Callback, LinkError> {
    let locked = resolve(app, peer, token).await?;
    let id = locked.record.id;
    let cancelled = locked
        .cancel(
            CUSTOMER,
            Some("cancelled by the customer through their link"),
        )
        .await?;
    tracing::info!(callback_id = %id, "callback cancelled by the customer");
    Ok(cancelled)
}

/// Moves the call to `at` (RFC 3339), through the rules of any change. Returns it, with
/// the customer's zone.
pub async fn reschedule(
    app: &App,
    peer: Option<IpAddr>,
    token: &str,
    at: &str,
) -> Result<(Callback, Tz), LinkError> {
    let locked = resolve(app, peer, token).await?;
    let id = locked.record.id;
    let skill_zone = locked.skill.time_zone;
    let input = ChangeInput {
        schedule_date: Some(at.to_owned()),
        ..ChangeInput::default()
    };
    let moved = apply_change(
        app,
        locked,
        &input,
        None,
        Some("moved by the customer through their link".into()),
        CUSTOMER,
    )
    .await?;
    tracing::info!(callback_id = %id, due_at = %moved.due_at.to_rfc3339(), "callback moved by the customer");
    let zone = contact_zone(moved.time_zone, skill_zone, app.rules.default_time_zone);
    Ok((moved, zone))
}

/// The link's callback, locked for a change, if the link is good and the callback pending.
async fn resolve(
    app: &App,
    peer: Option<IpAddr>,
    token: &str,
) -> Result<CallbackChange, LinkError> {
    let locked = match linked(app, peer, token).await? {
        Some(id) => app.store.begin_change(id).await?,
        None => None,
    };
    match locked {
        Some(locked) if locked.record.state == CallbackState::Pending => Ok(locked),
        _ => Err(dead(app, peer)),
    }
}

/// The callback an unexpired link names, if the address is within its budget.
async fn linked(
    app: &App,
    peer: Option<IpAddr>,
    token: &str,
) -> Result<Option<CallbackId>, LinkError> {
    if let Some(peer) = peer
        && let Err(wait) = app.link_lookups.admit(peer)
    {
        return Err(LinkError::TooMany(wait));
    }
    if !plausible_token(token) {
        return Ok(None);
    }
    Ok(app
        .store
        .link_callback(&LinkToken::digest_of(token))
        .await?)
}

/// A wrong or dead link: counted against the address.
fn dead(app: &App, peer: Option<IpAddr>) -> LinkError {
    if let Some(peer) = peer {
        app.link_lookups.failed(peer);
    }
    LinkError::Dead
}
