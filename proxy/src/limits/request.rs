//! Per-request size limits, checked once the header is in and before anything is forwarded: the
//! request target (414), the header (431), a declared body (413). A chunked body has no declared
//! size; [`check_body_read`] cuts it off with 413 once it passes the limit.

use pingora_core::{Error, ErrorType, Result};
use pingora_http::RequestHeader;

use crate::config::Limits;

/// A request refused for its size: the status and a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    pub status: u16,
    pub why: String,
}

/// Checks the header of `req` against `limits`.
pub fn check_header(req: &RequestHeader, limits: &Limits) -> Result<(), TooLarge> {
    let body = content_length(req).unwrap_or(0);
    let checks = [
        (
            414,
            "request target bytes",
            req.raw_path().len() as u64,
            limits.max_uri_bytes as u64,
        ),
        (
            431,
            "header lines",
            req.headers.len() as u64,
            limits.max_headers as u64,
        ),
        (
            431,
            "request header bytes",
            header_bytes(req) as u64,
            limits.max_header_bytes as u64,
        ),
        (
            413,
            "request body bytes (Content-Length)",
            body,
            limits.max_body_bytes,
        ),
    ];
    match checks.into_iter().find(|(_, _, got, limit)| got > limit) {
        Some((status, what, got, limit)) => Err(TooLarge {
            status,
            why: format!("{got} {what} (limit {limit})"),
        }),
        None => Ok(()),
    }
}

/// The size of the header as sent: `METHOD SP target SP HTTP/1.1 CRLF`, each `name: value CRLF`,
/// the final CRLF. Whitespace the client added around values is not counted.
fn header_bytes(req: &RequestHeader) -> usize {
    let line = req.method.as_str().len() + 1 + req.raw_path().len() + 1 + "HTTP/1.1\r\n".len();
    let fields: usize = req
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + fields + 2
}

/// The declared body size. Pingora has already refused an unparsable or ambiguous one.
fn content_length(req: &RequestHeader) -> Option<u64> {
    if req.headers.contains_key(http::header::TRANSFER_ENCODING) {
        return None;
    }
    req.headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// An error (answered 413 when no response has started) once `read` body bytes are over `limit`.
/// `read` is what the client has sent so far, not what passed the body filter: on a retry Pingora
/// runs the filter again over the buffered body, and that must not count twice.
pub fn check_body_read(read: usize, limit: u64) -> Result<()> {
    if read as u64 > limit {
        return Error::e_explain(
            ErrorType::HTTPStatus(413),
            format!("request body over {limit} bytes"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn limits() -> Limits {
        Limits {
            max_uri_bytes: 20,
            max_header_bytes: 200,
            max_headers: 3,
            max_body_bytes: 100,
            ..Limits::default()
        }
    }

    #[test]
    fn each_limit_has_its_status() {
        let l = limits();
        assert_eq!(check_header(&req("/ok", &[("host", "a")]), &l), Ok(()));
        let status = |r: RequestHeader| check_header(&r, &l).unwrap_err().status;
        assert_eq!(status(req(&format!("/{}", "a".repeat(20)), &[])), 414);
        assert_eq!(
            status(req("/", &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")])),
            431
        );
        assert_eq!(status(req("/", &[("a", &"x".repeat(200))])), 431);
        assert_eq!(status(req("/", &[("content-length", "101")])), 413);
        assert_eq!(
            check_header(&req("/", &[("content-length", "100")]), &l),
            Ok(())
        );
    }

    #[test]
    fn the_header_is_counted_as_sent() {
        let r = req("/x", &[("host", "a")]);
        assert_eq!(header_bytes(&r), "GET /x HTTP/1.1\r\nhost: a\r\n\r\n".len());
    }

    #[test]
    fn a_chunked_body_fails_once_past_the_limit() {
        assert!(check_body_read(100, 100).is_ok());
        let e = check_body_read(101, 100).unwrap_err();
        assert_eq!(e.etype(), &ErrorType::HTTPStatus(413));
    }
}
