//! The do-not-call list: entries by number and scope, their audit trail, and the look-up
//! the create and the dispatcher share (`dnc_match!`).

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{Store, StoreError};
use crate::domain::{DncEntry, NewDncEntry, PhoneNumber, SkillId, Suppression};

/// A `LEFT JOIN LATERAL` giving `dnc_skill_id`, `dnc_reason` (both NULL when the number is
/// not listed): the live entry for the number in `$phone` and the skill in `$skill`, the
/// skill's own entry before the one for every skill. One probe of `dnc_entries_by_phone`,
/// read backwards for that order: no sort (the dispatcher's sessions price sorts out).
macro_rules! dnc_match {
    ($phone:literal, $skill:literal) => {
        concat!(
            " LEFT JOIN LATERAL (SELECT d.skill_id AS dnc_skill_id, d.reason AS dnc_reason
                FROM dnc_entries d
                WHERE d.phone_number = ",
            $phone,
            " AND (d.skill_id IS NULL OR d.skill_id = ",
            $skill,
            ")
                  AND (d.expires_at IS NULL OR d.expires_at > now())
                ORDER BY COALESCE(d.skill_id, 0) DESC LIMIT 1) AS dnc ON true"
        )
    };
}

/// The entry `dnc_match!` found, if any.
pub(super) fn suppression_from_row(row: &PgRow) -> Result<Option<Suppression>, StoreError> {
    let reason: Option<String> = row.try_get("dnc_reason")?;
    let Some(reason) = reason else {
        return Ok(None);
    };
    let skill_id: Option<i64> = row.try_get("dnc_skill_id")?;
    Ok(Some(Suppression {
        skill_id: skill_id.map(skill_id_from).transpose()?,
        reason,
    }))
}

fn skill_id_from(id: i64) -> Result<SkillId, StoreError> {
    SkillId::new(id).map_err(|e| StoreError::Corrupt(format!("skill id {id}: {e}")))
}

