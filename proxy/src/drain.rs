//! SIGTERM, in the order Kubernetes needs: first the shutdown delay, during which the proxy keeps
//! accepting and serving while `/readyz` answers 503 (endpoint removal and SIGTERM race in a
//! cluster: clients that still resolve this pod must not be refused); then Pingora stops
//! accepting, and [`exit_when_drained`] ends the process as soon as the last in-flight request is
//! answered, or when the shutdown timeout runs out, whichever comes first.
//!
//! Pingora's own signal handling is kept for the rest: SIGINT is a fast shutdown, SIGQUIT a
//! graceful upgrade; a SIGINT during the delay still ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::server::{ExecutionPhase, ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::inflight::InFlight;

/// Set once SIGTERM arrived: `/readyz` answers 503 from then on.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Pingora's shutdown signal, with the shutdown delay before a graceful terminate.
pub struct DelayedTerminate {
    pub delay: Duration,
    pub draining: Draining,
}

#[async_trait]
impl ShutdownSignalWatch for DelayedTerminate {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            warn!("cannot watch SIGTERM/SIGINT/SIGQUIT; only SIGKILL stops the proxy");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => return ShutdownSignal::FastShutdown,
            _ = quit.recv() => return ShutdownSignal::GracefulUpgrade,
            _ = term.recv() => {}
        }
        self.draining.start();
        if self.delay.is_zero() {
            return ShutdownSignal::GracefulTerminate;
        }
        info!(
            delay_ms = self.delay.as_millis() as u64,
            "SIGTERM: /readyz answers 503; still accepting for the shutdown delay"
        );
        tokio::select! {
            _ = tokio::time::sleep(self.delay) => ShutdownSignal::GracefulTerminate,
            _ = int.recv() => ShutdownSignal::FastShutdown,
        }
    }
}

pub fn exit_when_drained(
    mut phases: broadcast::Receiver<ExecutionPhase>,
    inflight: InFlight,
    timeout: Duration,
) {
    std::thread::Builder::new()
        .name("drain".into())
        .spawn(move || {
            loop {
                match phases.blocking_recv() {
                    Ok(ExecutionPhase::GracefulTerminate) => break,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
            let started = Instant::now();
            info!(
                in_flight = inflight.count(),
                "not accepting new connections; finishing in-flight requests"
            );
            loop {
                if inflight.count() == 0 {
                    info!(
                        after_ms = started.elapsed().as_millis() as u64,
                        "drained; exiting"
                    );
                    std::process::exit(0);
                }
                if started.elapsed() >= timeout {
                    warn!(
                        in_flight = inflight.count(),
                        "shutdown timeout reached; exiting with requests in flight"
                    );
                    std::process::exit(0);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .expect("spawning the drain thread");
}
