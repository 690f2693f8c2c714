//! The access log line of a finished request, from what Pingora's session and our context know
//! ([`crate::access_log`] formats and writes it).

use std::time::Duration;

use pingora_core::Error;
use pingora_proxy::Session;

use super::RequestCtx;
use crate::access_log::{self, AccessLog};

pub(super) fn write(
    session: &Session,
    e: Option<&Error>,
    ctx: &RequestCtx,
    status: u16,
    duration: Duration,
) {
    if ctx.live.access_log == AccessLog::Off {
        return;
    }
    let req = session.req_header();
    let error = e.map(|e| e.to_string());
    let entry = access_log::Entry {
        client: session.client_addr().and_then(|a| a.as_inet()).copied(),
        method: req.method.as_str(),
        target: std::str::from_utf8(req.raw_path()).unwrap_or("-"),
        proto: access_log::proto(req.version),
        host: super::host(req).unwrap_or(""),
        status,
        bytes_in: session.body_bytes_read(),
        bytes_out: session.body_bytes_sent(),
        user_agent: req
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        group: ctx.group.as_ref().map_or("-", |g| g.name()),
        upstream: ctx.current.as_ref().map(|ep| ep.addr),
        attempts: ctx.attempts,
        held: ctx.held,
        upstream_first_byte: ctx.first_byte,
        upstream_time: ctx.attempt_started.map(|t| t.elapsed()),
        duration,
        error: error.as_deref(),
    };
    ctx.live.access_log.write(&entry);
}
