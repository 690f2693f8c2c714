//! The head-to-head benchmarks behind `bench`: our proxy against nginx and HAProxy over HTTP
//! ([`http`]), pgbalancer against HAProxy `mode tcp` and Postgres direct ([`pg`]), and the memory
//! an idle keep-alive connection costs each proxy ([`idle`]).
//!
//! Every contestant gets the same origin and the same thread count, runs are interleaved (A B C
//! A B C …) so drift on a shared machine hits all alike, and medians are reported. [`measure`]
//! reads CPU time and memory from /proc, [`wrk`] and [`pgbench`] drive the load generators,
//! [`contestants`] starts the servers, [`table`] and [`chart`] write the results.

pub mod chart;
pub mod client;
pub mod contestants;
pub mod http;
pub mod idle;
pub mod instr;
pub mod measure;
pub mod opts;
pub mod pg;
pub mod pgbench;
pub mod table;
pub mod wrk;

pub use opts::{Cli, Cmd, Common};

/// What a `bench` invocation measured, one entry per subcommand that ran.
#[derive(Debug, Default)]
pub struct Report {
    pub http: Option<http::Results>,
    pub pg: Option<pg::Results>,
    pub idle: Option<idle::Results>,
    pub instr: Option<instr::Results>,
}

/// Runs the subcommand, prints the tables and writes the results to `--out`.
pub async fn run(cli: Cli) -> anyhow::Result<Report> {
    crate::process::raise_nofile_limit();
    let mut report = Report::default();
    let c = &cli.common;
    match &cli.cmd {
        Cmd::Http(o) => report.http = Some(http::run(c, o).await?),
        Cmd::Pg(o) => report.pg = Some(pg::run(c, o).await?),
        Cmd::Idle(o) => report.idle = Some(idle::run(c, o).await?),
        Cmd::Instr(o) => report.instr = Some(instr::run(c, o).await?),
        Cmd::All(o) => {
            report.http = Some(http::run(c, &o.http).await?);
            report.pg = Some(pg::run(c, &o.pg).await?);
            report.idle = Some(idle::run(c, &o.idle).await?);
            report.instr = Some(instr::run(c, &o.instr).await?);
        }
    }
    Ok(report)
}
