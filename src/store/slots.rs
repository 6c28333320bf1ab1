//! Slot bookings: a row per skill and slot counting the callbacks booked in it. A booking
//! increments the row only while it is below the slot's capacity (`INSERT … ON CONFLICT DO
//! UPDATE … WHERE booked < capacity`): concurrent creates into one slot queue on that row's
//! lock, and the one that would overbook it finds no row to return.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use super::create::{NewCreate, write_creates};
use super::{Inserted, Store, StoreError};
use crate::domain::{SkillId, Slot};

/// What became of a create into a slot.
#[derive(Debug)]
pub enum Booked {
    Done(Inserted),
    /// The slot was full: nothing was written.
    Full,
}

/// Books a place in `slot` for `callback`; false (nothing written) when it is full.
pub(super) async fn book(
    conn: &mut PgConnection,
    skill: SkillId,
    slot: &Slot,
    callback: Uuid,
) -> Result<bool, StoreError> {
    if slot.capacity == 0 {
        return Ok(false);
    }
    let booked: Option<i32> = sqlx::query_scalar!(
        "INSERT INTO slot_bookings AS b (skill_id, slot_start, booked) VALUES ($1, $2, 1)
         ON CONFLICT (skill_id, slot_start) DO UPDATE SET booked = b.booked + 1
            WHERE b.booked < $3
         RETURNING booked",
        skill.get(),
        slot.start,
        i32::try_from(slot.capacity).unwrap_or(i32::MAX)
    )
    .fetch_optional(&mut *conn)
    .await?;
    if booked.is_none() {
        return Ok(false);
    }
    sqlx::query!(
        "UPDATE callbacks SET slot_start = $2 WHERE id = $1",
        callback,
        slot.start
    )
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Gives back the place a callback holds, if it holds one.
pub(super) async fn release(
    tx: &mut Transaction<'static, Postgres>,
    callback: Uuid,
) -> Result<(), StoreError> {
    sqlx::query!(
        "WITH held AS (
            UPDATE callbacks c SET slot_start = NULL
            FROM (SELECT id, skill_id, slot_start FROM callbacks WHERE id = $1) AS old
            WHERE c.id = old.id AND old.slot_start IS NOT NULL
            RETURNING old.skill_id, old.slot_start
         )
         UPDATE slot_bookings b SET booked = b.booked - 1
         FROM held WHERE b.skill_id = held.skill_id AND b.slot_start = held.slot_start
           AND b.booked > 0",
        callback
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Stores a create into its slot, in one transaction with the booking: a full slot
    /// writes nothing; a repeat of an idempotency key gets the first answer and books
    /// nothing.
    pub async fn insert_in_slot(
        &self,
        create: &NewCreate,
        slot: &Slot,
    ) -> Result<Booked, StoreError> {
        if let Some(earlier) = self.replay(create).await? {
            return Ok(Booked::Done(earlier));
        }
        let id = create.callback.id.as_uuid();
        let mut tx = self.pool.begin().await?;
        let stored = write_creates(&mut *tx, &[create]).await?.contains(&id);
        if !stored {
            drop(tx);
            return Ok(Booked::Done(self.settle(create, false).await?));
        }
        if !book(&mut tx, create.callback.skill_id, slot, id).await? {
            return Ok(Booked::Full);
        }
        tx.commit().await?;
        Ok(Booked::Done(Inserted::Created))
    }

    /// Callbacks booked per slot start of a skill, for slots starting in `[from, to)`.
    pub async fn slot_bookings(
        &self,
        skill: SkillId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<HashMap<DateTime<Utc>, u32>, StoreError> {
        let rows = sqlx::query!(
            "SELECT slot_start, booked FROM slot_bookings
             WHERE skill_id = $1 AND slot_start >= $2 AND slot_start < $3",
            skill.get(),
            from,
            to
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.slot_start, row.booked.max(0) as u32))
            .collect())
    }
}
