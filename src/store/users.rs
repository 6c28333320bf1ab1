use chrono::{DateTime, Utc};

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
    pub token_expires_at: Option<DateTime<Utc>>,
}

impl Store {
    pub async fn add_user(
        &self,
        name: &str,
        token: &TokenHash,
        permissions: &[Permission],
        skills: Option<&[SkillId]>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<i64, StoreError> {
        let permissions: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
        let skills: Option<Vec<i64>> = skills.map(|s| s.iter().map(|id| id.get()).collect());
        sqlx::query_scalar!(
            "INSERT INTO security_users (name, token_sha256, permissions, skill_ids, token_expires_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            name,
            &token.0[..],
            &permissions as &[&str],
            skills.as_deref(),
            expires_at
        )
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
        let done = sqlx::query!(
            "UPDATE security_users SET disabled_at = now() WHERE name = $1 AND disabled_at IS NULL",
            name
        )
        .execute(&self.pool)
        .await?;
        self.cache.invalidate(Some(Table::SecurityUsers));
        Ok(done.rows_affected() == 1)
    }

    pub async fn enable_user(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "UPDATE security_users SET disabled_at = NULL WHERE name = $1 AND disabled_at IS NOT NULL",
            name
        )
        .execute(&self.pool)
        .await?;
        self.cache.invalidate(Some(Table::SecurityUsers));
        Ok(done.rows_affected() == 1)
    }

    /// Replaces a user's token and its expiry (the old one stops working on every daemon
    /// within milliseconds). False when there is no such user.
    pub async fn replace_token(
        &self,
        name: &str,
        token: &TokenHash,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "UPDATE security_users SET token_sha256 = $2, token_expires_at = $3 WHERE name = $1",
            name,
            &token.0[..],
            expires_at
        )
        .execute(&self.pool)
        .await?;
        self.cache.invalidate(Some(Table::SecurityUsers));
        Ok(done.rows_affected() == 1)
    }

    pub async fn list_users(&self) -> Result<Vec<UserSummary>, StoreError> {
        let users = sqlx::query_as!(
            UserSummary,
            "SELECT name, permissions, skill_ids, created_at, disabled_at, token_expires_at
             FROM security_users ORDER BY name"
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(users)
    }

    /// The enabled security user holding this token, if any and unexpired (a cached one is
    /// served for at most a second past its expiry).
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
        let row = sqlx::query_as!(
            UserRow,
            "SELECT id, name, permissions, skill_ids FROM security_users
             WHERE token_sha256 = $1 AND disabled_at IS NULL
               AND (token_expires_at IS NULL OR token_expires_at > now())",
            &token.0[..]
        )
        .fetch_optional(&self.pool)
        .await?;
        let user = row.map(SecurityUser::from);
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
        let row = sqlx::query_as!(
            UserRow,
            "INSERT INTO security_users (name, oidc_issuer, oidc_subject, permissions, skill_ids)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (oidc_issuer, oidc_subject) DO UPDATE
                SET name = EXCLUDED.name, permissions = EXCLUDED.permissions,
                    skill_ids = EXCLUDED.skill_ids
                WHERE security_users.disabled_at IS NULL
             RETURNING id, name, permissions, skill_ids",
            name,
            issuer,
            subject,
            &permissions as &[&str],
            skills.as_deref()
        )
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
        Ok(row.map(SecurityUser::from))
    }

    /// The enabled security user linked to a person at the identity provider.
    pub async fn linked_user(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<SecurityUser>, StoreError> {
        let row = sqlx::query_as!(
            UserRow,
            "SELECT id, name, permissions, skill_ids FROM security_users
             WHERE oidc_issuer = $1 AND oidc_subject = $2 AND disabled_at IS NULL",
            issuer,
            subject
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(SecurityUser::from))
    }

    /// Links a security user to a person at the identity provider; false when no user has
    /// that name.
    pub async fn link_user(
        &self,
        name: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "UPDATE security_users SET oidc_issuer = $2, oidc_subject = $3 WHERE name = $1",
            name,
            issuer,
            subject
        )
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

/// A `security_users` row: what `query_as!(UserRow, …)` reads (`id`, `name`, `permissions`,
/// `skill_ids`).
pub(super) struct UserRow {
    pub id: i64,
    pub name: String,
    pub permissions: Vec<String>,
    pub skill_ids: Option<Vec<i64>>,
}

impl From<UserRow> for SecurityUser {
    fn from(row: UserRow) -> Self {
        SecurityUser {
            id: row.id,
            name: row.name,
            // A permission this build does not know (written by a newer one) grants nothing.
            permissions: row
                .permissions
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
            skills: row.skill_ids.map(|ids| {
                ids.into_iter()
                    .filter_map(|id| SkillId::new(id).ok())
                    .collect()
            }),
        }
    }
}
