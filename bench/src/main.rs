use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let opts = bench::Opts::parse();
    tokio::select! {
        result = bench::run(opts) => match result {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lab: {e:#}");
                ExitCode::FAILURE
            }
        },
        // Dropping the run stops every child process and removes the iptables rules.
        _ = tokio::signal::ctrl_c() => {
            eprintln!("lab: interrupted; stopping the cluster");
            ExitCode::from(130)
        }
    }
}
