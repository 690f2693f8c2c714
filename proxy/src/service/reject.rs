//! Requests Pingora's parser lets through that a front door must still refuse with 400, so they
//! are never forwarded.

use pingora_http::RequestHeader;

/// Why `req` is not a request to forward, if it is not.
pub fn malformed(req: &RequestHeader) -> Option<&'static str> {
    // RFC 9112 3.2: an HTTP/1.1 request without Host gets 400.
    if req.version == http::Version::HTTP_11 && req.headers.get(http::header::HOST).is_none() {
        return Some("HTTP/1.1 request without a Host header");
    }
    let target = req.raw_path();
    if target.is_empty() || target.iter().any(|b| *b <= b' ' || *b == 0x7f) {
        return Some("request target contains control characters or spaces");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &[u8], host: bool) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.set_raw_path(path).unwrap();
        if host {
            r.insert_header("Host", "a").unwrap();
        }
        r
    }

    // Control characters cannot be put into a RequestHeader by hand (Pingora's parser keeps them
    // as a raw path); tests/cli.rs sends them over a socket.
    #[test]
    fn a_missing_host_is_refused() {
        assert_eq!(malformed(&req(b"/users", true)), None);
        assert!(malformed(&req(b"/users", false)).is_some());
    }
}
