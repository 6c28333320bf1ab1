//! Scheduling a callback: the spec's checks in their order (`domain::plan_create`), then the
//! write — grouped with concurrent creates, or into its slot for a skill with slots — and an
//! idempotent replay for a repeated key.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{App, AppError, Creates, require, require_skill};
use crate::domain::{
    CallbackId, CreateInput, NewCallback, Permission, ResultCode, SLOT_SEARCH, SecurityUser, Skill,
    SkillId, Slot, SlotPolicy, plan_create, replan_full,
};
use crate::store::{AdmittedCreate, Booked, IdempotencyKey, Inserted, NewCreate, StoreError};

/// The answer to a successful create: stored with its idempotency key and replayed as is.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub result: ResultCode,
    pub callback_id: CallbackId,
    pub due_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The customer's own link, when customer links are on (`public.base_url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manage_url: Option<String>,
}

/// What a create did.
#[derive(Debug)]
pub enum Created {
    /// Stored as pending.
    New(Receipt),
    /// A repeat of an earlier request with the same key and body: its answer, unchanged.
    Replayed(serde_json::Value),
    /// The number's pending callback in the skill (`duplicatePolicy` `existing`), answered
    /// instead; nothing was written.
    Existing { receipt: Receipt, message: String },
}

/// Schedules a callback for `user`. `nearest`: a full slot moves the create to the nearest
/// free one instead of refusing it.
pub async fn schedule(
    app: &App,
    user: &SecurityUser,
    input: CreateInput,
    idempotency: Option<IdempotencyKey>,
) -> Result<Created, AppError> {
    require(user, Permission::CallbacksCreate)?;
    // A retry of a create that was stored (its answer lost to a timeout, say) gets that
    // answer, before any rule is judged again: the date may have passed or the number been
    // listed since, and a refusal would have the client create it a second time.
    if let Some(key) = &idempotency {
        match app.store.idempotent_answer(user, key).await? {
            Some(Inserted::Replayed(first)) => return Ok(Created::Replayed(first)),
            Some(Inserted::KeyReused) => return Err(key_reused(&key.key)),
            Some(Inserted::Created) | None => {}
        }
    }
    let nearest = input.nearest_slot;
    let requested = input.requested()?;
    require_skill(user, requested.skill_id)?;
    let region = number_region(app, requested.skill_id).await?;
    let phone = input.phone_number(region);
    let context = app
        .store
        .create_context(
            requested.skill_id,
            &requested.target_agents,
            phone.as_ref().ok(),
        )
        .await?;
    let callback = plan_create(
        input,
        requested,
        phone,
        CallbackId::generate(),
        &context,
        &app.rules,
    )?;
    let route = callback.route().kind();
    let skill_id = callback.skill_id;
    let admission = context
        .skill
        .as_ref()
        .map(|s| s.policy.routing.admission(&app.rules))
        .unwrap_or_default();
    let key = idempotency.as_ref().map(|k| k.key.clone());
    let link = super::customer::new_link(app);
    let manage_url = link.as_ref().map(|(_, url)| url.clone());
    let (receipt, inserted) = match (&callback.slot, &context.skill) {
        (Some(_), Some(skill)) => {
            book_in_slot(app, callback, skill, user, idempotency, nearest, manage_url).await?
        }
        (Some(_), None) => {
            return Err(AppError::Store(StoreError::Corrupt(format!(
                "callback {} has a slot but no skill",
                callback.id
            ))));
        }
        (None, skill) if !admission.is_open() => {
            let zone = skill
                .as_ref()
                .and_then(|s| s.time_zone)
                .unwrap_or(app.rules.default_time_zone);
            let day = context.now.with_timezone(&zone).date_naive();
            let number = callback.phone_number.clone();
            let (create, receipt) = new_create(callback, user, idempotency, manage_url)?;
            let admitted = app
                .store
                .insert_admitted(&create, day, |facts| {
                    admission.judge(&number, skill_id, facts)
                })
                .await??;
            match admitted {
                AdmittedCreate::Inserted(inserted) => (receipt, inserted),
                AdmittedCreate::Existing(id) => return existing(app, id, &number).await,
            }
        }
        (None, _) => {
            let (create, receipt) = new_create(callback, user, idempotency, manage_url)?;
            let inserted = match &app.creates {
                Creates::Grouped(queue) => queue.insert(create).await?,
                Creates::Direct => app.store.insert_callback(&create).await?,
            };
            (receipt, inserted)
        }
    };
    match inserted {
        Inserted::Created => {
            if let Some((link, _)) = &link {
                super::customer::store(app, link, receipt.callback_id, receipt.due_at).await;
            }
            crate::instruments::created(route);
            tracing::info!(
                callback_id = %receipt.callback_id,
                skill_id = skill_id.get(),
                route,
                due_at = %receipt.due_at.to_rfc3339(),
                security_user = %user.name,
                result = "Success",
                "callback created"
            );
            Ok(Created::New(receipt))
        }
        Inserted::Replayed(first) => Ok(Created::Replayed(first)),
        Inserted::KeyReused => Err(key_reused(&key.unwrap_or_default())),
    }
}

