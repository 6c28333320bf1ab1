//! Security users: created, disabled, enabled and given a new token by an operator on the
//! daemon's host (the CLI), which needs nothing but the database.

use super::AppError;
use crate::domain::{Permission, SecurityUser, SkillId, Token};
use crate::store::Store;

/// Creates a user and returns its token, which is stored only as a hash.
pub async fn add(
    store: &Store,
    name: &str,
    permissions: &[Permission],
    skills: Option<&[SkillId]>,
) -> Result<Token, AppError> {
    let name = SecurityUser::check_name(name).map_err(AppError::unacceptable)?;
    if permissions.is_empty() {
        return Err(AppError::unacceptable("give at least one permission"));
    }
    let token = Token::generate();
    store
        .add_user(name, &token.hash(), permissions, skills)
        .await?;
    tracing::info!(security_user = %name, "security user created");
    Ok(token)
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

/// Gives a user a new token (a lost or leaked one stops working) and returns it.
pub async fn rotate_token(store: &Store, name: &str) -> Result<Token, AppError> {
    let token = Token::generate();
    if !store.replace_token(name, &token.hash()).await? {
        return Err(AppError::NotFound(format!(
            "no security user named `{name}`"
        )));
    }
    tracing::info!(security_user = %name, "security user token rotated");
    Ok(token)
}
