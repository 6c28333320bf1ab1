//! Builds the daemon from settings and runs it until the shutdown token fires. `main` and
//! the tests both go through [`Application`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{AppState, router};
use crate::config::Settings;
use crate::store::{Store, StoreError};

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
}

pub struct Application {
    listener: TcpListener,
    store: Store,
    settings: Settings,
}

impl Application {
    /// Connects to the database (applying migrations) and binds the HTTP listener; port 0
    /// picks a free port, which [`Application::local_addr`] then tells.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let store = Store::connect(&settings.database).await?;
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
        let state = AppState::new(self.store.clone(), &self.settings);
        let app = router(
            state,
            Duration::from_millis(self.settings.api.request_timeout_ms),
        );
        tracing::info!(listen = %self.local_addr(), "callbackd serving HTTP");
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(StartupError::Serve)?;
        self.store.close().await;
        tracing::info!("callbackd stopped");
        Ok(())
    }
}
