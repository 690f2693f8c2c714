//! The headers that tell a backend who the client is, as nginx's `proxy_set_header` lines set
//! them: `X-Forwarded-For` (the client appended to what came in: `$proxy_add_x_forwarded_for`),
//! `X-Forwarded-Proto` and `X-Real-IP` (set, whatever came in), and the standard `Forwarded`
//! (RFC 7239, appended; off by default). Each can be switched off.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::header::HeaderValue;
use pingora_http::RequestHeader;

/// One forwarding header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Forwarded {
    XForwardedFor,
    XForwardedProto,
    XRealIp,
    Forwarded,
}

impl Forwarded {
    const ALL: [Self; 4] = [
        Self::XForwardedFor,
        Self::XForwardedProto,
        Self::XRealIp,
        Self::Forwarded,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::XForwardedProto => "x-forwarded-proto",
            Self::XRealIp => "x-real-ip",
            Self::Forwarded => "forwarded",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Which forwarding headers the proxy sets. Default: `X-Forwarded-For`, `X-Forwarded-Proto`,
/// `X-Real-IP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding(u8);

impl Default for Forwarding {
    fn default() -> Self {
        Self::of(&[
            Forwarded::XForwardedFor,
            Forwarded::XForwardedProto,
            Forwarded::XRealIp,
        ])
    }
}

impl Forwarding {
    pub const NONE: Self = Self(0);

    pub fn of(headers: &[Forwarded]) -> Self {
        Self(headers.iter().fold(0, |bits, h| bits | h.bit()))
    }

    pub fn has(self, header: Forwarded) -> bool {
        self.0 & header.bit() != 0
    }

    /// Sets the chosen headers on a request going to an upstream, for a client at `client` that
    /// spoke plain HTTP to us.
    pub fn apply(self, req: &mut RequestHeader, client: Option<SocketAddr>) {
        let Some(client) = client else {
            return;
        };
        if self.0 == 0 {
            return;
        }
        // The address is written once, and shared by the headers that carry it as it is.
        let ip = ip_text(client.ip());
        if self.has(Forwarded::XForwardedFor) {
            let value = match append(req, "x-forwarded-for", as_str(&ip)) {
                Some(joined) => HeaderValue::from_str(&joined).ok(),
                None => Some(ip.clone()),
            };
            insert(req, "x-forwarded-for", value);
        }
        if self.has(Forwarded::XForwardedProto) {
            insert(
                req,
                "x-forwarded-proto",
                Some(HeaderValue::from_static("http")),
            );
        }
        if self.has(Forwarded::XRealIp) {
            insert(req, "x-real-ip", Some(ip.clone()));
        }
        if self.has(Forwarded::Forwarded) {
            let mut element = String::from("for=");
            if client.is_ipv6() {
                let _ = write!(element, "\"[{}]\"", as_str(&ip));
            } else {
                element.push_str(as_str(&ip));
            }
            element.push_str(";proto=http");
            let host = req
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"'));
            if let Some(host) = host {
                let _ = write!(element, ";host=\"{host}\"");
            }
            let value = append(req, "forwarded", &element).unwrap_or(element);
            insert(req, "forwarded", HeaderValue::from_str(&value).ok());
        }
    }
}

/// The address as header text. IPv4 (the common case) without the formatting machinery, which
/// costs more than the rest of a forwarding header.
fn ip_text(ip: IpAddr) -> HeaderValue {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    buf[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    buf[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                buf[len] = b'0' + octet % 10;
                len += 1;
            }
            HeaderValue::from_bytes(&buf[..len]).expect("digits and dots")
        }
        IpAddr::V6(v6) => HeaderValue::from_str(&v6.to_string()).expect("an IPv6 address"),
    }
}

/// A value this module built (ASCII) as text.
fn as_str(value: &HeaderValue) -> &str {
    value.to_str().unwrap_or_default()
}

/// The incoming values of `name` (every line, joined with `, `) with `item` appended, or `None`
/// when none came in.
fn append(req: &RequestHeader, name: &str, item: &str) -> Option<String> {
    let mut value = String::new();
    for line in req.headers.get_all(name) {
        if let Ok(line) = line.to_str() {
            let line = line.trim();
            if !line.is_empty() {
                value.push_str(line);
                value.push_str(", ");
            }
        }
    }
    if value.is_empty() {
        return None;
    }
    value.push_str(item);
    Some(value)
}

fn insert(req: &mut RequestHeader, name: &'static str, value: Option<HeaderValue>) {
    // Every value built here is visible ASCII: addresses, `http`, and incoming values that were
    // already valid header text.
    if let Some(value) = value {
        let _ = req.insert_header(name, value);
    }
}

/// `x-forwarded-for,x-real-ip`, or `none`.
impl FromStr for Forwarding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "none" {
            return Ok(Self::NONE);
        }
        let mut headers = Vec::new();
        for item in s.split(',').map(str::trim) {
            let header = Forwarded::ALL
                .into_iter()
                .find(|h| h.name().eq_ignore_ascii_case(item))
                .ok_or_else(|| {
                    format!(
                        "`{item}` is not one of x-forwarded-for, x-forwarded-proto, x-real-ip, \
                         forwarded (or `none`)"
                    )
                })?;
            headers.push(header);
        }
        Ok(Self::of(&headers))
    }
}