fn entry_from_row(row: &PgRow) -> Result<DncEntry, StoreError> {
    let skill_id: Option<i64> = row.try_get("skill_id")?;
    Ok(DncEntry {
        phone_number: PhoneNumber::from_stored(row.try_get("phone_number")?),
        skill_id: skill_id.map(skill_id_from).transpose()?,
        reason: row.try_get("reason")?,
        expires_at: row.try_get("expires_at")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A change to the list, as recorded.
#[derive(Debug, Clone)]
pub struct DncEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub skill_id: Option<i64>,
    pub details: serde_json::Value,
}

/// Whether a listing was new or replaced an entry of the same number and scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    Created,
    Updated,
    /// The entry already said the same: nothing written, no event.
    Unchanged,
}

impl Store {
    /// Lists a number (or replaces its entry for the same scope), with an audit event.
    pub async fn dnc_put(
        &self,
        entry: &NewDncEntry,
        actor: &str,
    ) -> Result<(DncEntry, Listed), StoreError> {
        let rows = write_entries(&self.pool, &[entry], actor, false).await?;
        if let Some(written) = rows.into_iter().next() {
            return Ok(written);
        }
        let row = sqlx::query(
            "SELECT phone_number, skill_id, reason, expires_at, created_by, created_at, updated_at
             FROM dnc_entries
             WHERE phone_number = $1 AND COALESCE(skill_id, 0) = COALESCE($2, 0)",
        )
        .bind(entry.phone_number.as_str())
        .bind(entry.skill_id.map(SkillId::get))
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::Conflict("the entry was removed while it was listed".into()))?;
        Ok((entry_from_row(&row)?, Listed::Unchanged))
    }

    /// Lists many numbers in one transaction (all or nothing), each with an audit event, a
    /// thousand per statement. A number listed twice for one scope keeps its last line.
    /// `progress` is told how many are written after each slice.
    pub async fn dnc_import(
        &self,
        entries: &[NewDncEntry],
        actor: &str,
        mut progress: impl FnMut(usize),
    ) -> Result<usize, StoreError> {
        let mut last: std::collections::HashMap<(&str, i64), &NewDncEntry> =
            std::collections::HashMap::with_capacity(entries.len());
        for entry in entries {
            let scope = entry.skill_id.map(SkillId::get).unwrap_or(0);
            last.insert((entry.phone_number.as_str(), scope), entry);
        }
        let unique: Vec<&NewDncEntry> = last.into_values().collect();
        let mut tx = self.pool.begin().await?;
        let mut written = 0;
        for slice in unique.chunks(1000) {
            write_entries(&mut *tx, slice, actor, true).await?;
            written += slice.len();
            progress(written);
        }
        tx.commit().await?;
        Ok(written)
    }

    /// Removes a number's entry for one scope; false when there was none.
    pub async fn dnc_remove(
        &self,
        phone: &PhoneNumber,
        skill: Option<SkillId>,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "WITH gone AS (
                DELETE FROM dnc_entries
                WHERE phone_number = $1 AND COALESCE(skill_id, 0) = COALESCE($2, 0)
                RETURNING phone_number, skill_id, reason
             )
             INSERT INTO dnc_events (phone_number, skill_id, actor, kind, details)
             SELECT phone_number, skill_id, $3, 'removed',
                    jsonb_strip_nulls(jsonb_build_object('listedFor', reason, 'reason', $4::text))
             FROM gone",
        )
        .bind(phone.as_str())
        .bind(skill.map(SkillId::get))
        .bind(actor)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A number's entries (every scope, lapsed ones too) and its latest audit events.
    pub async fn dnc_get(
        &self,
        phone: &PhoneNumber,
    ) -> Result<(Vec<DncEntry>, Vec<DncEvent>), StoreError> {
        let entries = sqlx::query(
            "SELECT phone_number, skill_id, reason, expires_at, created_by, created_at, updated_at
             FROM dnc_entries WHERE phone_number = $1 ORDER BY COALESCE(skill_id, 0)",
        )
        .bind(phone.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        let events = sqlx::query(
            // The latest hundred, oldest first, as every history reads.
            "SELECT at, actor, kind, skill_id, details FROM (
                SELECT id, at, actor, kind, skill_id, details FROM dnc_events
                WHERE phone_number = $1 ORDER BY id DESC LIMIT 100
             ) latest ORDER BY id",
        )
        .bind(phone.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(DncEvent {
                at: row.try_get("at")?,
                actor: row.try_get("actor")?,
                kind: row.try_get("kind")?,
                skill_id: row.try_get("skill_id")?,
                details: row.try_get("details")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((entries, events))
    }
}

/// Lists numbers (or replaces their entries for the same scope) with an audit event each,
/// in one statement; `import` is recorded in the events. A number may appear once per scope.
async fn write_entries<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    entries: &[&NewDncEntry],
    actor: &str,
    import: bool,
) -> Result<Vec<(DncEntry, Listed)>, StoreError> {
    let phones: Vec<&str> = entries.iter().map(|e| e.phone_number.as_str()).collect();
    let skills: Vec<Option<i64>> = entries
        .iter()
        .map(|e| e.skill_id.map(SkillId::get))
        .collect();
    let reasons: Vec<&str> = entries.iter().map(|e| e.reason.as_str()).collect();
    let expiries: Vec<Option<DateTime<Utc>>> = entries.iter().map(|e| e.expires_at).collect();
    // `xmax = 0` tells an insert from an update of the same row.
    let rows = sqlx::query(
        "WITH listed AS (
            INSERT INTO dnc_entries (phone_number, skill_id, reason, expires_at, created_by)
            SELECT *, $5 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[])
            ON CONFLICT (phone_number, (COALESCE(skill_id, 0))) DO UPDATE
               SET reason = EXCLUDED.reason, expires_at = EXCLUDED.expires_at,
                   updated_at = now()
               -- An entry that already says the same is not written: no update, no event.
               WHERE (dnc_entries.reason, dnc_entries.expires_at)
                     IS DISTINCT FROM (EXCLUDED.reason, EXCLUDED.expires_at)
            RETURNING phone_number, skill_id, reason, expires_at, created_by, created_at,
                      updated_at, (xmax = 0) AS inserted
         ), events AS (
            INSERT INTO dnc_events (phone_number, skill_id, actor, kind, details)
            SELECT phone_number, skill_id, $5,
                   CASE WHEN inserted THEN 'listed' ELSE 'updated' END,
                   jsonb_build_object('reason', reason, 'expiresAt',
                       (to_jsonb(expires_at AT TIME ZONE 'UTC') #>> '{}') || 'Z')
                   || CASE WHEN $6 THEN jsonb_build_object('import', true) ELSE '{}' END
            FROM listed
         )
         SELECT * FROM listed",
    )
    .bind(&phones)
    .bind(&skills)
    .bind(&reasons)
    .bind(&expiries)
    .bind(actor)
    .bind(import)
    .fetch_all(executor)
    .await
    .map_err(foreign_key_is_unknown_skill)?;
    rows.iter()
        .map(|row| {
            let listed = if row.try_get::<bool, _>("inserted")? {
                Listed::Created
            } else {
                Listed::Updated
            };
            Ok((entry_from_row(row)?, listed))
        })
        .collect()
}

/// An entry for a skill that does not exist breaks the foreign key: say so plainly.
fn foreign_key_is_unknown_skill(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict(format!("a skill named does not exist ({})", db.message()))
        }
        _ => StoreError::from(e),
    }
}
