//! `GET /v1/skills/{id}/availability`: a skill's bookable slots in a time range, with the
//! places left in each — what an IVR reads out before booking. One range read of
//! `slot_bookings`: its cost does not grow with the callbacks pending.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{Caller, PathParam, QueryParams};
use std::collections::HashMap;

use crate::domain::{
    Permission, ResultCode, SLOTS_MAX, Skill, SkillId, Slot, SlotPolicy, parse_time_zone,
};

/// At most this long a range is listed at once.
const RANGE_MAX: chrono::Duration = chrono::Duration::days(7);

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// RFC 3339; default: now. Slots that have ended are never listed.
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<DateTime<Utc>>,
    /// RFC 3339, at most 7 days after `from`; default: a day after `from`.
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<DateTime<Utc>>,
    /// IANA zone the times are written in; default: the skill's.
    time_zone: Option<String>,
    /// Only slots with places left.
    #[serde(default)]
    free_only: bool,
}

/// One slot.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotView {
    #[schema(value_type = String, format = DateTime)]
    start: DateTime<FixedOffset>,
    #[schema(value_type = String, format = DateTime)]
    end: DateTime<FixedOffset>,
    capacity: u32,
    booked: u32,
    remaining: u32,
}

/// A skill's slots in calling hours, in time order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    #[schema(value_type = i64)]
    skill_id: SkillId,
    slot_minutes: u32,
    /// The zone the times are written in.
    time_zone: String,
    slots: Vec<SlotView>,
}

#[utoipa::path(
    get,
    path = "/v1/skills/{id}/availability",
    operation_id = "skillAvailability",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The platform's skill id"), AvailabilityQuery),
    responses(
        (status = 200, description = "Success: the slots and the places left in each", body = Availability),
        (status = 400, description = "Default: a bad id or query parameter"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:create and callbacks:read, or may not use that skill"),
        (status = 404, description = "InvalidSkillId: no such skill"),
        (status = 422, description = "InvalidSkillId: the skill has no slots; Default: a range that ends before it starts or spans more than 7 days, an unknown time zone"),
    )
)]
pub async fn availability(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<SkillId>,
    QueryParams(q): QueryParams<AvailabilityQuery>,
) -> Result<Json<Availability>, ApiError> {
    if !caller.0.has(Permission::CallbacksCreate) {
        caller.require(Permission::CallbacksRead)?;
    }
    caller.require_skill(id)?;
    let skill = state.store.skill(id).await?.ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            ResultCode::InvalidSkillId,
            format!("skill {id} does not exist"),
        )
    })?;
    let Some(policy) = skill.policy.slots.as_ref() else {
        return Err(ApiError::invalid(
            ResultCode::InvalidSkillId,
            format!("skill {id} has no bookable slots (set slotMinutes and slotCapacity)"),
        ));
    };
    let shown = match q.time_zone.as_deref() {
        Some(name) => {
            parse_time_zone(name).map_err(|e| ApiError::unprocessable(format!("timeZone: {e}")))?
        }
        None => skill.slot_zone(state.rules.default_time_zone),
    };
    let now = Utc::now();
    let from = q.from.unwrap_or(now).max(now);
    // Nothing can be booked past the schedule horizon, so nothing past it is listed (and
    // no date arithmetic runs near the end of the calendar).
    let horizon = now + state.rules.horizon;
    if from > horizon {
        return Err(ApiError::unprocessable(format!(
            "from: {} is past the schedule horizon ({})",
            from.to_rfc3339(),
            horizon.to_rfc3339()
        )));
    }
    let to =
        q.to.unwrap_or(from + chrono::Duration::days(1))
            .min(horizon);
    if to <= from || to - from > RANGE_MAX {
        return Err(ApiError::unprocessable(
            "from and to: `to` must come after `from` (and after now), at most 7 days later",
        ));
    }
    let (slots, booked) = slots_with_bookings(&state, &skill, policy, from, to).await?;
    let slots = slots
        .iter()
        .take(SLOTS_MAX)
        .map(|s| {
            let booked = booked.get(&s.start).copied().unwrap_or(0);
            SlotView {
                start: s.start.with_timezone(&shown).fixed_offset(),
                end: s.end.with_timezone(&shown).fixed_offset(),
                capacity: s.capacity,
                booked,
                remaining: s.capacity.saturating_sub(booked),
            }
        })
        .filter(|s| !q.free_only || s.remaining > 0)
        .collect();
    Ok(Json(Availability {
        skill_id: id,
        slot_minutes: policy.minutes,
        time_zone: shown.name().to_owned(),
        slots,
    }))
}

/// A skill's slots starting in `[from, to)` within its calling hours, with how many each
/// already holds: one range read of `slot_bookings`.
pub(crate) async fn slots_with_bookings(
    state: &AppState,
    skill: &Skill,
    policy: &SlotPolicy,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(Vec<Slot>, HashMap<DateTime<Utc>, u32>), ApiError> {
    let zone = skill.slot_zone(state.rules.default_time_zone);
    let slots = policy.slots(
        from,
        to,
        zone,
        skill.policy.calling_hours.as_ref(),
        skill.policy.calendar.as_ref(),
    );
    let first = slots.first().map_or(from, |s| s.start);
    let booked = state.store.slot_bookings(skill.id, first, to).await?;
    Ok((slots, booked))
}
