//! Console sessions, sign-ins through the identity provider in progress, and the figures the console's overview shows.

use std::time::Duration;

use super::users::UserRow;
use super::{Store, StoreError};
use crate::domain::{SecurityUser, SkillId, TokenHash};

/// A signed-in console user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: SecurityUser,
    /// The token every state-changing form must carry.
    pub csrf: String,
}

/// What a sign-in through the identity provider must find when the browser comes back.
#[derive(Clone)]
pub struct PendingSignIn {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingSignIn(***)")
    }
}

impl Store {
    /// Starts a session for `user` (the cookie's token hashed), ending after `lifetime`.
    pub async fn create_session(
        &self,
        token: &TokenHash,
        user: &SecurityUser,
        csrf: &str,
        lifetime: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "INSERT INTO console_sessions (token_sha256, security_user_id, csrf, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            &token.0[..],
            user.id,
            csrf,
            lifetime.as_secs_f64()
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live session of this cookie token: not expired, its user not disabled.
    pub async fn session(&self, token: &TokenHash) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query!(
            "SELECT u.id, u.name, u.permissions, u.skill_ids, s.csrf
             FROM console_sessions s JOIN security_users u ON u.id = s.security_user_id
             WHERE s.token_sha256 = $1 AND s.expires_at > now() AND u.disabled_at IS NULL",
            &token.0[..]
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user = UserRow {
            id: row.id,
            name: row.name,
            permissions: row.permissions,
            skill_ids: row.skill_ids,
        };
        Ok(Some(Session {
            user: user.into(),
            csrf: row.csrf,
        }))
    }

    /// Ends a session (sign-out).
    pub async fn end_session(&self, token: &TokenHash) -> Result<(), StoreError> {
        sqlx::query!(
            "DELETE FROM console_sessions WHERE token_sha256 = $1",
            &token.0[..]
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes expired sessions and abandoned sign-ins; returns how many sessions went.
    pub async fn purge_expired_sessions(&self) -> Result<u64, StoreError> {
        let sessions = sqlx::query!("DELETE FROM console_sessions WHERE expires_at < now()")
            .execute(&self.pool)
            .await?;
        sqlx::query!("DELETE FROM console_sign_ins WHERE expires_at < now()")
            .execute(&self.pool)
            .await?;
        Ok(sessions.rows_affected())
    }

    /// Keeps a sign-in through the identity provider until the browser comes back.
    pub async fn begin_sign_in(
        &self,
        browser: &TokenHash,
        pending: &PendingSignIn,
        lifetime: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "INSERT INTO console_sign_ins (browser_sha256, state, nonce, pkce_verifier, expires_at)
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
            &browser.0[..],
            &pending.state,
            &pending.nonce,
            &pending.pkce_verifier,
            lifetime.as_secs_f64()
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The browser's sign-in in progress, removed as it is read: each is used once.
    pub async fn take_sign_in(
        &self,
        browser: &TokenHash,
    ) -> Result<Option<PendingSignIn>, StoreError> {
        let row = sqlx::query!(
            r#"DELETE FROM console_sign_ins WHERE browser_sha256 = $1
             RETURNING state, nonce, pkce_verifier, expires_at > now() AS "live!""#,
            &browser.0[..]
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        if !row.live {
            return Ok(None);
        }
        Ok(Some(PendingSignIn {
            state: row.state,
            nonce: row.nonce,
            pkce_verifier: row.pkce_verifier,
        }))
    }

    /// Callbacks per state, for the overview (a scan of the table: the caller caches it).
    pub async fn state_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query!(
            r#"SELECT state, count(*) AS "n!" FROM callbacks GROUP BY state ORDER BY state"#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.state, r.n)).collect())
    }
}

impl Store {
    /// Pending callbacks per hour and skill in `[from, to)`: one grouped walk of the due
    /// index, for the console's load chart.
    pub async fn load_by_hour(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        skills: Option<&[SkillId]>,
    ) -> Result<Vec<(chrono::DateTime<chrono::Utc>, SkillId, i64)>, StoreError> {
        let allowed: Option<Vec<i64>> = skills.map(|s| s.iter().map(|id| id.get()).collect());
        // A handful of groups from up to millions of rows: hash them. The planner cannot
        // tell how few hours there are, sorts every row instead (spilling to disk: 630 ms
        // instead of 320 ms with 1M pending), and compiles the plan (JIT) for nothing.
        let mut tx = self.pool.begin().await?;
        sqlx::query!("SET LOCAL enable_sort = off")
            .execute(&mut *tx)
            .await?;
        sqlx::query!("SET LOCAL jit = off")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query!(
            r#"SELECT date_trunc('hour', due_at) AS "hour!", skill_id AS "skill_id!",
                    count(*) AS "n!"
             FROM (SELECT due_at, skill_id FROM callbacks
                   WHERE state = 'pending' AND paced_at IS NULL AND due_at >= $1 AND due_at < $2
                   UNION ALL
                   SELECT due_at, skill_id FROM callbacks
                   WHERE state = 'pending' AND paced_at IS NOT NULL
                     AND due_at >= $1 AND due_at < $2) AS pending
             WHERE $3::bigint[] IS NULL OR skill_id = ANY ($3)
             GROUP BY 1, 2"#,
            from,
            to,
            allowed.as_deref()
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        // Ordered here: an ORDER BY would bring the sort back (of every row, as the planner
        // expects as many groups as rows).
        let mut counts = rows
            .into_iter()
            .map(|r| {
                Ok((
                    r.hour,
                    SkillId::new(r.skill_id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    r.n,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        counts.sort_unstable_by_key(|(hour, skill, _)| (*hour, *skill));
        Ok(counts)
    }
}
