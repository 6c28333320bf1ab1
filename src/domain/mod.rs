//! Pure types and validation: what a callback is and which inputs are acceptable.
//!
//! **Architecture invariant:** this module does no I/O. Values are parsed here once, at the
//! edge, and the rest of the daemon only ever handles the parsed types.

mod admission;
mod agents;
mod calendar;
mod callback;
mod change;
mod claims;
mod customer;
mod directory;
mod history;
mod ical;
mod ids;
mod lifecycle;
mod pacing;
mod phone;
mod priority;
mod reminders;
mod report;
mod request;
mod retry;
mod schedule;
mod security;
mod slots;
mod suppression;
mod throughput;
mod webhook;
mod window;

pub use admission::{Admitted, DuplicatePolicy, NumberAdmission, NumberFacts};
pub use agents::{
    MAX_OWNERSHIP_SECONDS, MAX_TARGET_AGENTS, TargetAgentsError, check_ownership, offer,
    target_agents,
};
pub use calendar::{
    CALENDAR_DAYS_MAX, Calendar, CalendarDayJson, CalendarError, CalendarJson, check_calendar_name,
    next_opening, opening_with,
};
pub use callback::{Callback, CallbackState, NewCallback, Route, TextField, TextFieldError};
pub use change::{ChangeInput, ChangedFields, Changes, check_reason, plan_change};
pub use claims::{ClaimMapping, Grant, GroupGrant, claim_strings};
pub use customer::{LinkToken, link_expiry, other_times, plausible_token};
pub use directory::{
    Agent, AgentInput, Direction, DirectoryInputError, MediaType, Skill, SkillError, SkillInput,
    SkillPause, SkillPolicy, SkillRouting,
};
pub use history::{Event, EventKind, OutcomeWrite, cancelled_event, created_events, updated_event};
pub use ids::{AgentId, CallbackId, CallbackNumber, IdError, SkillId};
pub use lifecycle::{
    AttemptError, Current, Decision, LifecycleDefaults, OutcomeKind, RetryPolicy, check_attempt,
    decide,
};
pub use pacing::{Admission, Gate, GateReading, Pacer, PacingDefaults, SkillPacing, gates_of};
pub use phone::{PhoneNumber, PhoneNumberError, region};
pub use priority::{
    PRIORITY_MAX, PriorityRules, amqp_priority, check_priority, compete, effective_priority,
};
pub use reminders::{
    ReminderFacts, ReminderFor, ReminderStep, check_reminders, next_reminder, reminder_details,
};
pub use report::{
    ON_TIME_SECONDS, Period, PromisePart, PromiseRow, ROLLUP_GRAIN, ReportInput, ReportRange,
    Tally, kept, rolled_quarters,
};
pub use request::{
    CreateContext, CreateInput, RawId, RequestError, Requested, ResultCode, WindowPolicy,
    check_target_agent, check_target_agents, plan_create,
};
pub use retry::{Retry, plan_retry};
pub use schedule::{
    DateError, ScheduleDateError, ScheduleRules, contact_zone, parse_time_zone,
    resolve_schedule_date,
};
pub use security::{Permission, PermissionError, SecurityUser, Token, TokenHash};
pub use slots::{
    SLOT_SEARCH, SLOTS_MAX, Slot, SlotPolicy, SlotPolicyError, nearest_free, replan_full,
    slot_full_message,
};
pub use suppression::{DncEntry, DncError, NewDncEntry, Suppression, check_dnc_scope};
pub use throughput::{THROUGHPUT_BUCKET, THROUGHPUT_KINDS, throughput};
pub use webhook::{
    TargetRules, Webhook, WebhookError, WebhookInput, WebhookSecret, check_webhook_name,
    retry_after,
};
pub use window::{
    CallingHours, CallingHoursError, CallingHoursJson, DispatchWindow, Opening, dispatch_window,
    opening,
};
