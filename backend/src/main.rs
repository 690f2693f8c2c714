use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

fn main() -> ExitCode {
    let cli = backend::Cli::parse();
    ops::logging::init(ops::logging::LogFormat::Text, "info");
    let config = match backend::Config::try_from(cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("backend: {:#}", anyhow::Error::new(error));
            return ExitCode::from(2);
        }
    };
    match start(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "backend stopped");
            ExitCode::FAILURE
        }
    }
}

fn start(config: backend::Config) -> anyhow::Result<()> {
    // Two worker threads are plenty for a demo service and keep the lab's many processes light.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?
        .block_on(backend::run(config))
        .context("running the backend")
}
