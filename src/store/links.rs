//! Customers' links: stored by the SHA-256 of their token, found by it while unexpired.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};
use crate::domain::CallbackId;

impl Store {
    pub async fn insert_link(
        &self,
        digest: &[u8],
        callback: CallbackId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "INSERT INTO customer_links (token_sha256, callback_id, expires_at) VALUES ($1, $2, $3)",
            digest,
            callback.as_uuid(),
            expires_at
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The callback of an unexpired link.
    pub async fn link_callback(&self, digest: &[u8]) -> Result<Option<CallbackId>, StoreError> {
        Ok(sqlx::query_scalar!(
            "SELECT callback_id FROM customer_links WHERE token_sha256 = $1 AND expires_at > now()",
            digest
        )
        .fetch_optional(&self.pool)
        .await?
        .map(CallbackId::from_uuid))
    }
}
