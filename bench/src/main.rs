use std::process::ExitCode;

use clap::Parser;

use bench::opts::Command;

#[tokio::main]
async fn main() -> ExitCode {
    let opts = bench::Opts::parse();
    let work = async {
        match opts.command.clone() {
            None => bench::run(opts).await.map(drop),
            Some(Command::Soak(soak)) => bench::soak::run(soak).await.map(drop),
            Some(Command::Gray(gray)) => bench::gray::run(gray).await.map(drop),
            Some(Command::Containers(c)) => bench::containers::run(c).await.map(drop),
        }
    };
    tokio::select! {
        result = work => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lab: {e:#}");
                ExitCode::FAILURE
            }
        },
        // Dropping the run stops every child process, removes the iptables rules and the run's
        // containers and network.
        _ = tokio::signal::ctrl_c() => {
            eprintln!("lab: interrupted; stopping the cluster");
            ExitCode::from(130)
        }
    }
}
