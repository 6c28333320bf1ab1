//! Create probes read in groups. Every create reads the database clock and looks its number
//! up in the do-not-call list before it is judged (its skill and agents come from the cache):
//! a statement of its own per request, as many round trips as creates, where their writes
//! already share one ([`CreateQueue`](super::CreateQueue)). Here concurrent probes wait in a
//! queue and a few readers each take what has gathered — never waiting for more, so a lone
//! request goes out at once — and read them in one statement.

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::dnc::DncMatch;
use super::{Store, StoreError};
use crate::domain::{PhoneNumber, SkillId, Suppression};

/// Probes read by one statement at most.
const GROUP_MAX: usize = 256;
/// Groups being read at once.
const READERS: usize = 2;
/// Probes waiting for a reader.
const QUEUE: usize = 1024;

/// What a create's probe found: the database clock and the do-not-call entry that lists the
/// number for the skill, if any.
pub(super) type Probed = (DateTime<Utc>, Option<Suppression>);

struct Probe {
    skill: SkillId,
    phone: Option<String>,
    reply: oneshot::Sender<Result<Probed, StoreError>>,
}

/// The way in for probes; cloning shares the queue. Its readers end with the runtime (a probe
/// only reads: one cut short fails its request, nothing else).
#[derive(Debug, Clone)]
pub(super) struct ProbeQueue {
    jobs: mpsc::Sender<Probe>,
}

impl ProbeQueue {
    pub(super) fn start(store: Store) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let queue = std::sync::Arc::new(Mutex::new(queue));
        for _ in 0..READERS {
            tokio::spawn(read_groups(store.clone(), queue.clone()));
        }
        Self { jobs }
    }

    /// The probe for one create; read alone when the readers are gone.
    pub(super) async fn probe(
        &self,
        store: &Store,
        skill: SkillId,
        phone: Option<&PhoneNumber>,
    ) -> Result<Probed, StoreError> {
        let (reply, answer) = oneshot::channel();
        let probe = Probe {
            skill,
            phone: phone.map(|p| p.as_str().to_owned()),
            reply,
        };
        if self.jobs.send(probe).await.is_ok()
            && let Ok(probed) = answer.await
        {
            return probed;
        }
        store.probe_one(skill, phone.map(PhoneNumber::as_str)).await
    }
}

async fn read_groups(store: Store, queue: std::sync::Arc<Mutex<mpsc::Receiver<Probe>>>) {
    let mut group = Vec::with_capacity(GROUP_MAX);
    loop {
        {
            let mut queue = queue.lock().await;
            if queue.recv_many(&mut group, GROUP_MAX).await == 0 {
                return;
            }
        }
        let group = std::mem::take(&mut group);
        match store.probe_group(&group).await {
            Ok(found) => {
                for (probe, probed) in group.into_iter().zip(found) {
                    let _ = probe.reply.send(Ok(probed));
                }
            }
            // The group's statement failed: each probe alone, so that each gets its own
            // answer (and its own error).
            Err(_) => {
                for probe in group {
                    let probed = store.probe_one(probe.skill, probe.phone.as_deref()).await;
                    let _ = probe.reply.send(probed);
                }
            }
        }
    }
}

impl Store {
    /// One create's probe, alone.
    pub(super) async fn probe_one(
        &self,
        skill: SkillId,
        phone: Option<&str>,
    ) -> Result<Probed, StoreError> {
        let row = sqlx::query!(
            r#"SELECT now() AS "now!", dnc.dnc_skill_id AS "dnc_skill_id?",
                    dnc.dnc_reason AS "dnc_reason?"
             FROM (SELECT 1) AS one
             LEFT JOIN LATERAL (SELECT d.skill_id AS dnc_skill_id, d.reason AS dnc_reason
                FROM dnc_entries d
                WHERE d.phone_number = $2 AND (d.skill_id IS NULL OR d.skill_id = $1)
                  AND (d.expires_at IS NULL OR d.expires_at > now())
                ORDER BY COALESCE(d.skill_id, 0) DESC LIMIT 1) AS dnc ON true"#,
            skill.get(),
            phone
        )
        .fetch_one(&self.pool)
        .await?;
        let found = DncMatch {
            dnc_skill_id: row.dnc_skill_id,
            dnc_reason: row.dnc_reason,
        };
        Ok((row.now, found.suppression()?))
    }

    /// A group's probes in one statement, in the group's order.
    async fn probe_group(&self, group: &[Probe]) -> Result<Vec<Probed>, StoreError> {
        let skills: Vec<i64> = group.iter().map(|p| p.skill.get()).collect();
        let phones: Vec<Option<&str>> = group.iter().map(|p| p.phone.as_deref()).collect();
        let rows = sqlx::query!(
            r#"SELECT now() AS "now!", t.n AS "n!", dnc.dnc_skill_id AS "dnc_skill_id?",
                    dnc.dnc_reason AS "dnc_reason?"
             FROM unnest($1::int8[], $2::text[]) WITH ORDINALITY AS t(skill_id, phone, n)
             LEFT JOIN LATERAL (SELECT d.skill_id AS dnc_skill_id, d.reason AS dnc_reason
                FROM dnc_entries d
                WHERE d.phone_number = t.phone AND (d.skill_id IS NULL OR d.skill_id = t.skill_id)
                  AND (d.expires_at IS NULL OR d.expires_at > now())
                ORDER BY COALESCE(d.skill_id, 0) DESC LIMIT 1) AS dnc ON true
             ORDER BY t.n"#,
            &skills,
            &phones as &[Option<&str>]
        )
        .fetch_all(&self.pool)
        .await?;
        if rows.len() != group.len() {
            return Err(StoreError::Corrupt(format!(
                "{} probes read {} rows",
                group.len(),
                rows.len()
            )));
        }
        rows.into_iter()
            .map(|row| {
                let found = DncMatch {
                    dnc_skill_id: row.dnc_skill_id,
                    dnc_reason: row.dnc_reason,
                };
                Ok((row.now, found.suppression()?))
            })
            .collect()
    }
}
