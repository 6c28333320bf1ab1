//! Builds the daemon from settings and runs it until the shutdown token fires. `main` and
//! the tests both go through [`Application`].
//!
//! Stop order (a soft stop before the hard one): the token fires; the HTTP server stops
//! accepting and finishes its requests; the dispatcher stops claiming and finishes the batch
//! in flight; the broker link closes its channel and connection; then the pool closes. All
//! of it within `dispatch.shutdown_deadline_ms`, after which whatever is left is dropped
//! (an unfinished claim rolls back, so nothing is lost).

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::sync::Arc;

use crate::amqp::{Broker, Incoming, OutcomeHandler};
use crate::api::AppState;
use crate::app::App;
use crate::config::Settings;
use crate::dispatch::Dispatcher;
use crate::liveness::Progress;
use crate::store::{Store, StoreError};
use crate::{app, maintenance, systemd};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("maintenance scheduler: {0}")]
    Scheduler(#[from] tokio_cron_scheduler::JobSchedulerError),
}

/// Outcomes from the queue go through the same code as `POST …/outcomes`.
fn outcome_handler(store: Store, settings: Settings) -> OutcomeHandler {
    let shared = Arc::new((store, settings));
    Arc::new(move |message: Incoming| {
        let shared = shared.clone();
        Box::pin(async move { app::handle_message(&message, &shared.0, &shared.1).await })
    })
}

/// After the shutdown deadline, how long closing the scheduler and the pool may take.
const CLEANUP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Application {
    listener: TcpListener,
    store: Store,
    settings: Settings,
}

impl Application {
    /// Connects to the database (applying migrations) and binds the HTTP listener; port 0
    /// picks a free port, which [`Application::local_addr`] then tells.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        crate::instruments::handle();
        let limits = crate::store::SessionLimits::below(settings.api.request_timeout());
        let store = Store::connect_limited(&settings.database, Some(limits)).await?;
        // libphonenumber's metadata loads on first use (a second in a debug build): pay it
        // now rather than in the first request.
        let _ = crate::domain::PhoneNumber::parse("+14155552671", phonenumber::country::Id::US);
        let addr = settings.api.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        Ok(Self {
            listener,
            store,
            settings,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.settings.api.listen)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let Self {
            listener,
            store,
            settings,
        } = self;
        let tracker = TaskTracker::new();
        let workers = settings.dispatch.workers as usize;
        let progress = Progress::new(workers);

        // The broker link outlives the dispatcher: it closes only once the batch in flight
        // has its confirms, so a graceful stop never leaves a published callback unrecorded.
        let broker_stop = CancellationToken::new();
        let broker = settings.dispatch.enabled.then(|| {
            let name = settings.dispatch.instance();
            let handler = app::consumes_outcomes(&settings.amqp)
                .then(|| outcome_handler(store.clone(), settings.clone()));
            Broker::spawn(
                settings.amqp.clone(),
                name,
                handler,
                broker_stop.clone(),
                &tracker,
            )
        });
        if let Some(broker) = &broker {
            let dispatcher_store = Store::for_dispatcher(&settings.database, workers)
                .await?
                .sharing_cache_of(&store);
            let mut loops = tokio::task::JoinSet::new();
            for worker in 0..workers {
                let dispatcher = Dispatcher::new(
                    worker,
                    dispatcher_store.clone(),
                    broker.clone(),
                    settings.clone(),
                    progress.clone(),
                );
                loops.spawn(dispatcher.run(shutdown.clone()));
            }
            let relay = crate::events::Relay::new(
                store.clone(),
                broker.clone(),
                settings.amqp.events_exchange.clone(),
            );
            loops.spawn(relay.run(shutdown.clone()));
            match crate::events::webhooks::Deliverer::new(store.clone(), settings.webhooks.clone())
            {
                Ok(deliverer) => {
                    loops.spawn(deliverer.run(shutdown.clone()));
                }
                Err(e) => {
                    tracing::error!(error = %e, "webhook deliveries cannot start: no HTTP client")
                }
            }
            tracker.spawn(async move {
                while let Some(ended) = loops.join_next().await {
                    if let Err(e) = ended {
                        tracing::error!(error = %e, "a dispatch worker ended abnormally");
                    }
                }
                broker_stop.cancel();
            });
        }
        let cache_store = store.clone();
        let cache_shutdown = shutdown.clone();
        tracker.spawn(async move { cache_store.keep_cache(cache_shutdown).await });
        tracker.spawn(crate::instruments::keep_up(shutdown.clone()));
        let mut scheduler = maintenance::start(
            &settings.maintenance,
            settings.schedule.default_time_zone.0,
            settings.schedule_rules().past_grace,
            settings.public.base_url().map(str::to_owned),
            store.clone(),
            progress.clone(),
        )
        .await?;

        let app = App::serving(
            store.clone(),
            broker.clone(),
            &settings,
            &tracker,
            broker.is_some().then(|| progress.clone()),
        );
        let routes = crate::http::router(AppState::new(app, &settings.api), &settings.api);
        let addr = listener.local_addr().unwrap_or(settings.api.listen);
        let http_shutdown = shutdown.clone();
        let api_settings = settings.api.clone();
        let http = tracker.spawn(async move {
            crate::http::serve(listener, routes, &api_settings, http_shutdown.clone())
                .await
                .inspect_err(|_| http_shutdown.cancel())
        });
        tracing::info!(listen = %addr, dispatcher = broker.is_some(), "callbackd serving HTTP");

        // READY once migrations ran (done in build) and HTTP serves: a start (and so a
        // package upgrade's restart) never waits for the broker. Until it is connected the
        // status and /readyz say so, callbacks are stored, and none is lost.
        systemd::ready();
        tracing::info!("callbackd ready");
        let mut ready_broker = broker.clone();
        let ready_shutdown = shutdown.clone();
        tracker.spawn(async move {
            if let Some(broker) = ready_broker.as_mut() {
                systemd::status("ready; waiting for RabbitMQ");
                tokio::select! {
                    _ = ready_shutdown.cancelled() => return,
                    _ = broker.wait_up() => {},
                }
            }
            systemd::status("ready");
        });
        tracker.spawn(systemd::watchdog(
            broker.is_some().then(|| progress.clone()),
            shutdown.clone(),
        ));
        tracker.close();

        shutdown.cancelled().await;
        systemd::stopping();
        tracing::info!("stopping: no new claims, finishing the batch in flight");
        let deadline = settings.dispatch.shutdown_deadline();
        let drained = tokio::time::timeout(deadline, tracker.wait()).await.is_ok();
        if !drained {
            tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "shutdown deadline passed; abandoning what is left (unfinished claims roll back)"
            );
        }
        // Past the deadline nothing may hold the exit up: the pool waits for connections
        // that abandoned tasks still hold, so it only gets a moment.
        let cleanup = async {
            if let Err(e) = scheduler.shutdown().await {
                tracing::warn!(error = %e, "stopping the maintenance scheduler");
            }
            store.close().await;
        };
        if tokio::time::timeout(CLEANUP_GRACE, cleanup).await.is_err() {
            tracing::warn!("closing the database pool timed out");
        }
        tracing::info!(drained, "callbackd stopped");
        if !drained {
            http.abort();
            return Ok(());
        }
        match http.await {
            Ok(Err(e)) => Err(StartupError::Serve(e)),
            _ => Ok(()),
        }
    }
}
