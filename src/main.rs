//! Entry point: parses the command line, loads settings, wires the parts together.

use std::process::ExitCode;

use anyhow::Context;
use callbackd::cli::{self, Cli, Command};
use callbackd::config::Settings;
use callbackd::startup::Application;
use callbackd::store::Store;
use callbackd::telemetry;
use clap::Parser;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Packaging generates these without any configuration.
    if let Some(Command::Generate(what)) = &cli.command {
        return match cli::generate(what) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("callbackd: {e}");
                e.exit_code()
            }
        };
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("callbackd: invalid configuration: {e}");
            return ExitCode::from(cli::exit::CONFIG);
        }
    };
    let format = cli
        .log_format
        .map(Into::into)
        .unwrap_or(settings.log.format);
    telemetry::init(format, &settings.log.filter);

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("callbackd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Run);
    let daemon = matches!(command, Command::Run);
    let outcome = runtime.block_on(run(command, settings));
    // Tasks abandoned at the shutdown deadline must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(code) => code,
        // Said once: the daemon's failure is a log event (JSON under systemd, where the
        // operator reads the log); a command's is a line of text for the person who typed it.
        Err(e) if daemon => {
            tracing::error!(error = format!("{e:#}"), "callbackd failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("callbackd: {e:#}");
            e.downcast_ref::<cli::CliError>()
                .map_or(ExitCode::FAILURE, cli::CliError::exit_code)
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run => serve(settings).await?,
        Command::Migrate => {
            Store::connect(&settings.database)
                .await
                .context("migrating the database")?;
            println!("migrations applied");
        }
        Command::User(user) => {
            let store = Store::connect(&settings.database).await?;
            cli::user(&store, &settings, user).await?;
        }
        Command::Import(args) => {
            let store = Store::connect(&settings.database).await?;
            let count = cli::import(&store, &args).await?;
            println!("imported {count} {}", args.kind.noun());
        }
        Command::Callbacks(args) => {
            let store =
                Store::open_existing(&settings.database, settings.database.acquire_timeout())
                    .await
                    .map_err(cli::CliError::from)?;
            cli::callbacks(&store, &settings, args).await?;
            store.close().await;
        }
        Command::Calendar(args) => {
            let store =
                Store::open_existing(&settings.database, settings.database.acquire_timeout())
                    .await
                    .map_err(cli::CliError::from)?;
            cli::calendar(&store, &settings, args).await?;
            store.close().await;
        }
        Command::Skill(args) => {
            let store =
                Store::open_existing(&settings.database, settings.database.acquire_timeout())
                    .await
                    .map_err(cli::CliError::from)?;
            cli::skill(&store, &settings, args).await?;
            store.close().await;
        }
        Command::Dnc(args) => {
            let store =
                Store::open_existing(&settings.database, settings.database.acquire_timeout())
                    .await
                    .map_err(cli::CliError::from)?;
            cli::dnc(&store, &settings, args).await?;
            store.close().await;
        }
        Command::Status(args) => return Ok(cli::status(&settings, &args).await?),
        // Handled before the settings are loaded.
        Command::Generate(what) => cli::generate(&what)?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Listening before start-up: a stop that arrives while migrations run or the database
    // is slow to answer ends the process cleanly instead of killing it by the signal.
    let shutdown = CancellationToken::new();
    let signals = Signals::listen().context("listening for SIGTERM and SIGINT")?;
    tokio::spawn(signals.cancel_on_signal(shutdown.clone()));
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "callbackd starting");
    let app = tokio::select! {
        app = Application::build(settings) => app.context("starting callbackd")?,
        () = shutdown.cancelled() => {
            tracing::info!("stopped during start-up");
            return Ok(());
        }
    };
    app.run_until_stopped(shutdown).await?;
    Ok(())
}

/// SIGTERM (systemd) and SIGINT (a terminal), registered at once: a signal that arrives
/// before [`Signals::cancel_on_signal`] first runs is kept, not lost.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Either signal cancels the one shutdown token.
    async fn cancel_on_signal(mut self, shutdown: CancellationToken) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
        tracing::info!("shutdown requested");
    }
}
