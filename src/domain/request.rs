//! What a request to schedule or change a callback may ask, decided without I/O: the rules
//! of `docs/spec/schedule-callback.md` in the spec's order of result codes. The handler
//! reads the ids ([`CreateInput::requested`]), looks the skill and agent up, then plans
//! ([`plan_create`], [`plan_change`]); the error says which result code the caller gets.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize};

use super::{
    Agent, AgentId, CallbackId, DateError, IdError, NewCallback, Opening, PhoneNumber,
    PhoneNumberError, ScheduleRules, Skill, SkillError, SkillId, Suppression, TextField,
    TextFieldError, check_priority, contact_zone, parse_time_zone, resolve_schedule_date,
};

/// The result branches a calling script can take (the spec's names, verbatim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultCode {
    Success,
    InvalidSecurityUser,
    InvalidSkillId,
    InvalidTargetAgentId,
    InvalidScheduleDate,
    InvalidPhoneNumber,
    Default,
}

impl ResultCode {
    pub const ALL: [ResultCode; 7] = [
        Self::Success,
        Self::InvalidSecurityUser,
        Self::InvalidSkillId,
        Self::InvalidTargetAgentId,
        Self::InvalidScheduleDate,
        Self::InvalidPhoneNumber,
        Self::Default,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::InvalidSecurityUser => "InvalidSecurityUser",
            Self::InvalidSkillId => "InvalidSkillId",
            Self::InvalidTargetAgentId => "InvalidTargetAgentId",
            Self::InvalidScheduleDate => "InvalidScheduleDate",
            Self::InvalidPhoneNumber => "InvalidPhoneNumber",
            Self::Default => "Default",
        }
    }
}

/// An id as scripts send it: a JSON number or a string of digits. Kept raw so that a bad
/// value is reported with its own result code rather than as malformed JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawId(pub String);

