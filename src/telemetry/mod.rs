//! Sets up `tracing` once. Logs go to stderr (journald keeps them; stdout stays free for
//! what CLI commands print), as JSON unless a person is watching a terminal.

use std::io::IsTerminal;

mod json_lines;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::JsonFields;

use crate::config::LogFormat;

/// `RUST_LOG`, when set, overrides `filter`.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    // A log sink that went away (a closed pipe) must not take the daemon with it: by
    // default the subscriber reports its own write errors with eprintln!, which panics on
    // a closed stderr, inside whatever task was logging.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    // A second init (tests) keeps the first subscriber.
    let _ = if json {
        // The request's or callback's span (its `callback_id`) rides on every event.
        builder
            .fmt_fields(JsonFields::new())
            .event_format(json_lines::JsonLines)
            .try_init()
    } else {
        builder.try_init()
    };
}
