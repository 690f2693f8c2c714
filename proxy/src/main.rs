use std::process::ExitCode;

// glibc malloc and free were ~9% of the proxy's CPU under load (perf, bench/results/proxy-perf.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use proxy::config::file::FileConfig;
use proxy::{Cli, Config};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => FileConfig::load(path),
        None => Ok(FileConfig::default()),
    };
    let config = match file.and_then(|file| Config::build(&cli, file)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!(
                "proxy: invalid configuration: {}",
                anyhow::Error::from(e)
                    .chain()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(": ")
            );
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!(
            "configuration ok: listen {}, admin {}",
            config.listen, config.admin
        );
        for g in &config.groups {
            let hosts = if g.hosts.is_empty() {
                "*".to_owned()
            } else {
                g.hosts.join(",")
            };
            println!(
                "  group {}: {} (hosts {hosts}, path {})",
                g.name, g.target, g.path_prefix
            );
        }
        return ExitCode::SUCCESS;
    }
    proxy::logging::init(config.log_format);
    match proxy::run(config, cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
}
