//! What a CXone client sends, read with every refusal in CXone's shape: the caller (the
//! native bearer token), a path id, and the fields — in the query string, as CXone's
//! Admin API takes them, or as a JSON body.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::CxError;
use crate::api::extract::{Caller, JsonBody, PathParam, read_body};
use crate::api::{ApiError, AppState};

/// The authenticated caller, exactly as `/v1` authenticates it.
pub struct CxCaller(pub Caller);

impl FromRequestParts<AppState> for CxCaller {
    type Rejection = CxError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, CxError> {
        Ok(Self(Caller::from_request_parts(parts, state).await?))
    }
}

/// The single path parameter (a callback number, an agent or a skill id).
pub struct CxPath<T>(pub T);

impl<T> FromRequestParts<AppState> for CxPath<T>
where
    T: std::str::FromStr + Send,
    T::Err: std::fmt::Display,
{
    type Rejection = CxError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, CxError> {
        let PathParam(value) = PathParam::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// A request's fields from its query string or its JSON body, not both: CXone's Admin API
/// takes them as query parameters, and clients written against its examples send JSON.
/// Unknown fields are refused (400 in a query string, 422 in a body, as `/v1` does).
pub struct Fields<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Fields<T> {
    type Rejection = CxError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, CxError> {
        let query = req.uri().query().unwrap_or_default().to_owned();
        let body = read_body(req, state).await?;
        let has_body = !body.iter().all(u8::is_ascii_whitespace);
        if has_body && !query.is_empty() {
            return Err(ApiError::bad_request(
                "send the fields either in the query string or as a JSON body, not both",
            )
            .into());
        }
        if has_body {
            return Ok(Self(JsonBody::<T>::parse(&body)?.value));
        }
        serde_urlencoded::from_str(&query)
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")).into())
    }
}
