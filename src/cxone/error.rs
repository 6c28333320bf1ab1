//! Errors as CXone clients read them: `{"status": <HTTP status>, "message": "…"}`, with the
//! spec's result code beside them (`result`). Every refusal is first the native API's
//! [`ApiError`] — the same status, code and message — and only its body is reshaped here.

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::{ApiError, ResultCode};

/// A refusal of the CXone surface: the native error, answered in CXone's shape.
#[derive(Debug)]
pub struct CxError(pub ApiError);

/// Every answer of the CXone surface other than success.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": 422, "message": "phoneNumber: `12` is not a valid phone number", "result": "InvalidPhoneNumber"}))]
pub struct CxErrorBody<'a> {
    /// The HTTP status, repeated.
    pub status: u16,
    /// What was wrong, naming the value.
    pub message: &'a str,
    /// The spec's result code: which branch a calling script takes.
    pub result: ResultCode,
}

impl<E: Into<ApiError>> From<E> for CxError {
    fn from(err: E) -> Self {
        Self(err.into())
    }
}

impl IntoResponse for CxError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&CxErrorBody {
            status: self.0.status.as_u16(),
            message: &self.0.message,
            result: self.0.code,
        });
        // The native answer's status, headers (WWW-Authenticate, Retry-After, Connection)
        // and result code for the request log; only the body is CXone's.
        let (mut parts, native_body) = self.0.into_response().into_parts();
        match body {
            Ok(body) => {
                parts.headers.remove(header::CONTENT_LENGTH);
                Response::from_parts(parts, Body::from(body))
            }
            Err(_) => Response::from_parts(parts, native_body),
        }
    }
}
