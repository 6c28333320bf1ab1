//! What every API request looks up — the security user behind its token, the skill and the
//! agent of a create — kept in memory, so that a create costs one database round trip (the
//! do-not-call probe with the clock) besides its grouped insert instead of three.
//!
//! Staleness is bounded three ways:
//! - every change to `security_users`, `skills` or `agents` notifies `callbackd_directory`
//!   (triggers, `migrations/0012_directory_notify.sql`) with the table's name, and each
//!   daemon's listener drops what it holds of that table within milliseconds; the daemon's
//!   own writes drop it at once, before they return;
//! - while the listener is not subscribed — starting, or reconnecting after its connection
//!   was lost — nothing is served from the cache or put into it: every lookup reads the
//!   database, so a token disabled meanwhile is refused at once;
//! - an entry is served for at most [`MAX_AGE`], a bound even if the listener's connection
//!   died without the daemon noticing.
//!
//! A lookup that read the database before an invalidation must not store what it read
//! after it: each lookup takes a [`Ticket`] (the generation) first, and its result is kept
//! only if no invalidation happened since.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::{Store, StoreError};
use crate::domain::{Agent, AgentId, SecurityUser, Skill, SkillId, TokenHash};

/// The channel the directory triggers notify; the payload is the table's name.
pub(super) const DIRECTORY_CHANNEL: &str = "callbackd_directory";

/// The longest an entry is served without being read again.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// Entries per table at most: a full table is emptied (ids that do not exist are cached too,
/// and a caller could ask for many).
const CAPACITY: usize = 10_000;
/// Unknown tokens kept at most: a flood of different ones empties this shelf again and again
/// (each then costs a lookup, bounded per address by the application's limit), and never
/// pushes out the known users.
const UNKNOWN_CAPACITY: usize = 1_000;

/// How long the listener waits before connecting again after a failure: doubling from the
/// first to the last, so that an outage of the database is one warning, not one every pause.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// A table the cache holds entries of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    SecurityUsers,
    Skills,
    Agents,
}

impl Table {
    fn from_payload(payload: &str) -> Option<Self> {
        match payload {
            "security_users" => Some(Self::SecurityUsers),
            "skills" => Some(Self::Skills),
            "agents" => Some(Self::Agents),
            _ => None,
        }
    }
}

/// The generation a lookup started in; what it read is kept only if it is still current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket(u64);

struct Entry<V> {
    value: V,
    at: Instant,
}

/// One table's entries.
struct Shelf<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// Past this many, the shelf is emptied and starts again.
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> Shelf<K, V> {
    fn new() -> Self {
        Self::with_capacity(CAPACITY)
    }

    fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        self.entries
            .get(key)
            .filter(|e| e.at.elapsed() < MAX_AGE)
            .map(|e| e.value.clone())
    }

    fn put(&mut self, key: K, value: V) {
        if self.entries.len() >= self.capacity {
            self.entries.clear();
        }
        self.entries.insert(
            key,
            Entry {
                value,
                at: Instant::now(),
            },
        );
    }
}

struct Entries {
    /// The listener is subscribed: entries may be served and stored.
    live: bool,
    generation: u64,
    users: Shelf<TokenHash, SecurityUser>,
    /// Tokens found unknown: a repeat of one is not looked up again (briefly, as any entry).
    unknown: Shelf<TokenHash, ()>,
    skills: Shelf<SkillId, Option<Skill>>,
    agents: Shelf<AgentId, Option<Agent>>,
}

impl Entries {
    fn clear(&mut self) {
        self.generation += 1;
        self.users.entries.clear();
        self.unknown.entries.clear();
        self.skills.entries.clear();
        self.agents.entries.clear();
    }
}

/// The daemon's in-memory copy of what requests look up. Until [`Store::keep_cache`] runs
/// (the CLI never runs it) it is never live: every lookup reads the database.
pub(super) struct Cache {
    entries: Mutex<Entries>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}

impl Cache {
    pub(super) fn new() -> Self {
        Self {
            entries: Mutex::new(Entries {
                live: false,
                generation: 0,
                users: Shelf::new(),
                unknown: Shelf::with_capacity(UNKNOWN_CAPACITY),
                skills: Shelf::new(),
                agents: Shelf::new(),
            }),
        }
    }

    /// With the entries, unless a panic elsewhere poisoned them: the cache is then bypassed.
    fn with<T>(&self, f: impl FnOnce(&mut Entries) -> Option<T>) -> Option<T> {
        let mut entries = self.entries.lock().ok()?;
        f(&mut entries)
    }

    /// A ticket for a lookup, when the cache is live.
    pub(super) fn ticket(&self) -> Option<Ticket> {
        self.with(|e| e.live.then_some(Ticket(e.generation)))
    }

    pub(super) fn user(&self, token: &TokenHash) -> Option<SecurityUser> {
        self.with(|e| if e.live { e.users.get(token) } else { None })
    }

    pub(super) fn skill(&self, id: SkillId) -> Option<Option<Skill>> {
        self.with(|e| if e.live { e.skills.get(&id) } else { None })
    }

    pub(super) fn agent(&self, id: AgentId) -> Option<Option<Agent>> {
        self.with(|e| if e.live { e.agents.get(&id) } else { None })
    }