impl<'de> Deserialize<'de> for RawId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an id: a positive integer or a string of digits")
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawId, E> {
                Ok(RawId(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawId, E> {
                Ok(RawId(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawId, E> {
                Ok(RawId(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl RawId {
    /// `""` means "no target agent".
    pub fn target_agent(&self) -> Result<Option<AgentId>, RequestError> {
        if self.0.trim().is_empty() {
            return Ok(None);
        }
        self.0
            .parse()
            .map(Some)
            .map_err(RequestError::TargetAgentIdInvalid)
    }
}

/// What to do with a `scheduleDate` outside the skill's calling hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WindowPolicy {
    /// Move it to the next opening.
    #[default]
    Defer,
    /// Refuse it with `InvalidScheduleDate`.
    Reject,
}

/// Why a create or change was refused; [`RequestError::code`] is what the caller is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Text(#[from] TextFieldError),
    #[error("skillId is missing")]
    MissingSkill,
    #[error("skillId: {0}")]
    SkillIdInvalid(IdError),
    #[error(transparent)]
    Skill(#[from] SkillError),
    #[error("targetAgentId: {0}")]
    TargetAgentIdInvalid(IdError),
    #[error("agent {0} does not exist (targetAgentId takes the agent's id, not its username)")]
    UnknownAgent(AgentId),
    #[error("agent {id} ({username}) is not active")]
    InactiveAgent { id: AgentId, username: String },
    #[error(transparent)]
    TargetAgents(#[from] super::TargetAgentsError),
    #[error("{0}")]
    Ownership(String),
    #[error("ownershipSeconds applies only to a callback with targetAgentId or targetAgentIds")]
    OwnershipWithoutAgent,
    #[error(transparent)]
    Date(#[from] DateError),
    #[error("{outside}; the next opening is {next}")]
    OutsideCallingHours { outside: String, next: String },
    #[error("skill {0} has calling hours that never open")]
    NeverOpen(SkillId),
    #[error(
        "expiresAt {} is not after the due time {}",
        .expires_at.to_rfc3339(),
        .due_at.to_rfc3339()
    )]
    ExpiryNotAfterDue {
        expires_at: DateTime<Utc>,
        due_at: DateTime<Utc>,
    },
    #[error(
        "scheduleDate: the new due time {} is not before the callback's expiresAt {}; send a later expiresAt with it",
        .due_at.to_rfc3339(),
        .expires_at.to_rfc3339()
    )]
    DueNotBeforeKeptExpiry {
        due_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    #[error(transparent)]
    Phone(#[from] PhoneNumberError),
    /// The number is on the do-not-call list for this skill or for every skill.
    #[error("{0}")]
    DoNotCall(String),
    /// The skill's per-number admission rules refuse another callback for the number.
    #[error("phoneNumber: {number} is refused in skill {skill}: {limit}")]
    NumberNotAdmitted {
        number: String,
        skill: SkillId,
        limit: String,
    },
    #[error(
        "nothing to change: send at least one of scheduleDate, notes, targetAgentId, expiresAt, callerId, priority"
    )]
    NothingToChange,
    #[error("timeZone applies only together with scheduleDate")]
    TimeZoneWithoutDate,
    #[error("reason is required: say why (it is recorded with each change)")]
    MissingReason,
    #[error("{0}")]
    Priority(String),
    /// The due time's slot is full; `suggestions` are the nearest free slots' starts.
    #[error("{message}")]
    SlotFull {
        message: String,
        suggestions: Vec<DateTime<Utc>>,
    },
}

impl RequestError {
    pub fn code(&self) -> ResultCode {
        match self {
            Self::MissingSkill | Self::SkillIdInvalid(_) | Self::Skill(_) => {
                ResultCode::InvalidSkillId
            }
            Self::TargetAgentIdInvalid(_)
            | Self::UnknownAgent(_)
            | Self::InactiveAgent { .. }
            | Self::TargetAgents(_) => ResultCode::InvalidTargetAgentId,
            Self::Date(_)
            | Self::OutsideCallingHours { .. }
            | Self::NeverOpen(_)
            | Self::ExpiryNotAfterDue { .. }
            | Self::DueNotBeforeKeptExpiry { .. }
            | Self::SlotFull { .. } => ResultCode::InvalidScheduleDate,
            Self::Phone(_) | Self::DoNotCall(_) | Self::NumberNotAdmitted { .. } => {
                ResultCode::InvalidPhoneNumber
            }
            Self::Text(_)
            | Self::NothingToChange
            | Self::TimeZoneWithoutDate
            | Self::MissingReason
            | Self::Ownership(_)
            | Self::OwnershipWithoutAgent
            | Self::Priority(_) => ResultCode::Default,
        }
    }
}

/// A create as the API reads it, before any rule.
#[derive(Debug, Clone, Default)]
pub struct CreateInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_number: Option<String>,
    pub skill_id: Option<RawId>,
    pub target_agent_id: Option<RawId>,
    /// Preferred agents, in order (at most five); `targetAgentId` is a list of one.
    pub target_agent_ids: Option<Vec<RawId>>,
    /// How long past its due time it waits for its agents (default: the skill's).
    pub ownership_seconds: Option<i64>,
    pub schedule_date: Option<String>,
    pub notes: Option<String>,
    pub time_zone: Option<String>,
    pub expires_at: Option<String>,
    pub window_policy: WindowPolicy,
    /// Book the nearest free slot when the due time's slot is full (else refuse).
    pub nearest_slot: bool,
    /// The number the customer sees (default: the skill's).
    pub caller_id: Option<String>,
    /// The number the request came from.
    pub orig_number: Option<String>,
    /// 0 to 1000 (default: the skill's initial priority).
    pub priority: Option<i64>,
}

/// The skill and agents a create names: what to look up (and what the caller must be
/// allowed to use) before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub skill_id: SkillId,
    /// Its preferred agents, in order; empty: the skill.
    pub target_agents: Vec<AgentId>,
}

/// What planning a create needs from the database: its clock, the skill, the agent, and
/// the do-not-call entry that lists the number for this skill, if one does.
#[derive(Debug, Clone)]
pub struct CreateContext {
    pub now: DateTime<Utc>,
    pub skill: Option<Skill>,
    /// The named agents that exist.
    pub agents: Vec<Agent>,
    pub suppression: Option<Suppression>,
}

fn text(field: &'static str, value: Option<&String>, max: usize) -> Result<String, RequestError> {
    let value = value.cloned().unwrap_or_default();
    TextField::check(field, &value, max)?;
    Ok(value)
}

impl CreateInput {
    /// The first rules, in the spec's order: text fields, then the skill and agent ids.
    pub fn requested(&self) -> Result<Requested, RequestError> {
        text("firstName", self.first_name.as_ref(), TextField::NAME_MAX)?;
        text("lastName", self.last_name.as_ref(), TextField::NAME_MAX)?;
        text("notes", self.notes.as_ref(), TextField::NOTES_MAX)?;
        let skill_id = self
            .skill_id
            .as_ref()
            .ok_or(RequestError::MissingSkill)?
            .0
            .parse()
            .map_err(RequestError::SkillIdInvalid)?;
        let target_agents = super::target_agents(
            self.target_agent_id.as_ref(),
            self.target_agent_ids.as_deref(),
        )?
        .unwrap_or_default();
        Ok(Requested {
            skill_id,
            target_agents,
        })
    }
}

impl CreateInput {
    /// The number, parsed once (libphonenumber's rules are the dearest CPU of a create): the
    /// do-not-call look-up needs it before [`plan_create`], which reports a bad one in the
    /// spec's order. National numbers are read in `region` (the skill's, else the default).
    pub fn phone_number(
        &self,
        region: phonenumber::country::Id,
    ) -> Result<PhoneNumber, PhoneNumberError> {
        PhoneNumber::parse(self.phone_number.as_deref().unwrap_or_default(), region)
    }
}

/// An agent named as a target must exist and be active.
pub fn check_target_agent(id: AgentId, found: Option<&Agent>) -> Result<(), RequestError> {
    match found {
        None => Err(RequestError::UnknownAgent(id)),
        Some(agent) if !agent.active => Err(RequestError::InactiveAgent {
            id,
            username: agent.username.clone(),
        }),
        Some(_) => Ok(()),
    }
}

/// Every agent named as a target must exist and be active (`found`: those that exist).
pub fn check_target_agents(ids: &[AgentId], found: &[Agent]) -> Result<(), RequestError> {
    for id in ids {
        check_target_agent(*id, found.iter().find(|a| a.id == *id))?;
    }
    Ok(())
}

/// A create's expiry: the one asked for, else the skill's default time to live after the
/// due time; it must come after the due time.
fn expiry(
    asked: Option<DateTime<Utc>>,
    skill: &Skill,
    due_at: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, RequestError> {
    let expires_at = asked.or_else(|| {
        skill
            .policy
            .default_ttl_seconds
            .map(|ttl| due_at + Duration::seconds(i64::from(ttl)))
    });
    match expires_at {
        Some(expires_at) if expires_at <= due_at => {
            Err(RequestError::ExpiryNotAfterDue { expires_at, due_at })
        }
        other => Ok(other),
    }
}

/// Applies the skill's calling hours to a requested due time: unchanged when open, else
/// deferred to the next opening (with the reason) or refused, as the request asks.
fn calling_window(
    skill: &Skill,
    zone: Tz,
    due_at: DateTime<Utc>,
    policy: WindowPolicy,
) -> Result<(DateTime<Utc>, Option<String>), RequestError> {
    let hours = skill.policy.calling_hours.as_ref();
    let outside = || match skill
        .policy
        .calendar
        .as_ref()
        .and_then(|c| c.describe(due_at))
    {
        Some(day) => format!(
            "{} is outside the calling hours of skill {}: {day}",
            due_at.with_timezone(&zone).to_rfc3339(),
            skill.id
        ),
        None => format!(
            "{} is outside the calling hours of skill {} ({}) in {}",
            due_at.with_timezone(&zone).to_rfc3339(),
            skill.id,
            hours.map(ToString::to_string).unwrap_or_default(),
            zone.name()
        ),
    };
    match skill.policy.opening(due_at, zone) {
        Opening::Now => Ok((due_at, None)),
        Opening::At(open) if policy == WindowPolicy::Defer => Ok((open, Some(outside()))),
        Opening::At(open) => Err(RequestError::OutsideCallingHours {
            outside: outside(),
            next: open.with_timezone(&zone).to_rfc3339(),
        }),
        Opening::Never => Err(RequestError::NeverOpen(skill.id)),
    }
}

/// Plans a create: every rule after the look-up, in the spec's order (skill, agent,
/// schedule date, phone number). `requested` is what [`CreateInput::requested`] read,
/// `phone` what [`CreateInput::phone_number`] parsed.
pub fn plan_create(
    input: CreateInput,
    requested: Requested,
    phone: Result<PhoneNumber, PhoneNumberError>,
    id: CallbackId,
    context: &CreateContext,
    rules: &ScheduleRules,
) -> Result<NewCallback, RequestError> {
    let skill = context
        .skill
        .as_ref()
        .ok_or(SkillError::Unknown(requested.skill_id))?;
    skill.check_can_carry_callbacks()?;
    check_target_agents(&requested.target_agents, &context.agents)?;
    let ownership_seconds = match (input.ownership_seconds, requested.target_agents.is_empty()) {
        (Some(_), true) => return Err(RequestError::OwnershipWithoutAgent),
        (Some(s), false) => {
            Some(super::check_ownership("ownershipSeconds", s).map_err(RequestError::Ownership)?)
        }
        (None, true) => None,
        (None, false) => skill.policy.routing.ownership_seconds,
    };
    let schedule_date = |e| RequestError::Date(DateError::new("scheduleDate", e));
    let time_zone = input
        .time_zone
        .as_deref()
        .map(parse_time_zone)
        .transpose()
        .map_err(schedule_date)?;
    let zone = contact_zone(time_zone, skill.time_zone, rules.default_time_zone);
    let (scheduled_for, asked_due) = resolve_schedule_date(
        input.schedule_date.as_deref().unwrap_or_default(),
        zone,
        context.now,
        rules,
    )
    .map_err(schedule_date)?;
    let (due_at, deferred_because) = calling_window(skill, zone, asked_due, input.window_policy)?;
    let asked_expiry = input
        .expires_at
        .as_deref()
        .map(|raw| {
            resolve_schedule_date(raw, zone, context.now, rules)
                .map(|(instant, _)| instant)
                .map_err(|e| RequestError::Date(DateError::new("expiresAt", e)))
        })
        .transpose()?;
    let expires_at = expiry(asked_expiry, skill, due_at)?;
    let phone_number = phone?;
    let region = skill.policy.routing.region(rules);
    let caller_id = optional_number("callerId", input.caller_id.as_deref(), region)?
        .or_else(|| skill.policy.routing.caller_id.clone());
    let orig_number = optional_number("origNumber", input.orig_number.as_deref(), region)?;
    let priority = match input.priority {
        Some(p) => check_priority("priority", p).map_err(RequestError::Priority)?,
        None => skill.policy.routing.priority.initial.unwrap_or(0),
    };
    let slot = skill.slot_at(due_at, rules.default_time_zone);
    if let Some(suppression) = &context.suppression {
        return Err(RequestError::DoNotCall(
            suppression.describe(phone_number.as_str()),
        ));
    }
    Ok(NewCallback {
        id,
        first_name: text("firstName", input.first_name.as_ref(), TextField::NAME_MAX)?,
        last_name: text("lastName", input.last_name.as_ref(), TextField::NAME_MAX)?,
        notes: text("notes", input.notes.as_ref(), TextField::NOTES_MAX)?,
        phone_number,
        skill_id: requested.skill_id,
        target_agent_id: requested.target_agents.first().copied(),
        target_agent_ids: requested.target_agents,
        ownership_seconds,
        scheduled_for,
        due_at,
        time_zone,
        expires_at,
        deferred_because,
        slot,
        caller_id,
        orig_number,
        priority,
    })
}

/// An optional number field (`callerId`, `origNumber`): absent or blank is none.
pub(super) fn optional_number(
    field: &'static str,
    value: Option<&str>,
    region: phonenumber::country::Id,
) -> Result<Option<PhoneNumber>, RequestError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(raw) => Ok(Some(PhoneNumber::parse_field(field, raw, region)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{
        Callback, CallingHours, ChangeInput, Direction, MediaType, SkillPolicy, plan_change,
    };

    fn rules() -> ScheduleRules {
        ScheduleRules {
            default_time_zone: Tz::UTC,
            past_grace: Duration::minutes(5),
            horizon: Duration::days(366),
            default_region: phonenumber::country::Id::US,
            admission: crate::domain::NumberAdmission::default(),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
            .single()
            .expect("valid")
    }

    fn skill(policy: SkillPolicy) -> Skill {
        Skill {
            id: SkillId::new(101).expect("id"),
            name: "Outbound".into(),
            media_type: MediaType::Phone,
            direction: Direction::Outbound,
            active: true,
            time_zone: Some("Europe/London".parse().expect("zone")),
            policy,
        }
    }

    fn agent(active: bool) -> Agent {
        Agent {
            id: AgentId::new(7).expect("id"),
            username: "jdoe".into(),
            active,
            name: String::new(),
            skills: Vec::new(),
        }
    }

    fn input() -> CreateInput {
        CreateInput {
            phone_number: Some("+442079460958".into()),
            skill_id: Some(RawId("101".into())),
            target_agent_id: Some(RawId("7".into())),
            schedule_date: Some("2026-11-26T14:30:00".into()),
            ..CreateInput::default()
        }
    }

    fn plan(input: CreateInput, context: &CreateContext) -> Result<NewCallback, RequestError> {
        let requested = input.requested()?;
        let phone = input.phone_number(rules().default_region);
        plan_create(
            input,
            requested,
            phone,
            CallbackId::generate(),
            context,
            &rules(),
        )
    }

    fn context() -> CreateContext {
        CreateContext {
            now: now(),
            skill: Some(skill(SkillPolicy::default())),
            agents: vec![agent(true)],
            suppression: None,
        }
    }

    #[test]
    fn a_number_on_the_do_not_call_list_is_an_invalid_phone_number_after_the_other_rules() {
        let listed = CreateContext {
            suppression: Some(Suppression {
                skill_id: None,
                reason: "asked not to be called".into(),
            }),
            ..context()
        };
        let err = plan(input(), &listed).expect_err("suppressed");
        assert_eq!(err.code(), ResultCode::InvalidPhoneNumber);
        assert!(err.to_string().contains("do-not-call list"), "{err}");
        let mut bad_date = input();
        bad_date.schedule_date = Some("tomorrow".into());
        assert_eq!(
            plan(bad_date, &listed).map(|_| ()).map_err(|e| e.code()),
            Err(ResultCode::InvalidScheduleDate),
            "the spec's order still holds"
        );
    }

    #[test]
    fn a_valid_create_is_planned_in_the_skills_zone() {
        let callback = plan(input(), &context()).expect("valid");
        // 14:30 in London in November is 14:30 UTC.
        assert_eq!(callback.due_at.to_rfc3339(), "2026-11-26T14:30:00+00:00");
        assert_eq!(callback.route().routing_key(), "agent.7");
        assert_eq!(callback.phone_number.as_str(), "+442079460958");
    }

    /// Several rules broken at once: the first in the spec's order decides the result code.
    #[test]
    fn the_first_broken_rule_in_the_specs_order_decides_the_result_code() {
        let mut everything_wrong = input();
        everything_wrong.phone_number = Some("not a number".into());
        everything_wrong.schedule_date = Some("tomorrow".into());
        let no_agent = CreateContext {
            agents: Vec::new(),
            ..context()
        };
        let inactive_skill = CreateContext {
            skill: Some(Skill {
                active: false,
                ..skill(SkillPolicy::default())
            }),
            agents: Vec::new(),
            ..context()
        };
        assert_eq!(
            plan(everything_wrong.clone(), &inactive_skill)
                .map(|_| ())
                .map_err(|e| e.code()),
            Err(ResultCode::InvalidSkillId)
        );
        assert_eq!(
            plan(everything_wrong.clone(), &no_agent)
                .map(|_| ())
                .map_err(|e| e.code()),
            Err(ResultCode::InvalidTargetAgentId)
        );
        assert_eq!(
            plan(everything_wrong.clone(), &context())
                .map(|_| ())
                .map_err(|e| e.code()),
            Err(ResultCode::InvalidScheduleDate)
        );
        everything_wrong.schedule_date = Some("2026-11-26T14:30:00".into());
        assert_eq!(
            plan(everything_wrong, &context())
                .map(|_| ())
                .map_err(|e| e.code()),
            Err(ResultCode::InvalidPhoneNumber)
        );
        let mut missing_skill = input();
        missing_skill.skill_id = None;
        missing_skill.notes = Some("x".repeat(5000));
        assert_eq!(
            missing_skill.requested().map_err(|e| e.code()),
            Err(ResultCode::Default),
            "text limits come first"
        );
    }

    #[test]
    fn calling_hours_defer_or_refuse_and_expiry_follows_the_due_time() {
        let hours: CallingHours = serde_json::from_value(serde_json::json!({
            "mon": ["09:00-17:00"], "tue": ["09:00-17:00"], "wed": ["09:00-17:00"],
            "thu": ["09:00-17:00"], "fri": ["09:00-17:00"]
        }))
        .expect("hours");
        let context = CreateContext {
            skill: Some(skill(SkillPolicy {
                calling_hours: Some(hours),
                default_ttl_seconds: Some(3600),
                ..SkillPolicy::default()
            })),
            ..context()
        };
        let mut evening = input();
        evening.schedule_date = Some("2026-11-26T19:00:00".into());
        let deferred = plan(evening.clone(), &context).expect("deferred");
        assert_eq!(deferred.due_at.to_rfc3339(), "2026-11-27T09:00:00+00:00");
        assert!(deferred.deferred_because.is_some());
        assert_eq!(
            deferred.expires_at.map(|e| e.to_rfc3339()),
            Some("2026-11-27T10:00:00+00:00".into()),
            "the default time to live counts from the deferred due time"
        );
        evening.window_policy = WindowPolicy::Reject;
        let refused = plan(evening, &context).expect_err("refused");
        assert_eq!(refused.code(), ResultCode::InvalidScheduleDate);
        assert!(refused.to_string().contains("next opening"), "{refused}");

        let mut early_expiry = input();
        early_expiry.expires_at = Some("2026-11-26T14:00:00".into());
        let err = plan(early_expiry, &CreateContext { ..context }).expect_err("expiry");
        assert!(
            matches!(err, RequestError::ExpiryNotAfterDue { .. }),
            "{err}"
        );
        let mut bad_expiry = input();
        bad_expiry.expires_at = Some("soon".into());
        let err = plan(bad_expiry, &CreateContext { ..self::context() }).expect_err("field");
        assert!(err.to_string().starts_with("expiresAt: "), "{err}");
    }

    #[test]
    fn a_change_keeps_the_callback_due_before_it_expires() {
        let context = context();
        let current = Callback {
            id: CallbackId::generate(),
            number: 1,
            state: crate::domain::CallbackState::Pending,
            first_name: String::new(),
            last_name: String::new(),
            phone_number: PhoneNumber::from_stored("+442079460958".into()),
            skill_id: SkillId::new(101).expect("id"),
            target_agent_id: None,
            target_agent_ids: Vec::new(),
            ownership_seconds: None,
            notes: String::new(),
            time_zone: None,
            scheduled_for: now(),
            due_at: now() + Duration::hours(1),
            attempt: 0,
            dispatched_at: None,
            last_error: None,
            created_by: "t".into(),
            created_at: now(),
            updated_at: now(),
            expires_at: Some(now() + Duration::hours(2)),
            dial_failures: 0,
            last_outcome: None,
            fallback_due_at: None,
            fell_back_at: None,
            caller_id: None,
            orig_number: None,
            priority: 0,
        };
        let skill = context.skill.clone().expect("skill");
        let change = |input: ChangeInput| {
            let target = input.requested()?;
            plan_change(input, target, &[], &current, &skill, now(), &rules())
        };
        let later = ChangeInput {
            schedule_date: Some("2026-11-25T15:00:00Z".into()),
            ..ChangeInput::default()
        };
        assert!(matches!(
            change(later.clone()),
            Err(RequestError::DueNotBeforeKeptExpiry { .. })
        ));
        let with_expiry = ChangeInput {
            expires_at: Some("2026-11-25T16:00:00Z".into()),
            ..later
        };
        let planned = change(with_expiry).expect("valid");
        assert!(planned.schedule.is_some() && planned.expires_at.is_some());
        assert_eq!(
            change(ChangeInput::default()),
            Err(RequestError::NothingToChange)
        );
    }
}
