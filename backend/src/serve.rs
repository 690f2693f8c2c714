//! The process's life: bind, serve, and on SIGTERM drain (readiness 503 while still serving for
//! the shutdown delay), then stop accepting, finish in-flight requests and return.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tracing::info;

use crate::config::Config;
use crate::http::App;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("listening on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("installing the SIGTERM/SIGINT handlers")]
    Signal(#[source] std::io::Error),
    #[error("serving HTTP")]
    Serve(#[source] std::io::Error),
}

/// Binds `config.listen` and serves until SIGTERM or SIGINT has been drained.
pub async fn run(config: Config) -> Result<(), ServeError> {
    let stop = stop_signal()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    // The bound address, not the flag: with port 0 the kernel picks one, and tests read it here.
    let bound = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    info!(
        listen = %bound,
        pod = %config.pod,
        db_connect = ?config.db_connect,
        "serving"
    );
    serve(listener, App::new(&config), config.shutdown_delay, stop).await
}

/// Serves `app` on `listener` until `stop` resolves; then /readyz turns 503 at once, requests are
/// still served for `drain`, and only then the listener closes and in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: App,
    drain: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let draining = app.clone();
    let shutdown = async move {
        stop.await;
        draining.begin_drain();
        info!(delay = ?drain, "draining: /readyz answers 503, requests still served");
        tokio::time::sleep(drain).await;
        info!("closing the listener; finishing in-flight requests");
    };
    axum::serve(listener, app.router())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve)?;
    info!("all requests finished; exiting");
    Ok(())
}

/// Resolves on the first SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C). The handlers
/// are installed before this returns, so a signal that arrives early is not lost.
fn stop_signal() -> Result<impl Future<Output = ()> + Send + 'static, ServeError> {
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(signal = name, "stop requested");
    })
}
