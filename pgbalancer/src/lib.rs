//! pgbalancer: a TCP balancer for Postgres read replicas.
//!
//! It follows every A record of a DNS name (a headless Service) through `discovery`, checks each
//! server with a real tokio-postgres login and `SELECT pg_is_in_recovery()` plus the replay lag,
//! and hands each new client connection to the next healthy server, round-robin, relaying bytes
//! both ways. It reads the Postgres protocol only as far as routing needs: encryption requests
//! are passed through, a CancelRequest goes to the server that runs the session, and a client
//! that finds no healthy server (after a bounded wait) gets a real `ErrorResponse` (57P03).

pub mod admin;
pub mod admission;
pub mod cancel;
pub mod cli;
pub mod config;
pub mod health;
pub mod membership;
pub mod metrics;
pub mod pool;
pub mod protocol;
pub mod relay;
pub mod server;
pub mod session;
pub mod status;

pub use cli::Cli;
pub use config::{Config, ConfigError};
pub use server::{start, Running, StartError};
pub use status::Status;

/// Runs until SIGTERM or SIGINT, then shuts down gracefully (see [`Running::shutdown`]).
pub async fn run(config: Config) -> Result<(), StartError> {
    let running = start(config).await?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
