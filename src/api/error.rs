//! The one place where errors become HTTP answers with the spec's result codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

pub use crate::domain::ResultCode;

/// An answer other than success: status, result code and a message naming the bad value.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ResultCode,
    pub message: String,
    /// For a full slot: the starts of the nearest free ones.
    pub suggestions: Option<Vec<chrono::DateTime<chrono::Utc>>>,
    /// For a 429: when to try again (`Retry-After`).
    pub retry_after_secs: Option<u64>,
}

/// Every answer other than success.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"result": "InvalidSkillId", "message": "skill 999 does not exist"}))]
pub struct ErrorBody<'a> {
    /// Which branch the calling script takes.
    pub result: ResultCode,
    /// What was wrong, naming the value.
    pub message: &'a str,
    /// `InvalidScheduleDate` for a full slot: the starts of the nearest free slots, nearest
    /// first (RFC 3339), to offer the caller or to send back as `scheduleDate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestions: Option<&'a [chrono::DateTime<chrono::Utc>]>,
}

/// Messages name the offending value, which can be as long as the body allows: past this
/// many characters the rest is cut, so that answers and log lines stay readable.
const MESSAGE_MAX_CHARS: usize = 300;

fn capped(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MESSAGE_MAX_CHARS) {
        message.truncate(cut);
        message.push_str("… (message cut)");
    }
    message
}

impl ApiError {
    pub fn new(status: StatusCode, code: ResultCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: capped(message.into()),
            suggestions: None,
            retry_after_secs: None,
        }
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ResultCode::InvalidSecurityUser,
            message,
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ResultCode::InvalidSecurityUser,
            message,
        )
    }

    /// A well-formed request whose value is refused with a specific result code.
    pub fn invalid(code: ResultCode, message: impl ToString) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message.to_string())
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ResultCode::Default, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ResultCode::Default,
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ResultCode::Default, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ResultCode::Default, message)
    }

    /// Something the daemon cannot explain to the client; the log has the details.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ResultCode::Default,
            "internal error; the daemon's log has the details",
        )
    }

    /// The client was too slow; the connection is closed after the answer, since what is
    /// left of the request may still be arriving.
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, ResultCode::Default, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ResultCode::Default,
                    "the database is unavailable; retry later",
                )
            }
            StoreError::Conflict(message) => Self::conflict(message),
            StoreError::SlotFull(start) => Self::invalid(
                ResultCode::InvalidScheduleDate,
                format!(
                    "scheduleDate: the slot starting {} is full; GET /v1/skills/{{id}}/availability lists the free ones",
                    start.to_rfc3339()
                ),
            ),
            other => {
                tracing::error!(error = %other, "store error");
                Self::internal()
            }
        }
    }
}

/// A use case's refusal, as HTTP: the one mapping from the application layer's errors.
impl From<crate::app::AppError> for ApiError {
    fn from(err: crate::app::AppError) -> Self {
        use crate::app::AppError;
        let code = err.code();
        match err {
            AppError::Denied(message) => Self::forbidden(message),
            AppError::Unauthenticated(message) => Self::unauthenticated(message),
            e @ AppError::TooMany { retry_after } => Self {
                retry_after_secs: Some(retry_after.as_secs().max(1)),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, e.to_string())
            },
            e @ AppError::NoSuchCallback(_) => Self::not_found(e.to_string()),
            AppError::NotFound(message) => Self::not_found(message),
            e @ (AppError::NotPending { .. } | AppError::NotRetryable { .. }) => {
                Self::conflict(e.to_string())
            }
            AppError::Refused(e) => e.into(),
            AppError::Invalid { message, .. } => Self::invalid(code, message),
            AppError::Malformed(message) => Self::bad_request(message),
            AppError::Conflict(message) => Self::conflict(message),
            AppError::SlotFull(start) => StoreError::SlotFull(start).into(),
            AppError::Store(e) => e.into(),
            AppError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                Self::internal()
            }
        }
    }
}

/// A request the domain refused: 422 with the result code its rule names.
impl From<crate::domain::RequestError> for ApiError {
    fn from(err: crate::domain::RequestError) -> Self {
        match err {
            crate::domain::RequestError::SlotFull {
                message,
                suggestions,
            } => Self {
                suggestions: Some(suggestions),
                ..Self::invalid(ResultCode::InvalidScheduleDate, message)
            },
            other => Self::invalid(other.code(), other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            result: self.code,
            message: &self.message,
            suggestions: self.suggestions.as_deref(),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response.extensions_mut().insert(self.code);
        response
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let short = "skill 999 does not exist".to_owned();
        assert_eq!(super::capped(short.clone()), short);
        let long = format!("phoneNumber `{}` is not valid", "é".repeat(1000));
        let cut = super::capped(long);
        assert!(cut.ends_with("… (message cut)"), "{cut}");
        let suffix = "… (message cut)".chars().count();
        assert_eq!(cut.chars().count(), super::MESSAGE_MAX_CHARS + suffix);
        assert!(cut.starts_with("phoneNumber `éé"));
    }
}
