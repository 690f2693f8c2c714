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
            eprintln!("proxy: invalid configuration: {}", ops::error_chain(&e));
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!(
            "configuration ok: listen {}, admin {}, access log {}, forwarded headers {}",
            config.listen, config.admin, config.access_log, config.forwarding
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
    // Pingora logs through `log`; its per-retry warnings are replaced by our own ejection and
    // access log lines, so it only speaks from `warn` up unless RUST_LOG asks.
    ops::logging::init(
        config.log_format,
        "info,pingora_core=warn,pingora_proxy=warn,pingora_load_balancing=warn",
    );
    match proxy::run(config, source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
}
