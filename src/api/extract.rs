//! Extractors that turn every malformed request into an [`ApiError`] with a result code
//! (axum's own rejections answer in plain text).

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::domain::{Permission, SecurityUser, SkillId};

/// The authenticated caller: `Authorization: Bearer <token>` of an enabled security user.
pub struct Caller(pub SecurityUser);

impl Caller {
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        Ok(crate::app::require(&self.0, permission)?)
    }

    pub fn require_skill(&self, skill: SkillId) -> Result<(), ApiError> {
        Ok(crate::app::require_skill(&self.0, skill)?)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = crate::http::Peer::from_request_parts(parts, state)
            .await
            .unwrap_or(crate::http::Peer(None));
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthenticated(
                "missing Authorization header; send `Authorization: Bearer <token>`",
            )
        })?;
        // The scheme is case-insensitive (RFC 9110 §11.1): `Bearer`, `bearer`, `BEARER`.
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated("the Authorization header is not `Bearer <token>`")
            })?;
        let user = crate::app::authenticate(state, peer.0, token).await?;
        Ok(Caller(user))
    }
}

/// A JSON body read with the field path in every error. Syntax errors answer 400, values of
/// the wrong shape 422, oversized bodies 413. Keeps a digest of the body's canonical form
/// (keys sorted, whitespace dropped) for `Idempotency-Key`.
pub struct JsonBody<T> {
    pub value: T,
    pub digest: [u8; 32],
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        Self::parse(&read_body(req, state).await?)
    }
}

/// A request's whole body, within `api.body_read_timeout_ms` (else 408) and
/// `api.max_body_bytes` (else 413).
pub async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let read = tokio::time::timeout(
        state.http.body_read_timeout,
        Bytes::from_request(req, state),
    );
    let bytes = read.await.map_err(|_| {
        ApiError::request_timeout(format!(
            "the request body did not arrive within api.body_read_timeout_ms ({} ms)",
            state.http.body_read_timeout.as_millis()
        ))
    })?;
    bytes.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                super::ResultCode::Default,
                format!(
                    "the request body is larger than the {} bytes allowed",
                    state.http.max_body_bytes
                ),
            )
        } else {
            ApiError::bad_request(format!("the request body could not be read: {rejection}"))
        }
    })
}

impl<T: DeserializeOwned> JsonBody<T> {
    /// Reads a body already received: one JSON object with each key once (anything else,
    /// including malformed JSON, is 400), then its fields (a value of the wrong shape: 422).
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        let object = crate::wire::object(bytes).map_err(|e| match e {
            crate::wire::WireError::Empty => {
                ApiError::bad_request("the request body is empty; send a JSON object")
            }
            crate::wire::WireError::Syntax(e) => {
                ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
            }
            crate::wire::WireError::DuplicateKey(e) => {
                ApiError::bad_request(format!("the request body is ambiguous: {e}"))
            }
            crate::wire::WireError::NotAnObject(what) => ApiError::bad_request(format!(
                "the request body must be a JSON object, not {what}"
            )),
        })?;
        let canonical = serde_json::Value::Object(object);
        let value = serde_path_to_error::deserialize(&canonical).map_err(|e| {
            let path = e.path().to_string();
            let inner = crate::wire::plain_words(&e.into_inner().to_string());
            if path == "." {
                ApiError::unprocessable(format!("the request body is not acceptable: {inner}"))
            } else {
                ApiError::unprocessable(format!("{path}: {inner}"))
            }
        })?;
        let digest = Sha256::digest(canonical.to_string().as_bytes()).into();
        Ok(Self { value, digest })
    }
}

/// The single path parameter, parsed with `FromStr`; a bad one answers 400 with its value.
pub struct PathParam<T>(pub T);

impl<T> FromRequestParts<AppState> for PathParam<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("bad path: {e}")))?;
        let (_, raw) = params
            .iter()
            .next()
            .ok_or_else(|| ApiError::bad_request("missing path parameter"))?;
        raw.parse::<T>()
            .map(PathParam)
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }
}

/// The query string, deserialised with the offending parameter named in errors.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))
    }
}

/// The request's `Idempotency-Key` with the body's digest; none without the header, 400 for
/// a bad one.
pub fn idempotency_key(
    headers: &axum::http::HeaderMap,
    digest: [u8; 32],
) -> Result<Option<crate::app::IdempotencyKey>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
        })?;
    Ok(Some(crate::app::IdempotencyKey {
        key: key.to_owned(),
        request_sha256: digest,
    }))
}
