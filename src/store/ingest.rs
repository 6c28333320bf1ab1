//! Group commit for creates. Every accepted callback must be on disk before its `201`, so a
//! create costs a WAL flush; one flush per request capped creates at the disk's flush rate
//! (measured: ~2,300/s on the bench machine, with PostgreSQL's sessions queued on
//! `WALWrite`). Here concurrent creates wait in a queue and a few writers each take what has
//! gathered — never waiting for more, so a lone request goes out at once — and store it in
//! one statement: one round trip, one commit, one flush for the group. Each request still
//! gets its answer only after the commit that holds its row.
//!
//! A create whose caller is gone by the time a writer takes it (the request timed out with
//! 408, or the client hung up) is not written: nobody would learn that it was. A group that
//! fails because the database is unavailable fails every request in it at once (503), rather
//! than trying each row alone against a database that is away.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::create::{Inserted, NewCreate};
use super::{Store, StoreError};

/// Creates written by one statement at most.
const GROUP_MAX: usize = 128;
/// Groups being written at once: while one commits, the next gathers.
const WRITERS: usize = 4;
/// Creates waiting for a writer; `api.max_concurrent_requests` bounds them before this does.
const QUEUE: usize = 1024;

/// The create goes back with the answer: whether its row was stored (`false`: a concurrent
/// request stored its idempotency key first).
type Reply = (NewCreate, Result<bool, StoreError>);

struct Job {
    create: NewCreate,
    reply: oneshot::Sender<Reply>,
}

impl Job {
    fn answer(self, stored: Result<bool, StoreError>) {
        // The requester may have gone (client disconnected); the row stands either way.
        let _ = self.reply.send((self.create, stored));
    }
}

/// The way in for creates. Cloning shares the queue; the writers stop once every clone is
/// gone and the queue is empty, so a graceful stop finishes what was accepted.
#[derive(Clone)]
pub struct CreateQueue {
    store: Store,
    jobs: mpsc::Sender<Job>,
}

impl CreateQueue {
    /// Starts the writers on `tracker`; they end once every clone of the queue is gone and
    /// what it held is written.
    pub fn start(store: Store, tracker: &tokio_util::task::TaskTracker) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..WRITERS {
            tracker.spawn(write_groups(store.clone(), queue.clone()));
        }
        Self { store, jobs }
    }

    /// Stores a create (or replays the first answer to its idempotency key).
    pub async fn insert(&self, create: NewCreate) -> Result<Inserted, StoreError> {
        if let Some(earlier) = self.store.replay(&create).await? {
            return Ok(earlier);
        }
        let (reply, answer) = oneshot::channel();
        let job = Job { create, reply };
        let job = match self.jobs.send(job).await {
            Ok(()) => {
                return match answer.await {
                    Ok((create, Ok(stored))) => self.store.settle(&create, stored).await,
                    Ok((_, Err(e))) => Err(e),
                    // Only if a writer task died mid-group (a panic): the group's statement
                    // then either committed or not, and the caller cannot tell which.
                    Err(_) => Err(StoreError::Conflict(
                        "the create was interrupted; look it up before retrying".into(),
                    )),
                };
            }
            // The writers are gone (shutting down): write it directly.
            Err(mpsc::error::SendError(job)) => job,
        };
        self.store.insert_callback(&job.create).await
    }
}

async fn write_groups(store: Store, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut group = Vec::with_capacity(GROUP_MAX);
    loop {
        {
            let mut queue = queue.lock().await;
            if queue.recv_many(&mut group, GROUP_MAX).await == 0 {
                return;
            }
        }
        write_group(&store, std::mem::take(&mut group)).await;
    }
}

async fn write_group(store: &Store, group: Vec<Job>) {
    let (group, abandoned): (Vec<Job>, Vec<Job>) =
        group.into_iter().partition(|job| !job.reply.is_closed());
    for job in &abandoned {
        tracing::info!(callback_id = %job.create.callback.id,
            "create not written: its caller is gone (timed out or disconnected)");
    }
    if group.is_empty() {
        return;
    }
    let creates: Vec<&NewCreate> = group.iter().map(|job| &job.create).collect();
    let outcome = store.store_creates(&creates).await;
    match (outcome, <[Job; 1]>::try_from(group)) {
        (Ok(stored), Ok([job])) => job.answer(Ok(!stored.is_empty())),
        (Ok(stored), Err(group)) => {
            for job in group {
                let was_stored = stored.contains(&job.create.callback.id.as_uuid());
                job.answer(Ok(was_stored));
            }
        }
        (Err(e), Ok([job])) => job.answer(Err(e)),
        (Err(StoreError::Unavailable(e)), Err(group)) => {
            for job in group {
                job.answer(Err(StoreError::Unavailable(e.clone())));
            }
        }
        // One bad row fails the whole statement: write each alone, so only it fails.
        (Err(_), Err(group)) => {
            let mut unavailable = None;
            for job in group {
                if let Some(e) = &unavailable {
                    job.answer(Err(StoreError::Unavailable(Arc::clone(e))));
                    continue;
                }
                let stored = store.store_creates(&[&job.create]).await;
                if let Err(StoreError::Unavailable(e)) = &stored {
                    unavailable = Some(Arc::clone(e));
                }
                job.answer(stored.map(|s| !s.is_empty()));
            }
        }
    }
}
