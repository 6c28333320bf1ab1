//! What a use case answers when it does not succeed. Each delivery maps these once: the API
//! to a status and result code (`api::error`), the console to a page, the CLI to an exit code.

use chrono::{DateTime, Utc};

use crate::domain::{
    CallbackId, CallbackState, Permission, RequestError, ResultCode, SecurityUser, SkillId,
};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No usable credentials: a missing, unknown or disabled token (`InvalidSecurityUser`).
    #[error("{0}")]
    Unauthenticated(String),
    /// Too many attempts from one address; try again after `retry_after`.
    #[error("too many token lookups from this address; retry in {} s", .retry_after.as_secs().max(1))]
    TooMany { retry_after: std::time::Duration },
    /// The acting user lacks a permission or may not use a skill (`InvalidSecurityUser`).
    #[error("{0}")]
    Denied(String),
    /// Absent, or of a skill the user may not use: the same answer, so that a refusal does
    /// not confirm that it exists.
    #[error("callback {0} does not exist")]
    NoSuchCallback(CallbackId),
    /// Something else the request names does not exist (a skill, an agent, an entry).
    #[error("{0}")]
    NotFound(String),
    /// Only a pending callback can be changed or cancelled.
    #[error("callback {id} is {state}; only pending callbacks can be {verb}")]
    NotPending {
        id: CallbackId,
        state: CallbackState,
        verb: &'static str,
    },
    /// Only a failed or expired callback can be retried.
    #[error("callback {id} is {state}; only failed or expired callbacks can be retried")]
    NotRetryable {
        id: CallbackId,
        state: CallbackState,
    },
    /// The request broke one of the create or change rules; the error names its result code.
    #[error(transparent)]
    Refused(#[from] RequestError),
    /// A well-formed request refused with `code` (the spec's result codes, or `Default`).
    #[error("{message}")]
    Invalid { code: ResultCode, message: String },
    /// A value that cannot be read at all (a bad filter value, an id that is not one).
    #[error("{0}")]
    Malformed(String),
    /// Recorded but not applied (an outcome for an old attempt, or a state it does not
    /// apply to).
    #[error("{0}")]
    Conflict(String),
    /// A piece of the daemon's own work failed (a task that panicked): a defect, logged.
    #[error("internal error: {0}")]
    Internal(String),
    /// A full slot (the create or change is not stored).
    #[error("scheduleDate: the slot starting {} is full", .0.to_rfc3339())]
    SlotFull(DateTime<Utc>),
    #[error(transparent)]
    Store(StoreError),
}

impl AppError {
    pub fn invalid(code: ResultCode, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    /// `Default` with a message: a request well formed but not acceptable.
    pub fn unacceptable(message: impl Into<String>) -> Self {
        Self::invalid(ResultCode::Default, message)
    }

    /// The result code a caller branches on.
    pub fn code(&self) -> ResultCode {
        match self {
            Self::Denied(_) | Self::Unauthenticated(_) => ResultCode::InvalidSecurityUser,
            Self::Refused(e) => e.code(),
            Self::Invalid { code, .. } => *code,
            Self::SlotFull(_) => ResultCode::InvalidScheduleDate,
            Self::NoSuchCallback(_)
            | Self::NotFound(_)
            | Self::NotPending { .. }
            | Self::NotRetryable { .. }
            | Self::Malformed(_)
            | Self::Conflict(_)
            | Self::TooMany { .. }
            | Self::Store(_)
            | Self::Internal(_) => ResultCode::Default,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SlotFull(start) => Self::SlotFull(start),
            StoreError::Conflict(message) => Self::Conflict(message),
            other => Self::Store(other),
        }
    }
}

/// The one permission check, worded once for every delivery.
pub fn require(user: &SecurityUser, permission: Permission) -> Result<(), AppError> {
    if user.has(permission) {
        Ok(())
    } else {
        Err(AppError::Denied(format!(
            "security user `{}` lacks the permission `{permission}`",
            user.name
        )))
    }
}

/// The one skill restriction check.
pub fn require_skill(user: &SecurityUser, skill: SkillId) -> Result<(), AppError> {
    if user.may_use_skill(skill) {
        Ok(())
    } else {
        Err(AppError::Denied(format!(
            "security user `{}` may not use skill {skill}",
            user.name
        )))
    }
}
