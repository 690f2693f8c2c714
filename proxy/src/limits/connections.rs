//! Per-connection limits, as two thin layers around Pingora's HTTP app:
//!
//! - [`ConnectionLimit`] (a `ServerApp`, once per TCP connection): at most `max_connections` at
//!   once; one more is answered `503` and closed without reading its request.
//! - [`HeaderDeadline`] (an `HttpServerApp`, once per request on a connection): the whole request
//!   header must arrive within `header_timeout`, or the connection is closed. Pingora's own timeout
//!   is per read, so a client trickling a byte at a time would hold a connection for ever. On a
//!   kept-alive connection it counts from the next request's first byte: Pingora waits for that
//!   byte holding little, up to the keep-alive timeout, which [`idle_keepalive_secs`] makes the
//!   header timeout too.
//!
//! Pingora reads the header before any `ProxyHttp` hook runs, so the deadline learns that the
//! header is complete from [`header_complete`], which `new_ctx` calls (Pingora creates the request
//! context right after the header is parsed, on the same task).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore};

tokio::task_local! {
    static HEADER_READ: Arc<Notify>;
}

/// Tells the [`HeaderDeadline`] around the current request that its header is complete.
pub fn header_complete() {
    // Outside a deadline (unit tests, subrequests) there is nothing to tell.
    let _ = HEADER_READ.try_with(|read| read.notify_one());
}

/// The keep-alive timeout (Pingora's whole seconds; 0 would mean none) for a header timeout: an
/// idle connection is closed once the header timeout has passed, as a silent new one is. Pingora
/// itself keeps an HTTP/1.1 connection open for ever between requests.
pub fn idle_keepalive_secs(header_timeout: Duration) -> u64 {
    header_timeout.as_secs_f64().ceil().max(1.0) as u64
}

/// Connection counters, on the process's registry.
#[derive(Clone)]
pub struct ConnectionMetrics {
    pub open: IntGauge,
    pub over_limit: IntCounter,
    pub header_timeouts: IntCounter,
}

impl ConnectionMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let open = IntGauge::new("proxy_client_connections", "Client connections open now.")?;
        let refused = IntCounterVec::new(
            Opts::new(
                "proxy_client_connections_closed_total",
                "Client connections the proxy closed for a limit: max_connections (answered 503) or header_timeout.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        Ok(Self {
            open,
            over_limit: refused.with_label_values(&["max_connections"]),
            header_timeouts: refused.with_label_values(&["header_timeout"]),
        })
    }
}

/// The answer to a connection over the limit, written before reading anything: the client's
/// request is never parsed.
fn over_limit_response() -> String {
    let body = "503 Service Unavailable: too many client connections\n";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
/// After the 503, how long and how much of the client's request to swallow so that closing does
/// not send a RST that destroys the answer before the client reads it.
const DRAIN_TIME: Duration = Duration::from_millis(200);
const DRAIN_LIMIT: usize = 64 * 1024;

/// Admits at most `max` connections at once to `inner`.
pub struct ConnectionLimit<A> {
    inner: Arc<A>,
    permits: Arc<Semaphore>,
    metrics: ConnectionMetrics,
}

impl<A> ConnectionLimit<A> {
    pub fn new(inner: A, max: usize, metrics: ConnectionMetrics) -> Self {
        Self {
            inner: Arc::new(inner),
            permits: Arc::new(Semaphore::new(max)),
            metrics,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ConnectionLimit<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            self.metrics.over_limit.inc();
            // Boxed: its drain buffer would otherwise sit in every connection's future.
            Box::pin(refuse(&mut stream)).await;
            return None;
        };
        self.metrics.open.inc();
        let reusable = self.inner.process_new(stream, shutdown).await;
        self.metrics.open.dec();
        // An HTTP app serves every request of the connection itself; a stream handed back would
        // come back here and take a permit again.
        reusable
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

async fn refuse(stream: &mut Stream) {
    if stream
        .write_all(over_limit_response().as_bytes())
        .await
        .is_err()
        || stream.flush().await.is_err()
    {
        return;
    }
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut left = DRAIN_LIMIT;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

/// Closes a connection whose request header does not arrive within `timeout`.
pub struct HeaderDeadline<A> {
    inner: Arc<A>,
    timeout: Duration,
    metrics: ConnectionMetrics,
}

impl<A> HeaderDeadline<A> {
    pub fn new(inner: A, timeout: Duration, metrics: ConnectionMetrics) -> Self {
        Self {
            inner: Arc::new(inner),
            timeout,
            metrics,
        }
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> HttpServerApp for HeaderDeadline<A> {
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let read = Arc::new(Notify::new());
        let request =
            HEADER_READ.scope(read.clone(), self.inner.process_new_http(session, shutdown));
        tokio::pin!(request);
        tokio::select! {
            biased;
            done = &mut request => return done,
            () = read.notified() => {}
            () = tokio::time::sleep(self.timeout) => {
                // Dropping the request drops the session: the connection closes. Nothing of the
                // request has reached an upstream (no hook has run).
                self.metrics.header_timeouts.inc();
                tracing::debug!(timeout = ?self.timeout, "closing a connection: request header too slow");
                return None;
            }
        }
        // The header is in: the body and the upstream have their own timeouts from here.
        request.await
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }

    fn h2_options(&self) -> Option<pingora_core::protocols::http::v2::server::H2Options> {
        self.inner.h2_options()
    }

    async fn http_cleanup(&self) {
        self.inner.http_cleanup().await;
    }
}