/// Where a skill's national numbers are read: its region, else the default (its rules come
/// from the cache).
pub async fn number_region(
    app: &App,
    skill: SkillId,
) -> Result<phonenumber::country::Id, AppError> {
    Ok(app
        .store
        .skill(skill)
        .await?
        .map_or(app.rules.default_region, |s| {
            s.policy.routing.region(&app.rules)
        }))
}

/// The answer for the number's pending callback, given instead of a new one.
async fn existing(
    app: &App,
    id: CallbackId,
    number: &crate::domain::PhoneNumber,
) -> Result<Created, AppError> {
    let found = app
        .store
        .callback(id)
        .await?
        .ok_or(AppError::NoSuchCallback(id))?;
    tracing::info!(callback_id = %id, skill_id = found.skill_id.get(), "create answered with the number's pending callback (duplicatePolicy existing)");
    Ok(Created::Existing {
        receipt: Receipt {
            result: ResultCode::Success,
            callback_id: id,
            due_at: found.due_at,
            expires_at: found.expires_at,
            manage_url: None,
        },
        message: format!(
            "{} already has a pending callback in skill {}: this is it (duplicatePolicy existing); nothing new was created",
            number.masked(),
            found.skill_id
        ),
    })
}

fn key_reused(key: &str) -> AppError {
    AppError::unacceptable(format!(
        "Idempotency-Key `{key}` was already used with a different request body"
    ))
}

/// The create to store, and the receipt it gets (stored with an idempotency key).
fn new_create(
    callback: NewCallback,
    user: &SecurityUser,
    idempotency: Option<IdempotencyKey>,
    manage_url: Option<String>,
) -> Result<(NewCreate, Receipt), AppError> {
    let receipt = Receipt {
        result: ResultCode::Success,
        callback_id: callback.id,
        due_at: callback.due_at,
        expires_at: callback.expires_at,
        manage_url,
    };
    let response = serde_json::to_value(&receipt).map_err(|e| {
        AppError::Store(StoreError::Corrupt(format!(
            "cannot encode the create answer: {e}"
        )))
    })?;
    let create = NewCreate {
        callback,
        actor: user.clone(),
        idempotency,
        response,
    };
    Ok((create, receipt))
}

/// Stores a create of a skill with slots, in its slot. A full slot is refused with the
/// nearest free ones, or (`slotPolicy: nearest`) the create moves to the nearest free one;
/// another create may fill that one first, so a few tries are made.
async fn book_in_slot(
    app: &App,
    mut callback: NewCallback,
    skill: &Skill,
    user: &SecurityUser,
    idempotency: Option<IdempotencyKey>,
    nearest: bool,
    manage_url: Option<String>,
) -> Result<(Receipt, Inserted), AppError> {
    const TRIES: usize = 4;
    let Some(policy) = skill.policy.slots.as_ref() else {
        return Err(AppError::Store(StoreError::Corrupt(format!(
            "skill {} lost its slots while booking",
            skill.id
        ))));
    };
    for _ in 0..TRIES {
        let Some(slot) = callback.slot else {
            break;
        };
        let (create, receipt) = new_create(
            callback.clone(),
            user,
            idempotency.clone(),
            manage_url.clone(),
        )?;
        match app.store.insert_in_slot(&create, &slot).await? {
            Booked::Done(inserted) => return Ok((receipt, inserted)),
            Booked::Full => {
                let now = Utc::now();
                let from = (slot.start - SLOT_SEARCH).max(now);
                let to = slot.start + SLOT_SEARCH;
                let (around, booked) = slots_with_bookings(app, skill, policy, from, to).await?;
                callback = replan_full(
                    callback,
                    skill,
                    &around,
                    |start| booked.get(&start).copied().unwrap_or(0),
                    now,
                    app.rules.default_time_zone,
                    nearest,
                )?;
            }
        }
    }
    Err(AppError::invalid(
        ResultCode::InvalidScheduleDate,
        "scheduleDate: the nearest free slots filled up while booking; try again",
    ))
}

/// A skill's slots starting in `[from, to)` within its calling hours, with how many each
/// already holds: one range read of `slot_bookings`.
pub async fn slots_with_bookings(
    app: &App,
    skill: &Skill,
    policy: &SlotPolicy,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(Vec<Slot>, HashMap<DateTime<Utc>, u32>), AppError> {
    let zone = skill.slot_zone(app.rules.default_time_zone);
    let slots = policy.slots(
        from,
        to,
        zone,
        skill.policy.calling_hours.as_ref(),
        skill.policy.calendar.as_ref(),
    );
    let first = slots.first().map_or(from, |s| s.start);
    let booked = app.store.slot_bookings(skill.id, first, to).await?;
    Ok((slots, booked))
}
