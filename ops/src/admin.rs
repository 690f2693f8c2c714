//! Pieces of the admin listener every binary serves the same way: `/metrics` in Prometheus' text
//! format, `/readyz` answers, and the one time format of `/status` (RFC 3339, milliseconds, UTC).

use std::time::SystemTime;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, TextEncoder};

/// `/metrics`: every family of `registry` in the text format.
pub fn metrics(registry: &prometheus::Registry) -> Response {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&registry.gather(), &mut body) {
        Ok(()) => (
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response(),
    }
}

/// `/readyz`: 200 `ready: <detail>`, or 503 with why not.
pub fn readiness(ready: Result<String, String>) -> Response {
    match ready {
        Ok(detail) => format!("ready: {detail}\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// Text made safe for HTML element content and attribute values (the stats pages).
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The answer of a draining process, from SIGTERM on.
pub const DRAINING: &str = "draining: shutting down after SIGTERM";

/// A time in `/status`: `2026-12-02T06:18:09.913Z`.
pub fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
