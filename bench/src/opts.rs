//! What to run: which proxies, how long each phase lasts, how hard the load is.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The lab: the k3d cluster played on one machine (real Postgres primary and streaming replicas,
/// a DNS server whose records change as pods come and go, backend pods on their own loopback
/// IPs), and the original lab's failover demo replayed under steady load through each proxy.
#[derive(Debug, Clone, Parser)]
#[command(name = "lab", version, about, long_about)]
pub struct Opts {
    /// Proxies to run the demo through, one after another.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Front::Ours, Front::Nginx, Front::NginxResolver, Front::Haproxy])]
    pub proxies: Vec<Front>,

    /// Length of each phase under load.
    #[arg(long, value_name = "DURATION", default_value = "8s", value_parser = humantime::parse_duration)]
    pub phase: Duration,

    /// Requests per second of the steady load.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub rate: u32,

    /// How long a replacement pod takes to start (its new IP enters DNS once it is ready).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    pub start_delay: Duration,

    /// A request without an answer after this counts as a timeout.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Backend `--shutdown-delay`: how long a deleted pod keeps serving after SIGTERM.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,

    /// Where results go: <out>/lab-<proxy>.png, lab.md, lab.json and latest.json.
    #[arg(long, value_name = "DIR", default_value = "bench/results")]
    pub out: PathBuf,

    /// Directory with the proxy, pgbalancer and backend binaries [default: next to this one].
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,

    /// No line per request; phase banners and tables only.
    #[arg(long)]
    pub quiet: bool,
}

/// An HTTP proxy under test, each paired with the Postgres balancer its stack uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Front {
    /// Our proxy, with pgbalancer in front of the replicas.
    Ours,
    /// nginx as in the original lab: upstream resolved once at start; HAProxy for Postgres.
    Nginx,
    /// nginx with the `resolver` + variable workaround (Debian's 1.22 has no upstream `resolve`).
    NginxResolver,
    /// HAProxy with server-template, resolvers, health checks and redispatch; HAProxy for Postgres.
    Haproxy,
}

impl Front {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Nginx => "nginx",
            Self::NginxResolver => "nginx-resolver",
            Self::Haproxy => "haproxy",
        }
    }

    /// The Postgres balancer of this stack.
    pub fn db(self) -> Db {
        match self {
            Self::Ours => Db::Pgbalancer,
            _ => Db::HaproxyTcp,
        }
    }
}

/// A Postgres balancer in front of the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Db {
    Pgbalancer,
    HaproxyTcp,
}

impl Db {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pgbalancer => "pgbalancer",
            Self::HaproxyTcp => "haproxy-tcp",
        }
    }
}
