//! Requests Pingora's parser lets through that a front door must still refuse with 400, so they
//! are never forwarded.

use pingora_http::RequestHeader;

/// Why `req` is not a request to forward, if it is not.
pub fn malformed(req: &RequestHeader) -> Option<&'static str> {
    // RFC 9112 3.2: an HTTP/1.1 request without Host gets 400.
    if req.version == http::Version::HTTP_11 && req.headers.get(http::header::HOST).is_none() {
        return Some("HTTP/1.1 request without a Host header");
    }
    // Pingora 0.9 percent-encodes control characters in the target before this runs (a raw
    // `/a\x01b` arrives as `/a%01b`; tests/hostile.rs); this stays as a guard should that change.
    let target = req.raw_path();
    if target.is_empty() || target.iter().any(|b| *b <= b' ' || *b == 0x7f) {
        return Some("request target contains control characters or spaces");
    }
    None
}

/// Why a request's framing is ambiguous, if it is: `Transfer-Encoding` together with
/// `Content-Length` (the CL.TE / TE.CL smuggling shapes). Pingora drops the `Content-Length` and
/// goes on with chunked, as RFC 9112 allows; a front door refuses instead (nginx does since
/// 1.21.1), because a server behind it may pick the other header. `raw` is the header as sent,
/// since Pingora has already removed the `Content-Length` from the parsed one.
pub fn ambiguous_framing(raw: &[u8]) -> Option<&'static str> {
    let mut te = false;
    let mut cl = false;
    for line in raw.split(|b| *b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        te |= name.eq_ignore_ascii_case(b"transfer-encoding");
        cl |= name.eq_ignore_ascii_case(b"content-length");
    }
    (te && cl).then_some("both Transfer-Encoding and Content-Length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_encoding_with_content_length_is_ambiguous() {
        let both = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(ambiguous_framing(both).is_some());
        let te = b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(ambiguous_framing(te), None);
        let cl = b"POST /transfer-encoding: HTTP/1.1\r\ncontent-length: 4\r\n\r\n";
        assert_eq!(ambiguous_framing(cl), None);
    }

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
