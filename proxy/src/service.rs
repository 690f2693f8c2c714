//! The Pingora side: [`Proxy`] implements `ProxyHttp`. Routing and endpoint choice happen per
//! attempt in `upstream_peer`; failures mark the endpoint and retry elsewhere; with no usable
//! endpoint the request is held ([`hold`]) instead of failing. Each attempt is counted in its
//! endpoint's load until it ends, and its time to the first byte feeds the endpoint's
//! response-time estimate; an idempotent attempt with another endpoint left waits for its first
//! byte only as long as the group's estimate allows ([`deadline`]), then goes elsewhere.

mod access;
mod deadline;
mod hold;
pub mod reject;
mod respond;
mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::inflight::{InFlight, InFlightGuard};
use crate::limits::connections;
use crate::limits::request as limits;
use crate::live::{Live, SharedLive};
use crate::metrics::{Attempt, Refusals};
use crate::upstream::{Endpoint, Group, Pod};

pub struct Proxy {
    live: SharedLive,
    inflight: InFlight,
    refusals: Refusals,
    idle_keepalive_secs: u64,
}

/// Per-request state.
pub struct RequestCtx {
    started: Instant,
    /// Routes and settings as they were when the request arrived; a reload does not change them
    /// under it.
    live: Arc<Live>,
    group: Option<Arc<Group>>,
    /// Endpoints this request failed on, in order.
    tried: Vec<SocketAddr>,
    current: Option<Arc<Endpoint>>,
    /// The current attempt, counted in its endpoint's load until it ends.
    in_flight: Option<upstream::InFlight<Pod>>,
    /// The current attempt's first-byte deadline, if it has one.
    first_byte_deadline: Option<Duration>,
    /// An attempt of this request was cut at its first-byte deadline: the next ones wait the
    /// full read timeout (the request may be slow by nature; it is never cut twice).
    cut: bool,
    /// The current attempt's answer has begun (its header came back).
    answered: bool,
    /// When the current attempt began (its endpoint picked, before the connect).
    attempt_started: Option<Instant>,
    /// The current attempt's time to its response header.
    first_byte: Option<Duration>,
    attempts: u32,
    /// Time spent waiting for an endpoint.
    held: Duration,
    /// Set when the request is answered 503 for want of an endpoint: why.
    unavailable: Option<String>,
    /// The connection was upgraded (`101`): a tunnel, open until the request ends.
    tunnel: Option<tunnel::Tunnel>,
    _inflight: InFlightGuard,
}

impl Proxy {
    /// `idle_keepalive_secs`: how long a kept-alive client connection may idle between two
    /// requests ([`connections::idle_keepalive_secs`]).
    pub fn new(
        live: SharedLive,
        inflight: InFlight,
        refusals: Refusals,
        idle_keepalive_secs: u64,
    ) -> Self {
        Self {
            live,
            inflight,
            refusals,
            idle_keepalive_secs,
        }
    }

    fn record_failure(&self, ctx: &mut RequestCtx, outcome: Attempt) {
        ctx.in_flight = None;
        if let (Some(group), Some(endpoint)) = (&ctx.group, &ctx.current) {
            group.events.metrics.attempt(outcome);
            ctx.tried.push(endpoint.addr);
        }
    }
}

