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

/// The start of a stats page (the proxy's and pgbalancer's): refreshed every 2 s, no scripts, one
/// style: tables of right-aligned numbers, `td.l` left-aligned, `td.why` a wrapping reason, and
/// rows coloured by their class (`up`/`usable` green, `down` red, `ejected` yellow). `title` is
/// text, escaped here.
pub fn page_start(html: &mut String, title: &str) {
    html.push_str(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>"#,
    );
    html.push_str(&escape_html(title));
    html.push_str(
        r#"</title>
<style>
body { font: 13px sans-serif; margin: 1em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #999; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #eee; } td.l { text-align: left; }
td.why { text-align: left; white-space: normal; max-width: 40em; }
tr.up, tr.usable { background: #c0ffc0; } tr.down { background: #ffc0c0; }
tr.ejected { background: #ffffb0; }
</style></head><body>
"#,
    );
}

/// The end of a stats page: links to `/status` and `/metrics`.
pub fn page_end(html: &mut String) {
    html.push_str(
        "<p><a href=\"/status\">/status</a> &middot; <a href=\"/metrics\">/metrics</a></p>\n</body></html>\n",
    );
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
