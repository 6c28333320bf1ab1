//! The application layer: one function per use case — schedule, change, cancel, bulk change,
//! report an outcome, sign in to the console — each owning its whole sequence (permission, lock, visibility, state
//! check, the `domain` decision, the write with its event, the log line, the metric) and
//! answering with a typed [`AppError`].
//!
//! The deliveries — `api` (JSON and status codes), `console` (HTML), `cli` (exit codes) and
//! the outcome consumer — only translate to and from these functions. Modelled on River's
//! client facade and Oban's `cancel_job/2`: every caller goes through the same door.
//!
//! **Architecture invariant:** a delivery module never writes through `store` itself.

mod bulk;
pub mod calendars;
mod change;
pub mod customer;
pub mod directory;
pub mod dnc;
mod error;
mod guard;
pub mod oidc;
mod outcome;
pub mod privacy;
pub mod reports;
mod schedule;
mod selection;
pub mod sessions;
pub mod timers;
pub mod users;
pub mod webhooks;

use std::sync::Arc;
use std::time::Instant;

pub use crate::store::BulkRefusal;
pub use crate::store::IdempotencyKey;
pub use bulk::{
    BULK_MAX, BulkAction, BulkChange, BulkReport, BulkState, bulk_report, bulk_reports, change_many,
};
pub use change::{Why, cancel, change, retry};
pub use error::{AppError, require, require_skill};
pub use guard::{TokenLookups, authenticate};
pub use outcome::{
    Applied, OutcomeError, OutcomeReport, SCHEMA as OUTCOME_SCHEMA, consumes_outcomes,
    handle_message, report_outcome,
};
pub use schedule::{Created, Receipt, number_region, schedule, slots_with_bookings};
pub use selection::Selection;

use crate::amqp::Broker;
use crate::config::Settings;
use crate::domain::ScheduleRules;
use crate::store::{CreateQueue, Store};

/// What every use case can reach. Cheap to clone; the daemon builds one and hands it to the
/// HTTP deliveries, the CLI builds its own over a single connection pool.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub settings: Settings,
    pub store: Store,
    pub rules: ScheduleRules,
    /// How creates are written.
    creates: Creates,
    /// Token lookups per network address (`api.token_lookups_per_second`).
    pub token_lookups: TokenLookups,
    /// Wrong or dead customer links per address (`public.link_failures_per_second`).
    pub link_lookups: TokenLookups,
    /// `None` when this daemon runs no dispatcher (and in the CLI).
    pub broker: Option<Broker>,
    /// The dispatch workers' liveness and recent lateness, when this daemon dispatches.
    pub progress: Option<crate::liveness::Progress>,
    /// Console sign-in through the identity provider, when `console.oidc` is enabled.
    pub oidc: Option<oidc::Oidc>,
    /// The console overview's callbacks per state, and when they were counted: counting
    /// scans the table, so viewers share one count every few seconds.
    pub state_counts: tokio::sync::Mutex<Option<(Instant, Figures)>>,
    /// The console's load chart, for the same reason: the last one counted, with its key.
    pub load_chart: tokio::sync::Mutex<Option<(Instant, LoadKey, LoadCounts)>>,
}

/// A daemon groups concurrent creates into one commit; a one-off command writes directly.
enum Creates {
    Grouped(CreateQueue),
    Direct,
}

/// What a load chart counted: its first hour, its end, and the skills.
pub type LoadKey = (
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
    Option<Vec<crate::domain::SkillId>>,
);
/// Pending callbacks per hour and skill.
pub type LoadCounts = Vec<(chrono::DateTime<chrono::Utc>, crate::domain::SkillId, i64)>;

/// The overview's figures: callbacks per state, and the backlog.
pub type Figures = (Vec<(String, i64)>, crate::store::Backlog);

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl App {
    /// The daemon's: `tracker` runs the group-commit writers, so a graceful stop waits for
    /// the creates they hold.
    pub fn serving(
        store: Store,
        broker: Option<Broker>,
        settings: &Settings,
        tracker: &tokio_util::task::TaskTracker,
        progress: Option<crate::liveness::Progress>,
    ) -> Self {
        let store = store.grouping_probes();
        let creates = Creates::Grouped(CreateQueue::start(store.clone(), tracker));
        Self::build(store, broker, settings, creates, progress)
    }

    /// A one-off command's (the CLI): no dispatcher, creates written one by one.
    pub fn for_command(store: Store, settings: &Settings) -> Self {
        Self::build(store, None, settings, Creates::Direct, None)
    }

    fn build(
        store: Store,
        broker: Option<Broker>,
        settings: &Settings,
        creates: Creates,
        progress: Option<crate::liveness::Progress>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                rules: settings.schedule_rules(),
                token_lookups: TokenLookups::new(settings.api.token_lookups_per_second),
                link_lookups: TokenLookups::new(settings.public.link_failures_per_second),
                oidc: settings
                    .console
                    .oidc
                    .enabled
                    .then(|| oidc::Oidc::new(&settings.console.oidc)),
                store,
                creates,
                broker,
                progress,
                state_counts: tokio::sync::Mutex::new(None),
                load_chart: tokio::sync::Mutex::new(None),
            }),
        }
    }
}
