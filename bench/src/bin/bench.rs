use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = bench::speed::Cli::parse();
    tokio::select! {
        result = bench::speed::run(cli) => match result {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench: {e:#}");
                ExitCode::FAILURE
            }
        },
        // Dropping the run stops every server it started.
        _ = tokio::signal::ctrl_c() => {
            eprintln!("bench: interrupted; stopping what was started");
            ExitCode::from(130)
        }
    }
}