/// The host a request is for: the authority of an absolute-form target, else its `Host` header.
fn host(req: &pingora_http::RequestHeader) -> Option<&str> {
    req.uri.host().or_else(|| {
        req.headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        // Pingora makes the context right after the request header is parsed.
        connections::header_complete();
        RequestCtx {
            started: Instant::now(),
            live: self.live.load_full(),
            group: None,
            tried: Vec::new(),
            current: None,
            in_flight: None,
            first_byte_deadline: None,
            cut: false,
            answered: false,
            attempt_started: None,
            first_byte: None,
            attempts: 0,
            held: Duration::ZERO,
            unavailable: None,
            tunnel: None,
            _inflight: self.inflight.start(),
        }
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // From now on a slow client is timed per read of its body.
        session.set_read_timeout(Some(ctx.live.limits.body_timeout));
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // Pingora has just set an HTTP/1.1 connection's keep-alive to for ever (off stays off).
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(self.idle_keepalive_secs));
        }
        if let Err(refused) = limits::check_header(session.req_header(), &ctx.live.limits) {
            let body = format!(
                "{} {}: {}\n",
                refused.status,
                respond::reason(refused.status),
                refused.why
            );
            self.refusals.count(refused.status);
            respond::send(session, refused.status, &body, None).await?;
            return Ok(true);
        }
        let raw = session
            .as_downstream()
            .as_http1()
            .map(|h1| h1.get_headers_raw_bytes());
        let malformed = reject::malformed(session.req_header())
            .or_else(|| raw.as_deref().and_then(reject::ambiguous_framing));
        if let Some(why) = malformed {
            self.refusals.count(400);
            respond::send(session, 400, &format!("400 Bad Request: {why}\n"), None).await?;
            return Ok(true);
        }
        let req = session.req_header();
        let host = host(req);
        match ctx.live.router.route(host, req.uri.path()) {
            Some(group) => {
                ctx.group = Some(Arc::clone(group));
                Ok(false)
            }
            None => {
                self.refusals.count(404);
                let body = format!(
                    "no upstream group serves host {:?} path {:?}\n",
                    host.unwrap_or(""),
                    req.uri.path()
                );
                respond::send(session, 404, &body, None).await?;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(tunnel) = &ctx.tunnel {
            // What crosses a tunnel is no request body: no size limit.
            tunnel.relayed_from_client(body.as_ref().map_or(0, |b| b.len()));
            return Ok(());
        }
        let checked =
            limits::check_body_read(session.body_bytes_read(), ctx.live.limits.max_body_bytes);
        if checked.is_err() {
            self.refusals.count(413);
        }
        checked
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let group = Arc::clone(ctx.group.as_ref().ok_or_else(|| {
            Error::explain(
                ErrorType::InternalError,
                "request reached upstream_peer unrouted",
            )
        })?);
        let settings = ctx.live.upstream.clone();
        let pick = match group.pick(&ctx.tried) {
            Some(pick) => pick,
            None => hold::wait_for_endpoint(&group, ctx, settings.hold_timeout).await?,
        };
        ctx.attempts += 1;
        let endpoint = pick.endpoint;
        endpoint
            .data
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

        let mut peer = HttpPeer::new(endpoint.addr, false, String::new());
        let last_chance = !pick.alternatives || ctx.attempts >= settings.max_attempts;
        let options = &mut peer.options;
        options.connection_timeout = Some(if last_chance {
            settings.connect_timeout
        } else {
            settings.failover_connect_timeout
        });
        let first_byte = if last_chance || ctx.cut || !deadline::applies(session.req_header()) {
            None
        } else {
            settings
                .first_byte
                .deadline(group.members().latency_estimate())
                .filter(|d| *d < settings.read_timeout)
        };
        // An upgrade's attempt reads its tunnel with this timeout too ([`tunnel`]).
        let read_timeout = if tunnel::requested(session.req_header()) {
            settings.tunnel_idle_timeout
        } else {
            settings.read_timeout
        };
        options.read_timeout = Some(first_byte.unwrap_or(read_timeout));
        options.write_timeout = Some(settings.write_timeout);
        options.idle_timeout = Some(settings.idle_timeout);
        // Connections pooled to an earlier incarnation of this address are never reused.
        peer.group_key = endpoint.incarnation();
        ctx.first_byte_deadline = first_byte;
        ctx.answered = false;
        ctx.attempt_started = Some(Instant::now());
        ctx.first_byte = None;
        ctx.in_flight = Some(endpoint.begin());
        ctx.current = Some(endpoint);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let outcome = match e.etype() {
            ErrorType::ConnectTimedout => Attempt::ConnectTimeout,
            ErrorType::ConnectRefused => Attempt::ConnectRefused,
            _ => Attempt::ConnectError,
        };
        self.record_failure(ctx, outcome);
        if let (Some(group), Some(endpoint)) = (&ctx.group, &ctx.current) {
            group.eject(endpoint.addr, &e.to_string(), outcome);
        }
        // Nothing reached the upstream: safe to retry any method elsewhere.
        if ctx.attempts < ctx.live.upstream.max_attempts {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        // A read timeout before the answer began. If the endpoint answered nothing else meanwhile
        // (no request, no check) it stalls: frozen or overwhelmed. It is priced at what it was
        // given and ejected as a refused one is. If it did answer others, the request is the
        // slow one and the endpoint stays. Either way an attempt cut at its first-byte deadline
        // (only idempotent requests with another endpoint left have one) goes elsewhere.
        let stalled = e.etype() == &ErrorType::ReadTimedout && !ctx.answered;
        if stalled {
            if let (Some(group), Some(endpoint), Some(in_flight)) =
                (&ctx.group, &ctx.current, &ctx.in_flight)
            {
                let waited = in_flight.elapsed().as_millis();
                match in_flight.no_answer() {
                    upstream::NoAnswer::Stalled => {
                        let reason = format!("no answer within {waited} ms");
                        group.eject(endpoint.addr, &reason, Attempt::FirstByteTimeout);
                    }
                    upstream::NoAnswer::SlowRequest => tracing::debug!(
                        group = group.name(),
                        addr = %endpoint.addr,
                        waited,
                        "no answer in time, but the endpoint answers others: not ejected"
                    ),
                }
            }
            ctx.cut |= ctx.first_byte_deadline.is_some();
        }
        let outcome = if stalled {
            Attempt::FirstByteTimeout
        } else {
            Attempt::UpstreamError
        };
        self.record_failure(ctx, outcome);
        let mut e = e.more_context(format!("Peer: {peer}"));
        // The request may have reached the upstream: only an idempotent request with its whole
        // body buffered is retried, and only when a reused pooled connection failed before any
        // response byte (Pingora marks those).
        let idempotent = session.req_header().method.is_idempotent();
        if !idempotent || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else if stalled && ctx.first_byte_deadline.is_some() {
            // Cut by our own deadline before any byte of the answer: nothing reached the client.
            e.set_retry(true);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        if ctx.attempts >= ctx.live.upstream.max_attempts {
            e.set_retry(false);
        }
        e
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora_core::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (false, Some(group), Some(started)) = (reused, &ctx.group, ctx.attempt_started) {
            let connect = started.elapsed().as_secs_f64();
            group.events.metrics.connect.observe(connect);
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let client = session.client_addr().and_then(|a| a.as_inet()).copied();
        ctx.live.forwarding.apply(upstream_request, client);
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.answered = true;
        let switching = upstream_response.status == http::StatusCode::SWITCHING_PROTOCOLS;
        if switching && tunnel::requested(session.req_header()) {
            if let Some(group) = &ctx.group {
                // From now on the client's reads are the tunnel's, not a body's.
                session.set_read_timeout(Some(ctx.live.upstream.tunnel_idle_timeout));
                ctx.tunnel = Some(tunnel::Tunnel::open(&group.events.metrics.tunnels));
            }
        }
        ctx.first_byte = ctx.attempt_started.map(|t| t.elapsed());
        if let (Some(group), Some(first_byte)) = (&ctx.group, ctx.first_byte) {
            group
                .events
                .metrics
                .first_byte
                .observe(first_byte.as_secs_f64());
        }
        if let Some(in_flight) = &ctx.in_flight {
            in_flight.answered();
        }
        if let Some(endpoint) = &ctx.current {
            upstream_response
                .insert_header("X-Upstream-Addr", endpoint.data.header_value.clone())?;
            if let Some(group) = &ctx.group {
                group.events.metrics.attempt(Attempt::Ok);
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        // A tunnel's 101 is long sent: nothing more to answer, only the connection to close.
        let code = if ctx.tunnel.is_some() {
            0
        } else {
            respond::status_for(e)
        };
        if code > 0 {
            let upstream = ctx.current.as_ref().map(|ep| &ep.data.header_value);
            let body = match &ctx.unavailable {
                Some(reason) => format!("503 Service Unavailable: {reason}\n"),
                None => format!("{code} {}: {e}\n", respond::reason(code)),
            };
            let upstream = if ctx.unavailable.is_some() {
                None
            } else {
                upstream
            };
            if let Err(write_error) = respond::send(session, code, &body, upstream).await {
                tracing::debug!(error = %write_error, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let (Some(tunnel), Some(body)) = (&ctx.tunnel, body.as_ref()) {
            tunnel.relayed_to_client(body.len());
        }
        Ok(None)
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _error: &Error) -> bool {
        // The access log line carries the error.
        true
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let duration = ctx.started.elapsed();
        if let Some(tunnel) = ctx.tunnel.take() {
            tunnel.ended(e);
        }
        if let Some(g) = &ctx.group {
            g.events.metrics.response(status);
            g.events.metrics.duration.observe(duration.as_secs_f64());
        }
        access::write(session, e, ctx, status, duration);
    }
}
