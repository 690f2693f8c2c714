//! Log setup: `tracing` to stderr as text or JSON lines, filtered by `RUST_LOG` (or the binary's
//! default directives), ANSI colour only when stderr is a terminal (never in `kubectl logs`), and
//! records of the `log` crate (Pingora's) bridged into the same output.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, its fields flattened.
    Json,
}

/// Installs the subscriber; `default` are the filter directives when `RUST_LOG` is unset (e.g.
/// `info,pingora_core=warn`). A second call does nothing.
pub fn init(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // `try_init` also bridges the `log` crate (tracing-subscriber's tracing-log feature).
    let _ = match format {
        LogFormat::Text => builder.with_target(true).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
