//! Which requests may be cut at their first-byte deadline and sent to another endpoint: those
//! that can be sent twice (idempotent methods) and that are not meant to wait. A Server-Sent
//! Events stream or an upgraded connection (websocket) may stay quiet for long by design, so it
//! waits the full read timeout like any last attempt (an upgrade: the tunnel idle timeout).
//!
//! Pingora applies an attempt's read timeout to every read of the answer, so a deadline also
//! bounds the gaps of a response body that streams slowly; the exemptions above cover the streams
//! that announce themselves, and `first_byte_timeout: off` every other.

use pingora_http::RequestHeader;

pub fn applies(req: &RequestHeader) -> bool {
    if !req.method.is_idempotent() {
        return false;
    }
    let headers = &req.headers;
    if headers.contains_key(http::header::UPGRADE) {
        return false;
    }
    let event_stream = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"));
    !event_stream
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn only_idempotent_requests_that_do_not_stream_are_cut() {
        assert!(applies(&req("GET", &[])));
        assert!(applies(&req("PUT", &[("accept", "application/json")])));
        assert!(!applies(&req("POST", &[])));
        assert!(!applies(&req("PATCH", &[])));
        assert!(!applies(&req("GET", &[("Accept", "Text/Event-Stream")])));
        assert!(!applies(&req(
            "GET",
            &[("upgrade", "websocket"), ("connection", "upgrade")]
        )));
    }
}
