//! Reaching a server for a client: the next healthy backend in round-robin order that accepts
//! the connection (inside TLS with `--server-tls`) and answers the client's first packet in time,
//! the others tried while the client has seen nothing; TCP settings that notice a vanished server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::pool::Backend;
use crate::shared::Shared;
use crate::tls::ServerStream;

/// The next healthy backend that accepts a TCP connection and answers `request` (the client's
/// first packet, sent to it), trying the others in round-robin order when one refuses or does
/// not answer; with none, waits for the pool to change until the hold timeout.
pub async fn connect(shared: &Shared, request: &[u8]) -> Option<(Arc<Backend>, ServerStream)> {
    let deadline = Instant::now() + shared.config.hold_timeout;
    // The backends that refused this client since the pool last changed.
    let refused: Mutex<Vec<SocketAddr>> = Mutex::default();
    let mut waiting = false;
    let found = shared
        .pool
        .wait_for(
            deadline,
            shared.config.hold_timeout,
            || {
                if !waiting {
                    waiting = true;
                    shared.metrics.waiting.inc();
                }
            },
            |fresh| {
                if fresh {
                    // Something changed (a check passed, DNS moved): every backend deserves a new try.
                    lock(&refused).clear();
                }
                try_each(shared, &refused, request)
            },
        )
        .await;
    if waiting {
        shared.metrics.waiting.dec();
    }
    found
}

/// Connects to the healthy backends not in `refused`, round-robin, sending each `request`,
/// until one answers.
async fn try_each(
    shared: &Shared,
    refused: &Mutex<Vec<SocketAddr>>,
    request: &[u8],
) -> Option<(Arc<Backend>, ServerStream)> {
    loop {
        let pick = shared.pool.pick(&lock(refused))?;
        let backend = pick.endpoint;
        match open(shared, &backend, request, pick.alternatives).await {
            Ok(stream) => {
                backend.data.metrics.connected.inc();
                return Some((backend, stream));
            }
            Err(Failure::NoAnswer) => {
                backend.data.metrics.no_answer.inc();
                let waited = shared.config.first_answer_timeout;
                warn!(backend = %backend.addr, ?waited, "no answer to the client's first packet; trying the next backend");
                // It accepted the connection but answers nothing: frozen or overwhelmed. Out
                // until its login check passes again (the last one is spared: its check decides).
                shared.pool.eject_unless_last(
                    &backend.addr,
                    &format!("no answer to a client's first packet within {waited:?}"),
                );
            }
            Err(Failure::Connect(e)) => {
                backend.data.metrics.connect_failed.inc();
                warn!(backend = %backend.addr, error = %e, "connect failed; trying the next backend");
            }
            Err(Failure::ConnectTimeout) => {
                backend.data.metrics.connect_failed.inc();
                warn!(backend = %backend.addr, timeout = ?shared.config.connect_timeout, "connect timed out; trying the next backend");
            }
        }
        lock(refused).push(backend.addr);
    }
}

/// A server can vanish without a word: its pod deleted and its address silent, a node gone. The
/// kernel alone would retransmit a query for about 15 minutes and keep an idle session forever.
/// With keepalive probes (after 10 s idle, every 2 s, 3 unanswered) and `TCP_USER_TIMEOUT` (data
/// unacknowledged for 5 s; the kernel notices at its next retransmission after that, about 12 s
/// in on loopback here), the session fails within seconds and its client learns it. A server
/// that is busy or frozen still acknowledges at the TCP level: only a vanished one trips this.
fn notice_a_vanished_server(stream: &TcpStream) {
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(2))
        .with_retries(3);
    if let Err(e) = socket
        .set_tcp_keepalive(&keepalive)
        .and_then(|()| socket.set_tcp_user_timeout(Some(SERVER_USER_TIMEOUT)))
    {
        debug!(error = %e, "could not set TCP keepalive on a server connection");
    }
}

/// How long data sent to a server may stay unacknowledged before its session is given up.
const SERVER_USER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a server could not take a client.
enum Failure {
    Connect(std::io::Error),
    ConnectTimeout,
    /// Connected, but the first packet got no answer in time.
    NoAnswer,
}

/// Connects to `backend` and sends it `request`; while another server is left to try
/// (`alternatives`), waits for the first byte of its answer (without reading it: the relay reads
/// it) for the first-answer timeout.
async fn open(
    shared: &Shared,
    backend: &Backend,
    request: &[u8],
    alternatives: bool,
) -> Result<ServerStream, Failure> {
    let stream = tokio::time::timeout(
        shared.config.connect_timeout,
        TcpStream::connect(backend.addr),
    )
    .await
    .map_err(|_| Failure::ConnectTimeout)?
    .map_err(Failure::Connect)?;
    // Postgres messages are small and latency-bound.
    let _ = stream.set_nodelay(true);
    notice_a_vanished_server(&stream);
    let mut stream = match &shared.config.server_tls {
        None => ServerStream::Plain(stream),
        // The answer to the SSLRequest is the server's first answer: a frozen one is passed over.
        Some(tls) if alternatives => {
            tokio::time::timeout(shared.config.first_answer_timeout, tls.start(stream))
                .await
                .map_err(|_| Failure::NoAnswer)?
                .map_err(Failure::Connect)?
        }
        Some(tls) => tls.start(stream).await.map_err(Failure::Connect)?,
    };
    stream.write_all(request).await.map_err(Failure::Connect)?;
    if let (true, ServerStream::Plain(tcp)) = (alternatives, &stream) {
        let mut first = [0u8; 1];
        match tokio::time::timeout(shared.config.first_answer_timeout, tcp.peek(&mut first)).await {
            Err(_) => return Err(Failure::NoAnswer),
            Ok(Err(e)) => return Err(Failure::Connect(e)),
            Ok(Ok(0)) => {
                return Err(Failure::Connect(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed before answering",
                )))
            }
            Ok(Ok(_)) => {}
        }
    }
    Ok(stream)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