    /// Keeps what a lookup read, if nothing changed since its ticket.
    fn keep(&self, ticket: Option<Ticket>, f: impl FnOnce(&mut Entries)) {
        let Some(Ticket(generation)) = ticket else {
            return;
        };
        self.with(|e| {
            if e.live && e.generation == generation {
                f(e);
            }
            Some(())
        });
    }

    /// Whether `token` was found unknown within the last second.
    pub(super) fn unknown(&self, token: &TokenHash) -> bool {
        self.with(|e| Some(e.live && e.unknown.get(token).is_some()))
            .unwrap_or(false)
    }

    pub(super) fn keep_unknown(&self, ticket: Option<Ticket>, token: &TokenHash) {
        self.keep(ticket, |e| e.unknown.put(token.clone(), ()));
    }

    pub(super) fn keep_user(&self, ticket: Option<Ticket>, token: &TokenHash, user: &SecurityUser) {
        self.keep(ticket, |e| e.users.put(token.clone(), user.clone()));
    }

    pub(super) fn keep_skill(&self, ticket: Option<Ticket>, id: SkillId, skill: &Option<Skill>) {
        self.keep(ticket, |e| e.skills.put(id, skill.clone()));
    }

    pub(super) fn keep_agent(&self, ticket: Option<Ticket>, id: AgentId, agent: &Option<Agent>) {
        self.keep(ticket, |e| e.agents.put(id, agent.clone()));
    }

    /// Drops what is held of `table` (`None`: of every table), and fails every lookup in
    /// flight's ticket.
    pub(super) fn invalidate(&self, table: Option<Table>) {
        self.with(|e| {
            e.generation += 1;
            match table {
                Some(Table::SecurityUsers) => {
                    e.users.entries.clear();
                    e.unknown.entries.clear();
                }
                Some(Table::Skills) => e.skills.entries.clear(),
                Some(Table::Agents) => e.agents.entries.clear(),
                None => e.clear(),
            }
            Some(())
        });
    }

    fn set_live(&self, live: bool) {
        self.with(|e| {
            e.clear();
            e.live = live;
            Some(())
        });
    }
}

impl Store {
    /// Keeps the cache in step with the database until `shutdown`: listens for the
    /// directory's notifications, and serves nothing from the cache while not listening.
    pub async fn keep_cache(&self, shutdown: CancellationToken) {
        let cache = &self.cache;
        let mut pause = RECONNECT_FIRST;
        while !shutdown.is_cancelled() {
            let listened = tokio::select! {
                _ = shutdown.cancelled() => break,
                listened = self.listen_directory() => listened,
            };
            let mut listener = match listened {
                Ok(listener) => listener,
                Err(e) => {
                    if pause == RECONNECT_FIRST {
                        tracing::warn!(error = %e, "cannot listen for directory changes; reading the database on every request until it can");
                    } else {
                        tracing::debug!(error = %e, "still cannot listen for directory changes");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {},
                    }
                    pause = (pause * 2).min(RECONNECT_MAX);
                    continue;
                }
            };
            pause = RECONNECT_FIRST;
            // Subscribed: from here on every change notifies us.
            cache.set_live(true);
            tracing::debug!("directory cache live");
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    next = listener.try_recv() => next,
                };
                match next {
                    Ok(Some(notification)) => {
                        cache.invalidate(Table::from_payload(notification.payload()));
                    }
                    // The connection was lost: notifications sent meanwhile are lost too.
                    Ok(None) | Err(_) => break,
                }
            }
            cache.set_live(false);
            if !shutdown.is_cancelled() {
                tracing::info!(
                    "lost the directory listener; reading the database until it is back"
                );
            }
        }
        cache.set_live(false);
    }

    async fn listen_directory(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(DIRECTORY_CHANNEL).await?;
        Ok(listener)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Permission, SecurityUser};

    fn user() -> SecurityUser {
        SecurityUser {
            id: 1,
            name: "u".into(),
            permissions: vec![Permission::CallbacksCreate],
            skills: None,
        }
    }

    #[test]
    fn serves_nothing_until_live() {
        let cache = Cache::new();
        let token = TokenHash([1; 32]);
        assert_eq!(cache.ticket(), None);
        cache.keep_user(cache.ticket(), &token, &user());
        assert!(cache.user(&token).is_none());
        cache.set_live(true);
        cache.keep_user(cache.ticket(), &token, &user());
        assert_eq!(cache.user(&token).map(|u| u.name), Some("u".into()));
        cache.set_live(false);
        assert!(cache.user(&token).is_none());
    }

    #[test]
    fn a_lookup_that_began_before_an_invalidation_is_not_kept() {
        let cache = Cache::new();
        cache.set_live(true);
        let token = TokenHash([2; 32]);
        let ticket = cache.ticket();
        cache.invalidate(Some(Table::SecurityUsers));
        cache.keep_user(ticket, &token, &user());
        assert!(cache.user(&token).is_none());
    }

    #[test]
    fn invalidating_a_table_leaves_the_others() {
        let cache = Cache::new();
        cache.set_live(true);
        let token = TokenHash([3; 32]);
        let skill = SkillId::new(101).expect("id");
        cache.keep_user(cache.ticket(), &token, &user());
        cache.keep_skill(cache.ticket(), skill, &None);
        cache.invalidate(Table::from_payload("security_users"));
        assert!(cache.user(&token).is_none());
        assert_eq!(cache.skill(skill), Some(None));
        cache.invalidate(Table::from_payload("something new"));
        assert_eq!(cache.skill(skill), None);
    }
}
