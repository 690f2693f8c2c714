//! SIGTERM: Pingora stops accepting and sleeps a fixed grace period before dropping whatever runs.
//! This watcher ends the process as soon as the last in-flight request is answered, or when the
//! shutdown timeout runs out, whichever comes first.

use std::time::{Duration, Instant};

use pingora_core::server::ExecutionPhase;
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::inflight::InFlight;

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
                "SIGTERM: not accepting new connections; finishing in-flight requests"
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
