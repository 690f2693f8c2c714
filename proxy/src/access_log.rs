//! The access log: one line per request on stdout (the other logs go to stderr), as logfmt text
//! or a JSON object, or none. Written by the proxy itself, not through `tracing`: the line is
//! formatted once into a buffer the worker thread reuses and written with one `write`, so a
//! request costs no subscriber machinery, no allocation and no colour codes.

use std::cell::RefCell;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// How the access log is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    /// No access log.
    Off,
    /// One logfmt line per request (`key=value`, values with spaces or quotes quoted).
    #[default]
    Text,
    /// One JSON object per request.
    Json,
}

impl std::fmt::Display for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// What one request did, borrowed from the request for the time of the write.
#[derive(Debug, serde::Serialize)]
pub struct Entry<'a> {
    /// The client's address (the TCP peer).
    pub client: Option<SocketAddr>,
    pub method: &'a str,
    /// The request target as received (path and query, or the absolute form).
    pub target: &'a str,
    pub proto: &'static str,
    /// The `Host` header, or the authority of an absolute-form target.
    pub host: &'a str,
    /// 0 when no response was written (the client went away first).
    pub status: u16,
    /// Request body bytes read from the client.
    pub bytes_in: usize,
    /// Response body bytes sent to the client.
    pub bytes_out: usize,
    pub user_agent: &'a str,
    /// The route's group, `-` for a request no group serves.
    pub group: &'a str,
    /// The endpoint of the last attempt.
    pub upstream: Option<SocketAddr>,
    pub attempts: u32,
    /// Time spent waiting for an endpoint (`held_ms`).
    #[serde(rename = "held_ms", serialize_with = "millis")]
    pub held: Duration,
    /// From the last attempt's start (connect included) to its response header
    /// (`upstream_first_byte_ms`).
    #[serde(rename = "upstream_first_byte_ms", serialize_with = "opt_millis")]
    pub upstream_first_byte: Option<Duration>,
    /// From the last attempt's start to the end of the request (`upstream_ms`).
    #[serde(rename = "upstream_ms", serialize_with = "opt_millis")]
    pub upstream_time: Option<Duration>,
    /// From the request header to the end, holds and retries included (`duration_ms`).
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    pub error: Option<&'a str>,
}

/// `HTTP/1.1` and the like, for [`Entry::proto`].
pub fn proto(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "-",
    }
}

thread_local! {
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

impl AccessLog {
    /// Writes `entry` as one line on stdout (nothing when off). A failed write is dropped: the
    /// request is served whether or not its line could be written.
    pub fn write(self, entry: &Entry<'_>) {
        if self == Self::Off {
            return;
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            self.format(entry, SystemTime::now(), line);
            let _ = std::io::stdout().lock().write_all(line);
        });
    }

    /// The line for `entry` at `now`, newline included, appended to `out`. (Writes into a `Vec`
    /// cannot fail.)
    pub fn format(self, entry: &Entry<'_>, now: SystemTime, out: &mut Vec<u8>) {
        let ts = humantime::format_rfc3339_millis(now);
        match self {
            Self::Off => return,
            Self::Text => {
                let _ = write!(out, "ts={ts}");
                field(out, "client", entry.client.as_ref());
                value(out, "method", entry.method);
                value(out, "target", entry.target);
                value(out, "proto", entry.proto);
                value(out, "host", entry.host);
                let _ = write!(
                    out,
                    " status={} bytes_in={} bytes_out={}",
                    entry.status, entry.bytes_in, entry.bytes_out
                );
                value(out, "group", entry.group);
                field(out, "upstream", entry.upstream.as_ref());
                let _ = write!(
                    out,
                    " attempts={} held_ms={}",
                    entry.attempts,
                    entry.held.as_millis()
                );
                ms(out, "upstream_first_byte_ms", entry.upstream_first_byte);
                ms(out, "upstream_ms", entry.upstream_time);
                ms(out, "duration_ms", Some(entry.duration));
                value(out, "user_agent", entry.user_agent);
                if let Some(error) = entry.error {
                    value(out, "error", error);
                }
            }
            Self::Json => {
                let _ = write!(out, "{{\"ts\":\"{ts}\",");
                let start = out.len();
                // A struct of strings and numbers always serializes; its `{` is replaced by the
                // `ts` key written above.
                let _ = serde_json::to_writer(&mut *out, entry);
                out.remove(start);
            }
        }
        out.push(b'\n');
    }
}

