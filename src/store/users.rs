use chrono::{DateTime, Utc};
use sqlx::Row;

use super::cache::Table;
use super::{Store, StoreError, is_unique_violation};
use crate::domain::{Grant, Permission, SecurityUser, SkillId, TokenHash};

/// A security user as `callbackd user list` shows it (never the token).
#[derive(Debug, Clone)]
pub struct UserSummary {
    pub name: String,
    pub permissions: Vec<String>,
    pub skill_ids: Option<Vec<i64>>,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

impl Store {
    pub async fn add_user(
        &self,
        name: &str,
        token: &TokenHash,
        permissions: &[Permission],
        skills: Option<&[SkillId]>,
    ) -> Result<i64, StoreError> {
        let permissions: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
        let skills: Option<Vec<i64>> = skills.map(|s| s.iter().map(|id| id.get()).collect());
        sqlx::query_scalar(
            "INSERT INTO security_users (name, token_sha256, permissions, skill_ids)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(&token.0[..])
        .bind(&permissions)
        .bind(&skills)
        .fetch_one(&self.pool)
        .await
        .inspect(|_| self.cache.invalidate(Some(Table::SecurityUsers)))
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("a security user named `{name}` already exists"))
            } else {
                e.into()
            }
        })
    }

    /// Returns false when no enabled user has that name.
    pub async fn disable_user(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE security_users SET disabled_at = now() WHERE name = $1 AND disabled_at IS NULL",
        )
        .bind(name)
        .execute(&self.pool)
        .await?;
        self.cache.invalidate(Some(Table::SecurityUsers));
        Ok(done.rows_affected() == 1)
    }

    pub async fn enable_user(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE security_users SET disabled_at = NULL WHERE name = $1 AND disabled_at IS NOT NULL",
        )
        .bind(name)
        .execute(&self.pool)
        .await?;
        self.cache.invalidate(Some(Table::SecurityUsers));
        Ok(done.rows_affected() == 1)
    }

    /// Replaces a user's token (the old one stops working on every daemon within
    /// milliseconds). False when there is no such user.
    pub async fn replace_token(&self, name: &str, token: &TokenHash) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE security_users SET token_sha256 = $2 WHERE name = $1")
            .bind(name)
            .bind(&token.0[..])
            .execute(&self.pool)
            .await?;
        self.cache.invalidate(Some(Table::SecurityUsers));
        Ok(done.rows_affected() == 1)
    }

    pub async fn list_users(&self) -> Result<Vec<UserSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, permissions, skill_ids, created_at, disabled_at
             FROM security_users ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(UserSummary {
                    name: row.try_get("name")?,
                    permissions: row.try_get("permissions")?,
                    skill_ids: row.try_get("skill_ids")?,
                    created_at: row.try_get("created_at")?,
                    disabled_at: row.try_get("disabled_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The enabled security user holding this token, if any.
    pub async fn authenticate(
        &self,
        token: &TokenHash,
    ) -> Result<Option<SecurityUser>, StoreError> {
        if let Some(user) = self.cache.user(token) {
            return Ok(Some(user));
        }
        if self.cache.unknown(token) {
            return Ok(None);
        }
        let ticket = self.cache.ticket();
        let row = sqlx::query(
            "SELECT id, name, permissions, skill_ids FROM security_users
             WHERE token_sha256 = $1 AND disabled_at IS NULL",
        )
        .bind(&token.0[..])
        .fetch_optional(&self.pool)
        .await?;
        let user = row.as_ref().map(user_from_row).transpose()?;
        match &user {
            Some(user) => self.cache.keep_user(ticket, token, user),
            // On a shelf of their own, small: anyone can send many.
            None => self.cache.keep_unknown(ticket, token),
        }
        Ok(user)
    }

    /// What the daemon holds of `token` (no database query): `Some(Some(user))` a known
    /// token, `Some(None)` one found unknown within the last second, `None` nothing.
    pub fn cached_user(&self, token: &TokenHash) -> Option<Option<SecurityUser>> {
        if let Some(user) = self.cache.user(token) {
            return Some(Some(user));
        }
        self.cache.unknown(token).then_some(None)
    }
}

impl Store {
    /// The security user of a person at the identity provider, created at their first
    /// sign-in and given `grant` (refreshed at every sign-in). `None` when that user is
    /// disabled: a sign-in never enables a user again.
    pub async fn upsert_oidc_user(
        &self,
        issuer: &str,
        subject: &str,
        name: &str,
        grant: &Grant,
    ) -> Result<Option<SecurityUser>, StoreError> {
        let permissions: Vec<&str> = grant.permissions.iter().map(|p| p.as_str()).collect();
        let skills: Option<Vec<i64>> = grant
            .skills
            .as_ref()
            .map(|s| s.iter().map(|id| id.get()).collect());
        let row = sqlx::query(
            "INSERT INTO security_users (name, oidc_issuer, oidc_subject, permissions, skill_ids)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (oidc_issuer, oidc_subject) DO UPDATE
                SET name = EXCLUDED.name, permissions = EXCLUDED.permissions,
                    skill_ids = EXCLUDED.skill_ids
                WHERE security_users.disabled_at IS NULL
             RETURNING id, name, permissions, skill_ids",
        )
        .bind(name)
        .bind(issuer)
        .bind(subject)
        .bind(&permissions)
        .bind(&skills)
        .fetch_optional(&self.pool)
        .await
        .inspect(|_| self.cache.invalidate(Some(Table::SecurityUsers)))
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("another security user is already named `{name}`"))
            } else {
                e.into()
            }
        })?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The enabled security user linked to a person at the identity provider.
    pub async fn linked_user(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<SecurityUser>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, permissions, skill_ids FROM security_users
             WHERE oidc_issuer = $1 AND oidc_subject = $2 AND disabled_at IS NULL",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Links a security user to a person at the identity provider; false when no user has
    /// that name.
    pub async fn link_user(
        &self,
        name: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE security_users SET oidc_issuer = $2, oidc_subject = $3 WHERE name = $1",
        )
        .bind(name)
        .bind(issuer)
        .bind(subject)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!(
                    "subject `{subject}` is already linked to another security user"
                ))
            } else {
                e.into()
            }
        })?;
        self.cache.invalidate(Some(Table::SecurityUsers));
        Ok(done.rows_affected() == 1)
    }
}

/// A security user from a row with `id`, `name`, `permissions` and `skill_ids`.
pub(super) fn user_from_row(row: &sqlx::postgres::PgRow) -> Result<SecurityUser, StoreError> {
    let permissions: Vec<String> = row.try_get("permissions")?;
    let skills: Option<Vec<i64>> = row.try_get("skill_ids")?;
    Ok(SecurityUser {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        // A permission this build does not know (written by a newer one) grants nothing.
        permissions: permissions.iter().filter_map(|p| p.parse().ok()).collect(),
        skills: skills.map(|ids| {
            ids.into_iter()
                .filter_map(|id| SkillId::new(id).ok())
                .collect()
        }),
    })
}
