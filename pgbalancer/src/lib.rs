//! pgbalancer: a TCP balancer for Postgres read replicas.
//!
//! It follows every A record of a DNS name (a headless Service) through `discovery`, checks each
//! server with a real tokio-postgres login and `SELECT pg_is_in_recovery()` plus the replay lag,
//! and hands each new client connection to the next healthy server, round-robin, relaying bytes
//! both ways. It reads the Postgres protocol only as far as routing needs: encryption requests
//! are passed through (or, with a certificate, clients' TLS is terminated here, see [`tls`]), a
//! CancelRequest goes to the server that runs the session, and a client
//! that finds no healthy server (after a bounded wait) gets a real `ErrorResponse` (57P03).

// What a user of the crate needs: the command line and config layers (TLS among them), the
// protocol (the fuzz targets drive it), start/run and /status. The rest is the binary's own.
pub mod cli;
pub mod config;
pub mod protocol;
pub mod tls;

mod admin;
mod admission;
mod cancel;
mod dial;
mod health;
mod metrics;
mod policy;
mod pool;
mod relay;
mod sasl;
mod server;
mod session;
mod shared;
mod status;

pub use cli::Cli;
pub use config::{Config, ConfigError};
pub use server::{start, Running, StartError};
pub use status::Status;

/// Runs until SIGTERM or SIGINT, then shuts down gracefully: on SIGTERM `/readyz` turns 503 and
/// clients are still accepted for the shutdown delay (Kubernetes removes the pod from its Service
/// meanwhile), then [`Running::shutdown`]. SIGINT, or a SIGINT during the delay, skips the delay.
pub async fn run(config: Config) -> Result<(), StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let delay = config.shutdown_delay;
    let running = start(config).await?;
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => Some(term),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stopping on SIGINT only");
            None
        }
    };
    let sigterm = async {
        match term.as_mut() {
            Some(term) => term.recv().await,
            None => std::future::pending().await,
        }
    };
    let delayed = tokio::select! {
        _ = sigterm => true,
        _ = tokio::signal::ctrl_c() => false,
    };
    running.start_draining();
    if delayed && !delay.is_zero() {
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "SIGTERM: /readyz answers 503; still accepting for the shutdown delay"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
