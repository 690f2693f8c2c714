//! What to watch: `name:port` or `ip:port`, parsed and validated once.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use hickory_resolver::proto::rr::Name;

/// A DNS name or an IP address, with the port every endpoint listens on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    host: Host,
    port: u16,
}

/// The host part of a [`Target`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// Resolved again and again; every A record is an endpoint.
    Name(String),
    /// A fixed endpoint.
    Ip(IpAddr),
}

/// Why a string is not a [`Target`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("`{0}`: expected NAME:PORT or IP:PORT (e.g. backend-headless.highload-dns.svc.cluster.local:8000)")]
    MissingPort(String),
    #[error("`{input}`: port `{port}` is not a number from 1 to 65535")]
    BadPort { input: String, port: String },
    #[error("`{input}`: `{name}` is not a valid DNS name: {reason}")]
    BadName {
        input: String,
        name: String,
        reason: String,
    },
}

impl Target {
    /// A target from its parts; `name` must be a valid DNS name or an IP address.
    pub fn new(host: Host, port: u16) -> Self {
        Self { host, port }
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The fixed endpoint of an IP-literal target.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Name(_) => None,
        }
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = input.parse::<SocketAddr>() {
            return Ok(Self::new(Host::Ip(addr.ip()), addr.port()));
        }
        let (name, port) = input
            .rsplit_once(':')
            .ok_or_else(|| TargetError::MissingPort(input.to_owned()))?;
        let port = match port.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => {
                return Err(TargetError::BadPort {
                    input: input.to_owned(),
                    port: port.to_owned(),
                })
            }
        };
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(Self::new(Host::Ip(ip), port));
        }
        let bad = |reason: String| TargetError::BadName {
            input: input.to_owned(),
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() || name.contains(':') || name.contains('[') {
            return Err(bad("empty or not a host name".into()));
        }
        Name::from_ascii(name).map_err(|e| bad(e.to_string()))?;
        Ok(Self::new(Host::Name(name.to_owned()), port))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Name(name) => write!(f, "{name}:{}", self.port),
            Host::Ip(ip) => write!(f, "{}", SocketAddr::new(*ip, self.port)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_ip_literals() {
        let t: Target = "backend-headless.highload-dns.svc.cluster.local:8000"
            .parse()
            .unwrap();
        assert_eq!(
            t.host(),
            &Host::Name("backend-headless.highload-dns.svc.cluster.local".into())
        );
        assert_eq!(t.port(), 8000);
        assert_eq!(t.socket_addr(), None);

        let t: Target = "127.0.1.5:8000".parse().unwrap();
        assert_eq!(t.socket_addr(), Some("127.0.1.5:8000".parse().unwrap()));
        let t: Target = "[::1]:5432".parse().unwrap();
        assert_eq!(t.socket_addr(), Some("[::1]:5432".parse().unwrap()));
        assert_eq!(t.to_string(), "[::1]:5432");
    }

    #[test]
    fn rejects_what_is_not_a_target() {
        assert!(matches!(
            "backend".parse::<Target>(),
            Err(TargetError::MissingPort(_))
        ));
        assert!(matches!(
            "backend:http".parse::<Target>(),
            Err(TargetError::BadPort { .. })
        ));
        assert!(matches!(
            "backend:0".parse::<Target>(),
            Err(TargetError::BadPort { .. })
        ));
        assert!(matches!(
            ":80".parse::<Target>(),
            Err(TargetError::BadName { .. })
        ));
        assert!(matches!(
            "bad name!:80".parse::<Target>(),
            Err(TargetError::BadName { .. })
        ));
    }
}
