//! Log setup: `tracing` to stderr as text or JSON lines, `RUST_LOG` to filter (default `info`),
//! and Pingora's `log` records bridged into the same output.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    // Pingora logs through `log`; `try_init` bridges it into tracing (tracing-subscriber's
    // `tracing-log` feature). Its per-retry warnings are replaced by our own ejection and access
    // log lines, so it only speaks from `warn` up unless asked.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn,pingora_load_balancing=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_target(true).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
