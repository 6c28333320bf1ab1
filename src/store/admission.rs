//! A create judged by its skill's per-number admission rules: the number's row in
//! `number_admissions` is locked first, so concurrent creates for one number in one skill
//! are judged one after the other (two presses at once make one callback), then what the
//! number already has is read, judged, and the create written — all in one transaction.
//! Such creates are not grouped with others: each has its own.

use chrono::NaiveDate;

use super::create::write_creates;
use super::{Inserted, NewCreate, Store, StoreError};
use crate::domain::{Admitted, CallbackId, NumberFacts};

/// What an admission-judged create did.
#[derive(Debug)]
pub enum AdmittedCreate {
    Inserted(Inserted),
    /// The number's pending callback, answered instead; nothing written.
    Existing(CallbackId),
}

impl Store {
    /// Writes `create` if `judge`, given what its number already has in its skill on `day`,
    /// admits it. The judge's refusal comes back as the inner error, nothing written.
    pub async fn insert_admitted<E>(
        &self,
        create: &NewCreate,
        day: NaiveDate,
        judge: impl FnOnce(NumberFacts) -> Result<Admitted, E>,
    ) -> Result<Result<AdmittedCreate, E>, StoreError> {
        if let Some(earlier) = self.replay(create).await? {
            return Ok(Ok(AdmittedCreate::Inserted(earlier)));
        }
        let c = &create.callback;
        let mut tx = self.pool.begin().await?;
        // Takes the number's lock (the row's), created at its first create of the day.
        let created_today = sqlx::query_scalar!(
            "INSERT INTO number_admissions (skill_id, phone_number, day, creates)
             VALUES ($1, $2, $3, 0)
             ON CONFLICT (skill_id, phone_number, day)
                DO UPDATE SET creates = number_admissions.creates
             RETURNING creates",
            c.skill_id.get(),
            c.phone_number.as_str(),
            day
        )
        .fetch_one(&mut *tx)
        .await?;
        let pending = sqlx::query!(
            r#"SELECT (SELECT id FROM callbacks
                        WHERE phone_number = $1 AND skill_id = $2 AND state = 'pending'
                        ORDER BY due_at, id LIMIT 1) AS first,
                      (SELECT count(*) FROM callbacks
                        WHERE phone_number = $1 AND skill_id = $2 AND state = 'pending')
                        AS "pending!""#,
            c.phone_number.as_str(),
            c.skill_id.get()
        )
        .fetch_one(&mut *tx)
        .await?;
        let facts = NumberFacts {
            first_pending: pending.first.map(CallbackId::from_uuid),
            pending: u32::try_from(pending.pending).unwrap_or(u32::MAX),
            created_today: u32::try_from(created_today).unwrap_or(0),
        };
        match judge(facts) {
            Err(refused) => Ok(Err(refused)),
            Ok(Admitted::Existing(id)) => Ok(Ok(AdmittedCreate::Existing(id))),
            Ok(Admitted::New) => {
                sqlx::query!(
                    "UPDATE number_admissions SET creates = creates + 1
                     WHERE skill_id = $1 AND phone_number = $2 AND day = $3",
                    c.skill_id.get(),
                    c.phone_number.as_str(),
                    day
                )
                .execute(&mut *tx)
                .await?;
                let stored = write_creates(&mut *tx, &[create]).await?;
                tx.commit().await?;
                let inserted = self
                    .settle(create, stored.contains(&c.id.as_uuid()))
                    .await?;
                Ok(Ok(AdmittedCreate::Inserted(inserted)))
            }
        }
    }

    /// Forgets admission counts of days before `before`.
    pub async fn purge_admissions(&self, before: NaiveDate) -> Result<u64, StoreError> {
        let done = sqlx::query!("DELETE FROM number_admissions WHERE day < $1", before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
