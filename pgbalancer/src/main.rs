//! The `pgbalancer` binary: parse the flags, build the config (exit 2 naming the key when it is
//! bad), set up logging, run.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
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
    ops::logging::init(config.log_format, "info");
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