impl std::fmt::Display for Forwarding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = Forwarded::ALL
            .into_iter()
            .filter(|h| self.has(*h))
            .map(Forwarded::name)
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (name, value) in headers {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
    }

    fn values(req: &RequestHeader, name: &str) -> Vec<String> {
        req.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn addresses_are_written_as_std_writes_them() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.7",
            "127.0.113.16",
            "9.99.100.1",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(super::ip_text(ip).to_str().unwrap(), ip.to_string());
        }
    }

    #[test]
    fn defaults_append_the_client_and_set_proto_and_real_ip() {
        let mut req = request(&[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-For", "198.51.100.1"),
            ("X-Real-IP", "6.6.6.6"),
            ("X-Forwarded-Proto", "https"),
        ]);
        Forwarding::default().apply(&mut req, Some("10.0.0.7:5000".parse().unwrap()));
        assert_eq!(
            values(&req, "x-forwarded-for"),
            ["203.0.113.9, 198.51.100.1, 10.0.0.7"]
        );
        assert_eq!(values(&req, "x-real-ip"), ["10.0.0.7"]);
        assert_eq!(values(&req, "x-forwarded-proto"), ["http"]);
        assert!(values(&req, "forwarded").is_empty());
    }

    #[test]
    fn forwarded_quotes_ipv6_and_carries_the_host() {
        let mut req = request(&[("Host", "app.example"), ("Forwarded", "for=192.0.2.60")]);
        let only = Forwarding::of(&[Forwarded::Forwarded]);
        only.apply(&mut req, Some("[2001:db8::1]:5000".parse().unwrap()));
        assert_eq!(
            values(&req, "forwarded"),
            ["for=192.0.2.60, for=\"[2001:db8::1]\";proto=http;host=\"app.example\""]
        );
        assert!(values(&req, "x-forwarded-for").is_empty());
    }

    #[test]
    fn none_leaves_the_request_alone() {
        let mut req = request(&[("X-Forwarded-For", "203.0.113.9")]);
        Forwarding::NONE.apply(&mut req, Some("10.0.0.7:5000".parse().unwrap()));
        assert_eq!(values(&req, "x-forwarded-for"), ["203.0.113.9"]);
        assert!(values(&req, "x-real-ip").is_empty());
    }

    #[test]
    fn parses_lists_and_none_and_refuses_unknown_names() {
        let f: Forwarding = "x-real-ip, Forwarded".parse().unwrap();
        assert!(f.has(Forwarded::XRealIp) && f.has(Forwarded::Forwarded));
        assert!(!f.has(Forwarded::XForwardedFor));
        assert_eq!(f.to_string(), "x-real-ip,forwarded");
        assert_eq!("none".parse::<Forwarding>().unwrap(), Forwarding::NONE);
        let e = "x-forwarded-host".parse::<Forwarding>().unwrap_err();
        assert!(e.contains("x-forwarded-host"), "{e}");
        assert_eq!(
            Forwarding::default().to_string(),
            "x-forwarded-for,x-forwarded-proto,x-real-ip"
        );
    }
}
