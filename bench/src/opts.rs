//! What to run: which proxies, how long each phase lasts, how hard the load is.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The lab: the k3d cluster played on one machine (real Postgres primary and streaming replicas,
/// a DNS server whose records change as pods come and go, backend pods on their own loopback
/// IPs), and the original lab's failover demo replayed under steady load through each proxy.
/// `lab soak` runs a chaos soak through our stack instead.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "lab",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
pub struct Opts {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Proxies to run the demo through, one after another.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Front::Ours, Front::Nginx, Front::NginxResolver, Front::Haproxy])]
    pub proxies: Vec<Front>,

    /// Length of each phase under load.
    #[arg(long, value_name = "DURATION", default_value = "8s", value_parser = humantime::parse_duration)]
    pub phase: Duration,

    /// No line per request; phase banners and tables only.
    #[arg(long)]
    pub quiet: bool,

    /// No Prometheus: by default one (Debian's `prometheus`) scrapes our proxy, pgbalancer and
    /// every backend pod during our stack's run, and afterwards every panel of the Grafana
    /// dashboard is drawn from it as dashboard-<panel>.png; a panel query without a series fails
    /// the run.
    #[arg(long)]
    pub no_dashboard: bool,

    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Chaos soak through our stack (proxy, backends, pgbalancer, replicas): for `--duration`,
    /// steady load while a chaos loop replaces backend pods, deletes and restores replicas,
    /// restarts pgbalancer and reloads the proxy's config; every request is counted.
    Soak(SoakOpts),
    /// The failover demo through the images users deploy: the lab's stack in Docker containers
    /// (primary, replicas, pgbalancer, HAProxy, backends, Prometheus) run from `k8s/images` with
    /// the pod templates of `k8s/manifests`, then the same phases through each proxy in turn.
    /// Needs a Docker engine and the images (`k8s/images/build_and_push.sh --no-push`).
    Containers(ContainersOpts),
    /// Gray failures through each proxy in turn: one of two backend pods frozen (SIGSTOP) for
    /// `--freeze` and continued, then one of three pods answering `--slow-by` late; per phase
    /// the failed requests, those slower than 1 s, p50/p99/max and what the pod served.
    Gray(GrayOpts),
}

#[derive(Debug, Clone, clap::Args)]
pub struct GrayOpts {
    /// Proxies to run it through, one after another.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Front::Ours, Front::Nginx, Front::NginxResolver, Front::Haproxy])]
    pub proxies: Vec<Front>,

    /// How long the pod stays frozen.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub freeze: Duration,

    /// How late the slow pod answers.
    #[arg(long, value_name = "DURATION", default_value = "300ms", value_parser = humantime::parse_duration)]
    pub slow_by: Duration,

    /// Length of the baseline, thawed and resumed phases, and of the lagging replica's phase past
    /// the bound; the slow phase lasts twice this.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub phase: Duration,

    /// Which runs to play. The replica runs are played through `ours` (pgbalancer) and `haproxy`
    /// (HAProxy `mode tcp`) only: the nginx stacks use the same HAProxy for Postgres.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [GrayKind::Frozen, GrayKind::Slow, GrayKind::FrozenReplica, GrayKind::LaggingReplica])]
    pub runs: Vec<GrayKind>,

    /// The replay lag bound pgbalancer is started with (`--max-lag`; 30 s is its default). The
    /// lagging replica's replay stays paused this long, then `--phase` longer past the bound.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub max_lag: Duration,

    /// No line per request; phase banners and tables only.
    #[arg(long)]
    pub quiet: bool,

    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ContainersOpts {
    /// Proxies to run the demo through, one after another.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Front::Ours, Front::Nginx, Front::NginxResolver, Front::Haproxy])]
    pub proxies: Vec<Front>,

    /// Length of each phase under load (a phase that restores a pod lasts this long after the
    /// pod is ready).
    #[arg(long, value_name = "DURATION", default_value = "8s", value_parser = humantime::parse_duration)]
    pub phase: Duration,

    /// Requests per second of the steady load.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub rate: u32,

    /// Extra wait before a replacement pod is created (a ReplicaSet creates it at once; the
    /// container's own start and readiness probe take what they take).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub start_delay: Duration,

    /// A request without an answer after this counts as a timeout.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// No line per answered request; phase banners, failures and tables only.
    #[arg(long)]
    pub quiet: bool,

    /// Registry part of the image names, as k8s/images/build_and_push.sh tags them.
    #[arg(long, env = "REGISTRY", default_value = "k3d-registry.localhost:5000")]
    pub registry: String,

    /// Tag of the images.
    #[arg(long, env = "TAG", default_value = "dev")]
    pub tag: String,

    /// The manifests whose pod templates the containers run with.
    #[arg(long, value_name = "DIR", default_value = "k8s/manifests")]
    pub manifests: PathBuf,

    /// Where results go: containers.md, containers.json and containers-<proxy>.png.
    #[arg(long, value_name = "DIR", default_value = "bench/results")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SoakOpts {
    /// How long the soak runs.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Mean pause between two chaos actions (each pause is drawn from 0.5x to 1.5x this).
    #[arg(long, value_name = "DURATION", default_value = "4s", value_parser = humantime::parse_duration)]
    pub chaos_interval: Duration,

    /// Seed of the chaos loop's choices; the same seed replays the same sequence of actions.
    /// [default: from the clock, printed at the start]
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Print every request, not only failures and a status line every 10 s.
    #[arg(long)]
    pub verbose: bool,

    #[command(flatten)]
    pub common: Common,
}

/// What the demo and the soak share: the cluster's timings, the load, where things are.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
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

    /// Where results go: the demo writes lab.md, lab.json, latest.json and lab-<proxy>.png; the
    /// soak soak.md, soak.json and soak.png.
    #[arg(long, value_name = "DIR", default_value = "bench/results")]
    pub out: PathBuf,

    /// Directory with the proxy, pgbalancer and backend binaries [default: next to this one].
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// A run of `lab gray`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrayKind {
    /// One of two backend pods stopped (SIGSTOP) for `--freeze`.
    Frozen,
    /// One of three backend pods answering `--slow-by` late.
    Slow,
    /// One of two replicas stopped (its postmaster and every backend process) for `--freeze`.
    FrozenReplica,
    /// One of two replicas with its replay paused while the primary writes.
    LaggingReplica,
}

impl GrayKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Frozen => "frozen",
            Self::Slow => "slow",
            Self::FrozenReplica => "frozen-replica",
            Self::LaggingReplica => "lagging-replica",
        }
    }

    /// Whether the run is about a replica (played once per Postgres balancer).
    pub fn replica(self) -> bool {
        matches!(self, Self::FrozenReplica | Self::LaggingReplica)
    }
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
