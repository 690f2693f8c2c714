//! The `pgbalancer` binary: parse the flags, build the config (exit 2 naming the key when it is
//! bad), set up logging, run.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use pgbalancer::cli::LogFormat;
use pgbalancer::{Cli, Config};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pgbalancer: bad configuration: {:#}", anyhow::Error::new(e));
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!("configuration ok\n{config:#?}");
        return ExitCode::SUCCESS;
    }
    init_tracing(config.log_format);
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "pgbalancer failed");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?
        .block_on(pgbalancer::run(config))
        .context("running pgbalancer")
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in a pod's log.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
