//! The settings of the gray-failure handling, as values of the file and the command line: how the
//! next endpoint is chosen ([`Balance`]), how long an attempt waits for its answer before another
//! endpoint gets the request ([`FirstByte`]), and what the default health check is ([`CheckKind`]).

use std::str::FromStr;
use std::time::Duration;

/// How the next endpoint is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Balance {
    /// Two at random, the one with fewer requests in flight per its peak-EWMA response time: a
    /// slow or frozen pod gets less and less.
    #[default]
    LeastLoaded,
    /// Each usable endpoint in turn.
    RoundRobin,
}

impl Balance {
    pub fn choice(self) -> upstream::Choice {
        match self {
            Self::LeastLoaded => upstream::Choice::LeastLoaded,
            Self::RoundRobin => upstream::Choice::RoundRobin,
        }
    }
}

/// How long an idempotent request's attempt waits for the first byte of its answer while another
/// endpoint is left to try: `auto` (derived from the group's response times), a fixed duration,
/// or `off`. The last attempt always waits the full `read_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstByteSpec {
    Auto,
    Off,
    Fixed(Duration),
}

impl FromStr for FirstByteSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            d => humantime::parse_duration(d)
                .map(Self::Fixed)
                .map_err(|e| format!("`{d}` is not auto, off or a duration: {e}")),
        }
    }
}

impl std::fmt::Display for FirstByteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Off => f.write_str("off"),
            Self::Fixed(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

impl<'de> serde::Deserialize<'de> for FirstByteSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The first-byte deadline, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstByte {
    pub spec: FirstByteSpec,
    /// Bounds of the derived deadline.
    pub min: Duration,
    pub max: Duration,
}

/// The derived deadline is this many times the group's response-time estimate: far above what
/// a healthy pod takes, far below the 60 s a frozen one would cost.
pub const FIRST_BYTE_FACTOR: u32 = 5;

impl FirstByte {
    /// The deadline for an attempt, given the group's estimate; None when off. Before anything
    /// was observed the maximum: an upstream that is slow by nature is not cut on its first
    /// requests.
    pub fn deadline(&self, estimate: Option<Duration>) -> Option<Duration> {
        match self.spec {
            FirstByteSpec::Off => None,
            FirstByteSpec::Fixed(d) => Some(d),
            FirstByteSpec::Auto => Some(
                estimate
                    .map_or(self.max, |e| e * FIRST_BYTE_FACTOR)
                    .clamp(self.min, self.max),
            ),
        }
    }
}

/// The default active check of every endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// `GET <path>` (default `/`) must get an answer, any status, within the timeout: tells a
    /// frozen pod (whose kernel still completes TCP handshakes) from a live one.
    #[default]
    Responds,
    /// `GET <path>` must answer 2xx.
    Http,
    /// A TCP connect succeeds (cannot see a frozen pod).
    Tcp,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_derived_deadline_follows_the_estimate_within_its_bounds() {
        let auto = FirstByte {
            spec: FirstByteSpec::Auto,
            min: MS * 1000,
            max: MS * 10_000,
        };
        assert_eq!(
            auto.deadline(None),
            Some(MS * 10_000),
            "nothing observed yet: the maximum"
        );
        assert_eq!(auto.deadline(Some(MS * 10)), Some(MS * 1000));
        assert_eq!(auto.deadline(Some(MS * 400)), Some(MS * 2000));
        assert_eq!(auto.deadline(Some(MS * 5000)), Some(MS * 10_000));
        let off = FirstByte {
            spec: FirstByteSpec::Off,
            ..auto
        };
        assert_eq!(off.deadline(Some(MS)), None);
        assert_eq!(
            "750ms".parse::<FirstByteSpec>(),
            Ok(FirstByteSpec::Fixed(MS * 750))
        );
        assert!("soon".parse::<FirstByteSpec>().is_err());
    }
}
