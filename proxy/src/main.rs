use std::process::ExitCode;

// glibc malloc and free were ~9% of the proxy's CPU under load (perf, bench/results/proxy-perf.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use proxy::config::Source;
use proxy::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let source = Source::from(&cli);
    let config = match source.load() {
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
    match proxy::run(config, source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
}
