//! Wiring and lifecycle: bind the listeners, start discovery, membership and the admin server,
//! accept clients, and on shutdown stop accepting and give open sessions a grace period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, info_span, warn, Instrument};

use crate::admission::Admission;
use crate::cancel::CancelMap;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::status::Status;
use crate::{admin, health, pool, session};

/// Starting failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding the client listener {0}")]
    Listen(SocketAddr, #[source] std::io::Error),
    #[error("binding the admin listener {0}")]
    Admin(SocketAddr, #[source] std::io::Error),
    #[error("starting DNS discovery")]
    Discovery(#[from] discovery::ResolverError),
    #[error("registering metrics")]
    Metrics(#[from] prometheus::Error),
}

/// A running pgbalancer. Dropping it without [`Running::shutdown`] aborts everything.
pub struct Running {
    listen_addr: SocketAddr,
    admin_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    accept: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

/// Binds, starts every task and returns at once; clients are served from now on.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let config = Arc::new(config);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Listen(config.listen, e))?;
    let admin_listener = TcpListener::bind(config.admin)
        .await
        .map_err(|e| StartError::Admin(config.admin, e))?;
    let listen_addr = listener
        .local_addr()
        .map_err(|e| StartError::Listen(config.listen, e))?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|e| StartError::Admin(config.admin, e))?;
    let metrics = Metrics::new()?;
    let shared = Arc::new(Shared {
        pool: pool::new(
            &config.check,
            Arc::new(health::LoginCheck {
                check: Arc::new(config.check.clone()),
                tls: config.server_tls.clone(),
            }),
            metrics.clone(),
        ),
        metrics,
        cancels: Arc::new(CancelMap::default()),
        discovery: discovery::Discovery::spawn(config.upstream.clone(), config.discovery.clone())?,
        started: SystemTime::now(),
        draining: Default::default(),
        config,
    });
    let members = shared.pool.follow(shared.discovery.subscribe());
    let admin = tokio::spawn(admin::serve(admin_listener, shared.clone()));
    let (stop, stopped) = watch::channel(false);
    let accept = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
    info!(listen = %listen_addr, admin = %admin_addr, upstream = %shared.config.upstream, "pgbalancer started");
    Ok(Running {
        listen_addr,
        admin_addr,
        shared,
        stop,
        accept,
        background: vec![members, admin],
    })
}

impl Running {
    /// Where clients connect (the real port when the config said 0).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// What /status shows.
    pub fn status(&self) -> Status {
        Status::collect(&self.shared)
    }

    /// From now on `/readyz` answers 503; clients are still accepted and served.
    pub fn start_draining(&self) {
        self.shared
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops accepting, waits up to the shutdown grace for open sessions, then stops everything.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        // The accept loop returns once every session ended or the grace ran out.
        if let Err(e) = (&mut self.accept).await {
            warn!(error = %e, "accept loop ended abnormally");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.accept.abort();
        for task in &self.background {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    // Every session holds a sender; the receiver sees the channel close when the last one ends.
    let (sessions, mut all_done) = mpsc::channel::<()>(1);
    let mut sessions = Some(sessions);
    let mut next_id: u64 = 0;
    let admission = Admission::new(shared.config.max_connections);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: the listener itself is fine.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let Some(admitted) = admission.admit(&shared.metrics) else {
            let (admission, shared) = (admission.clone(), shared.clone());
            tokio::spawn(
                async move { admission.refuse(stream, &shared.metrics).await }
                    .instrument(info_span!("refused", id = next_id, %peer)),
            );
            continue;
        };
        let guard = sessions.clone();
        let span = info_span!("conn", id = next_id, %peer);
        let shared = shared.clone();
        tokio::spawn(
            async move {
                session::handle(stream, peer, shared).await;
                drop(admitted);
                drop(guard);
            }
            .instrument(span),
        );
    }
    drop(listener);
    sessions.take();
    let grace = shared.config.shutdown_grace;
    info!(?grace, "stopped accepting; waiting for open sessions");
    if tokio::time::timeout(grace, all_done.recv()).await.is_err() {
        warn!(
            ?grace,
            "sessions still open after the shutdown grace; closing them"
        );
    }
}
