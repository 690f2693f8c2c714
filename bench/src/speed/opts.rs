//! The `bench` command line: flags every subcommand shares, then each subcommand's own.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Head-to-head benchmarks: our proxy vs nginx vs HAProxy (HTTP), pgbalancer vs HAProxy `mode
/// tcp` vs Postgres direct (pgbench), and idle memory per keep-alive connection. Each subcommand
/// prints a table and writes <out>/<name>.json, .md and .png.
#[derive(Debug, Clone, Parser)]
#[command(name = "bench", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Cmd {
    /// HTTP req/s, latency, CPU and memory: direct, nginx, HAProxy, ours (wrk).
    Http(HttpOpts),
    /// Postgres TPS and latency: direct, pgbalancer, HAProxy mode tcp (pgbench -S, and -C).
    Pg(PgOpts),
    /// Memory per idle keep-alive client connection: nginx, HAProxy, ours.
    Idle(IdleOpts),
    /// User-space instructions per proxied request under callgrind: nginx, ours, ours with its
    /// access log (the figure speed changes are judged by; wall clock is reported by http).
    Instr(InstrOpts),
    /// http, pg, idle and instr, one after another.
    All(AllOpts),
}

#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Worker threads (processes for nginx) of every proxy, and of the origin.
    #[arg(long, global = true, value_name = "N", default_value_t = 1)]
    pub threads: usize,

    /// Interleaved rounds per measurement; the tables show medians.
    #[arg(long, global = true, value_name = "N", default_value_t = 3)]
    pub rounds: usize,

    /// Length of one run (whole seconds; wrk and pgbench take no less).
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// An older proxy build to run as one more contestant (`baseline`) in http and idle.
    #[arg(long, global = true, value_name = "PATH")]
    pub binary_baseline: Option<PathBuf>,

    /// Where results go: <out>/http.{json,md,png}, pg.*, idle.*.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "bench/results"
    )]
    pub out: PathBuf,

    /// Directory with the proxy and pgbalancer binaries [default: next to this one].
    #[arg(long, global = true, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,

    /// A line at the top of each result, e.g. "preliminary: a busy 2-core machine".
    #[arg(long, global = true, value_name = "TEXT")]
    pub note: Option<String>,
}

impl Common {
    /// Whole seconds, at least one: what wrk's -d and pgbench's -T take.
    pub fn seconds(&self) -> u64 {
        self.duration.as_secs_f64().round().max(1.0) as u64
    }
}

#[derive(Debug, Clone, Args)]
pub struct HttpOpts {
    /// Concurrent client connections (wrk -c), one scenario each.
    #[arg(long, value_delimiter = ',', value_name = "N,..", default_values_t = [32, 1000])]
    pub conns: Vec<usize>,

    /// Response bodies: `small` (a 37-byte JSON) and `64k` (a 64 KiB file).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Body::Small, Body::Big])]
    pub bodies: Vec<Body>,

    /// `keepalive`, and `close` (a new connection per request: `Connection: close`).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Mode::Keepalive, Mode::Close])]
    pub modes: Vec<Mode>,

    /// wrk's threads (-t); the load generator needs CPU too, so keep it small on small machines.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub wrk_threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
pub enum Body {
    #[value(name = "small")]
    #[serde(rename = "small")]
    Small,
    #[value(name = "64k")]
    #[serde(rename = "64k")]
    Big,
}

impl Body {
    pub fn name(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Big => "64k",
        }
    }

    /// The origin's path for this body.
    pub fn path(self) -> &'static str {
        match self {
            Self::Small => "/small",
            Self::Big => "/64k",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Keepalive,
    Close,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Keepalive => "keepalive",
            Self::Close => "close",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct PgOpts {
    /// pgbench clients (-c; -j is min(clients, 2)), one scenario each.
    #[arg(long, value_delimiter = ',', value_name = "N,..", default_values_t = [1, 10, 50])]
    pub clients: Vec<usize>,

    /// `select` (pgbench -S, a connection per client) and `connect` (-S -C, a new connection per
    /// transaction).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [PgMode::Select, PgMode::Connect])]
    pub pg_modes: Vec<PgMode>,

    /// pgbench -i scale factor (100,000 accounts each).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub scale: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PgMode {
    Select,
    Connect,
}

impl PgMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Select => "select",
            Self::Connect => "connect",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct IdleOpts {
    /// Idle keep-alive client connections to hold open through each proxy.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub idle_conns: usize,
}

#[derive(Debug, Clone, Args)]
pub struct AllOpts {
    #[command(flatten)]
    pub http: HttpOpts,
    #[command(flatten)]
    pub pg: PgOpts,
    #[command(flatten)]
    pub idle: IdleOpts,
    #[command(flatten)]
    pub instr: InstrOpts,
}

#[derive(Debug, Clone, Args)]
pub struct InstrOpts {
    /// Requests counted per scenario (after a warm-up of 200).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub requests: usize,

    /// Client connections the requests are spread over.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub connections: usize,

    /// Who is counted.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Contestant::Nginx, Contestant::Ours, Contestant::OursTextLog])]
    pub contestants: Vec<Contestant>,

    /// Response bodies: `small` (37 bytes) and `64k`.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Body::Small, Body::Big])]
    pub instr_bodies: Vec<Body>,

    /// `keepalive`, and `close` (a new client connection per request).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Mode::Keepalive, Mode::Close])]
    pub instr_modes: Vec<Mode>,
}

/// A proxy whose instructions `bench instr` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
pub enum Contestant {
    /// nginx 1.22, one worker, upstream keepalive, no access log.
    #[value(name = "nginx")]
    Nginx,
    /// Our proxy, `--threads 1`, `--access-log off`.
    #[value(name = "ours")]
    Ours,
    /// Our proxy with its default access log (`--access-log text`, stdout to a file).
    #[value(name = "ours+textlog")]
    OursTextLog,
}

impl Contestant {
    pub fn name(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Ours => "ours",
            Self::OursTextLog => "ours+textlog",
        }
    }
}
