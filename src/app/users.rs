//! Security users: created, disabled, enabled and given a new token by an operator on the
//! daemon's host (the CLI), which needs nothing but the database.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::AppError;
use crate::domain::{Permission, SecurityUser, SkillId, Token};
use crate::store::Store;

/// A token's life, at least.
const LIFETIME_MIN: Duration = Duration::from_secs(60);
/// A token's life, at most (ten years): anything longer is "does not expire".
const LIFETIME_MAX: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// A token just given to a user: shown this once, stored only as a hash.
pub struct Issued {
    pub token: Token,
    /// `None`: it does not expire.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Issued {
    pub fn expose(&self) -> &str {
        self.token.expose()
    }
}

/// When a token given now for `lifetime` expires (`None`: it does not).
fn expiry(lifetime: Option<Duration>) -> Result<Option<DateTime<Utc>>, AppError> {
    let Some(lifetime) = lifetime else {
        return Ok(None);
    };
    if !(LIFETIME_MIN..=LIFETIME_MAX).contains(&lifetime) {
        return Err(AppError::unacceptable(
            "a token's lifetime must be between one minute and ten years",
        ));
    }
    let lifetime = chrono::Duration::from_std(lifetime)
        .map_err(|_| AppError::unacceptable("a token's lifetime is too long"))?;
    Ok(Some(Utc::now() + lifetime))
}

/// Creates a user and returns its token, which is stored only as a hash and stops working
/// after `lifetime` (when given).
pub async fn add(
    store: &Store,
    name: &str,
    permissions: &[Permission],
    skills: Option<&[SkillId]>,
    lifetime: Option<Duration>,
) -> Result<Issued, AppError> {
    let name = SecurityUser::check_name(name).map_err(AppError::unacceptable)?;
    if permissions.is_empty() {
        return Err(AppError::unacceptable("give at least one permission"));
    }
    let expires_at = expiry(lifetime)?;
    let token = Token::generate();
    store
        .add_user(name, &token.hash(), permissions, skills, expires_at)
        .await?;
    tracing::info!(security_user = %name, token_expires_at = ?expires_at, "security user created");
    Ok(Issued { token, expires_at })
}

/// Disables a user: its token and its console sessions stop working on every daemon.
pub async fn disable(store: &Store, name: &str) -> Result<(), AppError> {
    if !store.disable_user(name).await? {
        return Err(AppError::NotFound(format!(
            "no enabled security user named `{name}`"
        )));
    }
    tracing::info!(security_user = %name, "security user disabled");
    Ok(())
}

/// Enables a disabled user again, with the token it had.
pub async fn enable(store: &Store, name: &str) -> Result<(), AppError> {
    if !store.enable_user(name).await? {
        return Err(AppError::NotFound(format!(
            "no disabled security user named `{name}`"
        )));
    }
    tracing::info!(security_user = %name, "security user enabled");
    Ok(())
}

/// Gives a user a new token (a lost, leaked or expiring one stops working), which stops
/// working after `lifetime` (when given), and returns it.
pub async fn rotate_token(
    store: &Store,
    name: &str,
    lifetime: Option<Duration>,
) -> Result<Issued, AppError> {
    let expires_at = expiry(lifetime)?;
    let token = Token::generate();
    if !store.replace_token(name, &token.hash(), expires_at).await? {
        return Err(AppError::NotFound(format!(
            "no security user named `{name}`"
        )));
    }
    tracing::info!(security_user = %name, token_expires_at = ?expires_at, "security user token rotated");
    Ok(Issued { token, expires_at })
}
