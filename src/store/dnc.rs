//! The do-not-call list: entries by number and scope, their audit trail, and the look-up
//! the create and the dispatcher share ([`DncMatch`]).

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{Store, StoreError};
use crate::domain::{DncEntry, NewDncEntry, PhoneNumber, SkillId, Suppression};

/// What a do-not-call look-up found: `dnc_skill_id`, `dnc_reason`, both NULL when the
/// number is not listed. The look-up is a `LEFT JOIN LATERAL` the create and the dispatcher
/// write out in their statements: the live entry for the number and the skill, the skill's
/// own entry before the one for every skill. One probe of `dnc_entries_by_phone`, read
/// backwards for that order: no sort (the dispatcher's sessions price sorts out).
///
/// ```sql
/// LEFT JOIN LATERAL (SELECT d.skill_id AS dnc_skill_id, d.reason AS dnc_reason
///     FROM dnc_entries d
///     WHERE d.phone_number = <phone> AND (d.skill_id IS NULL OR d.skill_id = <skill>)
///       AND (d.expires_at IS NULL OR d.expires_at > now())
///     ORDER BY COALESCE(d.skill_id, 0) DESC LIMIT 1) AS dnc ON true
/// ```
#[derive(FromRow)]
pub(super) struct DncMatch {
    pub dnc_skill_id: Option<i64>,
    pub dnc_reason: Option<String>,
}

impl DncMatch {
    /// The entry found, if any.
    pub(super) fn suppression(self) -> Result<Option<Suppression>, StoreError> {
        let Some(reason) = self.dnc_reason else {
            return Ok(None);
        };
        Ok(Some(Suppression {
            skill_id: self.dnc_skill_id.map(skill_id_from).transpose()?,
            reason,
        }))
    }
}

fn skill_id_from(id: i64) -> Result<SkillId, StoreError> {
    SkillId::new(id).map_err(|e| StoreError::Corrupt(format!("skill id {id}: {e}")))
}

/// A `dnc_entries` row: what `query_as!(EntryRow, …)` reads.
struct EntryRow {
    phone_number: String,
    skill_id: Option<i64>,
    reason: String,
    expires_at: Option<DateTime<Utc>>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<EntryRow> for DncEntry {
    type Error = StoreError;

    fn try_from(row: EntryRow) -> Result<Self, StoreError> {
        Ok(DncEntry {
            phone_number: PhoneNumber::from_stored(row.phone_number),
            skill_id: row.skill_id.map(skill_id_from).transpose()?,
            reason: row.reason,
            expires_at: row.expires_at,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
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
        let row = sqlx::query_as!(
            EntryRow,
            "SELECT phone_number, skill_id, reason, expires_at, created_by, created_at, updated_at
             FROM dnc_entries
             WHERE phone_number = $1 AND COALESCE(skill_id, 0) = COALESCE($2::bigint, 0)",
            entry.phone_number.as_str(),
            entry.skill_id.map(SkillId::get)
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::Conflict("the entry was removed while it was listed".into()))?;
        Ok((row.try_into()?, Listed::Unchanged))
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
        let done = sqlx::query!(
            "WITH gone AS (
                DELETE FROM dnc_entries
                WHERE phone_number = $1 AND COALESCE(skill_id, 0) = COALESCE($2::bigint, 0)
                RETURNING phone_number, skill_id, reason
             )
             INSERT INTO dnc_events (phone_number, skill_id, actor, kind, details)
             SELECT phone_number, skill_id, $3, 'removed',
                    jsonb_strip_nulls(jsonb_build_object('listedFor', reason, 'reason', $4::text))
             FROM gone",
            phone.as_str(),
            skill.map(SkillId::get),
            actor,
            reason
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A number's entries (every scope, lapsed ones too) and its latest audit events.
    pub async fn dnc_get(
        &self,
        phone: &PhoneNumber,
    ) -> Result<(Vec<DncEntry>, Vec<DncEvent>), StoreError> {
        let entries = sqlx::query_as!(
            EntryRow,
            "SELECT phone_number, skill_id, reason, expires_at, created_by, created_at, updated_at
             FROM dnc_entries WHERE phone_number = $1 ORDER BY COALESCE(skill_id, 0)",
            phone.as_str()
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(DncEntry::try_from)
        .collect::<Result<Vec<_>, _>>()?;
        // The latest hundred, oldest first, as every history reads.
        let events = sqlx::query_as!(
            DncEvent,
            r#"SELECT at AS "at!", actor AS "actor!", kind AS "kind!", skill_id,
                      details AS "details!" FROM (
                SELECT id, at, actor, kind, skill_id, details FROM dnc_events
                WHERE phone_number = $1 ORDER BY id DESC LIMIT 100
             ) latest ORDER BY id"#,
            phone.as_str()
        )
        .fetch_all(&self.pool)
        .await?;
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
    let rows = sqlx::query!(
        r#"WITH listed AS (
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
         SELECT phone_number AS "phone_number!", skill_id, reason AS "reason!", expires_at,
                created_by AS "created_by!", created_at AS "created_at!",
                updated_at AS "updated_at!", inserted AS "inserted!"
         FROM listed"#,
        &phones as &[&str],
        &skills as &[Option<i64>],
        &reasons as &[&str],
        &expiries as &[Option<DateTime<Utc>>],
        actor,
        import
    )
    .fetch_all(executor)
    .await
    .map_err(foreign_key_is_unknown_skill)?;
    rows.into_iter()
        .map(|row| {
            let listed = if row.inserted {
                Listed::Created
            } else {
                Listed::Updated
            };
            let entry = EntryRow {
                phone_number: row.phone_number,
                skill_id: row.skill_id,
                reason: row.reason,
                expires_at: row.expires_at,
                created_by: row.created_by,
                created_at: row.created_at,
                updated_at: row.updated_at,
            };
            Ok((entry.try_into()?, listed))
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