/// ` key=value` for a value shown with `Display`, `-` when there is none.
fn field(out: &mut Vec<u8>, key: &str, v: Option<&SocketAddr>) {
    match v {
        Some(v) => {
            let _ = write!(out, " {key}={v}");
        }
        None => {
            let _ = write!(out, " {key}=-");
        }
    }
}

/// ` key=value` with logfmt quoting: a value that is empty or holds a space, `=`, a quote, a
/// backslash or a control character is written in double quotes, escaped (`\"`, `\\`, `\n`,
/// `\r`, `\t`, `\xNN`).
fn value(out: &mut Vec<u8>, key: &str, v: &str) {
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    let special = |b: u8| matches!(b, b' ' | b'=' | b'"' | b'\\') || b.is_ascii_control();
    if !v.is_empty() && !v.bytes().any(special) {
        out.extend_from_slice(v.as_bytes());
        return;
    }
    out.push(b'"');
    // Byte by byte: every byte escaped is ASCII, so the UTF-8 around it stays whole.
    for b in v.bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if b.is_ascii_control() => {
                let _ = write!(out, "\\x{b:02x}");
            }
            b => out.push(b),
        }
    }
    out.push(b'"');
}

/// ` key=1.234` (milliseconds, three decimals), `-` when there is none.
fn ms(out: &mut Vec<u8>, key: &str, d: Option<Duration>) {
    match d {
        Some(d) => {
            let _ = write!(out, " {key}={:.3}", d.as_secs_f64() * 1000.0);
        }
        None => {
            let _ = write!(out, " {key}=-");
        }
    }
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

fn opt_millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => millis(d, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            client: Some("10.0.0.7:51234".parse().unwrap()),
            method: "GET",
            target: "/users?id=1",
            proto: "HTTP/1.1",
            host: "app.example",
            status: 200,
            bytes_in: 0,
            bytes_out: 37,
            user_agent: "curl/8.5.0 (x86_64)",
            group: "default",
            upstream: Some("10.42.0.12:8000".parse().unwrap()),
            attempts: 1,
            held: Duration::ZERO,
            upstream_first_byte: Some(Duration::from_micros(2100)),
            upstream_time: Some(Duration::from_micros(2300)),
            duration: Duration::from_micros(2512),
            error: None,
        }
    }

    fn format(log: AccessLog, e: &Entry<'_>) -> String {
        let at = humantime::parse_rfc3339("2026-12-03T11:55:02.123Z").unwrap();
        let mut line = Vec::new();
        log.format(e, at, &mut line);
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn text_is_logfmt_with_every_field() {
        let line = format(AccessLog::Text, &entry());
        assert_eq!(
            line,
            "ts=2026-12-03T11:55:02.123Z client=10.0.0.7:51234 method=GET target=\"/users?id=1\" \
             proto=HTTP/1.1 host=app.example status=200 bytes_in=0 bytes_out=37 group=default \
             upstream=10.42.0.12:8000 attempts=1 held_ms=0 upstream_first_byte_ms=2.100 \
             upstream_ms=2.300 duration_ms=2.512 user_agent=\"curl/8.5.0 (x86_64)\"\n"
        );
    }

    #[test]
    fn text_quotes_what_would_break_a_line_apart() {
        let mut e = entry();
        e.user_agent = "";
        e.target = "/a\"b\nc";
        e.error = Some("upstream: connection refused");
        e.client = None;
        let line = format(AccessLog::Text, &e);
        assert!(line.contains(" target=\"/a\\\"b\\nc\" "), "{line}");
        assert!(line.contains(" client=- "), "{line}");
        assert!(line.contains(" user_agent=\"\" "), "{line}");
        assert!(
            line.ends_with(" error=\"upstream: connection refused\"\n"),
            "{line}"
        );
        assert_eq!(line.matches('\n').count(), 1);
    }

    #[test]
    fn json_is_one_object_per_line() {
        let mut e = entry();
        e.upstream_first_byte = None;
        let line = format(AccessLog::Json, &e);
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ts"], "2026-12-03T11:55:02.123Z");
        assert_eq!(v["client"], "10.0.0.7:51234");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes_out"], 37);
        assert_eq!(v["user_agent"], "curl/8.5.0 (x86_64)");
        assert_eq!(v["upstream"], "10.42.0.12:8000");
        assert_eq!(v["upstream_ms"], 2.3);
        assert!(v["upstream_first_byte_ms"].is_null());
        assert_eq!(v["duration_ms"], 2.512);
        assert!(v["error"].is_null());
    }

    #[test]
    fn off_writes_nothing() {
        assert_eq!(format(AccessLog::Off, &entry()), "");
    }
}
