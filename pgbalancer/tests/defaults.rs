//! One source for each default: the configuration pgbalancer builds from the required flags alone
//! (the code's defaults) is what `--help` says and what the README's flag table says, flag by
//! flag, with the same environment variable.

use clap::Parser;
use pgbalancer::config::{FileConfig, Layers};
use pgbalancer::{Cli, Config};

/// `--help`'s block for `flag`, whitespace folded (clap wraps long lines).
fn help_block(help: &str, flag: &str) -> String {
    let start = help
        .find(&format!("      {flag} "))
        .or_else(|| help.find(&format!("      {flag}\n")))
        .unwrap_or_else(|| panic!("--help has no {flag}"));
    let rest = &help[start..];
    let end = rest[1..].find("\n      --").map_or(rest.len(), |i| i + 1);
    rest[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

fn readme_row(readme: &str, flag: &str) -> Vec<String> {
    let row = readme
        .lines()
        .find(|l| l.starts_with(&format!("| `{flag} ")) || l.starts_with(&format!("| `{flag}`")))
        .unwrap_or_else(|| panic!("pgbalancer/README.md has no row for {flag}"));
    row.trim_matches('|')
        .split(" | ")
        .map(|c| c.trim().to_owned())
        .collect()
}

#[test]
fn help_and_readme_state_the_defaults_the_config_applies() {
    let cli = Cli::parse_from([
        "pgbalancer",
        "--upstream",
        "127.0.0.1:5432",
        "--check-user",
        "u",
        "--check-database",
        "d",
    ]);
    let c = Config::try_from(Layers {
        cli: &cli,
        file: FileConfig::default(),
        env: &|_| None,
    })
    .expect("the defaults are a valid configuration");
    let d = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let lower = |v: &dyn std::fmt::Debug| format!("{v:?}").to_lowercase();
    let defaults = [
        ("--listen", c.listen.to_string()),
        ("--admin", c.admin.to_string()),
        ("--resolve-interval", d(c.discovery.resolve_interval)),
        ("--check-interval", d(c.check.interval)),
        ("--check-timeout", d(c.check.timeout)),
        ("--role", lower(&c.check.role)),
        ("--fall", c.check.fall.to_string()),
        ("--rise", c.check.rise.to_string()),
        ("--on-down", lower(&c.on_down)),
        ("--hold-timeout", d(c.hold_timeout)),
        ("--connect-timeout", d(c.connect_timeout)),
        ("--first-answer-timeout", d(c.first_answer_timeout)),
        ("--client-timeout", d(c.client_timeout)),
        ("--max-connections", c.max_connections.to_string()),
        ("--shutdown-delay", d(c.shutdown_delay)),
        ("--shutdown-grace", d(c.shutdown_grace)),
        ("--log-format", lower(&c.log_format)),
        ("--max-lag", d(c.check.max_lag.expect("checked by default"))),
        (
            "--max-lag-bytes",
            c.check
                .max_lag_bytes
                .expect("checked by default")
                .to_string(),
        ),
    ];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgbalancer"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (flag, value) in defaults {
        let block = help_block(&help, flag);
        assert!(
            block.contains(&format!("[default: {value}]")),
            "--help for {flag} does not say [default: {value}]: {block}"
        );
        let row = readme_row(&readme, flag);
        assert_eq!(
            row.get(3).map(String::as_str),
            Some(format!("`{value}`").as_str()),
            "README default of {flag}: {row:?}"
        );
        let env = format!(
            "PGBALANCER_{}",
            flag.trim_start_matches("--")
                .replace('-', "_")
                .to_uppercase()
        );
        assert!(
            block.contains(&format!("[env: {env}=")),
            "--help for {flag} names {env}"
        );
        assert_eq!(
            row.get(1).map(String::as_str),
            Some(format!("`{env}`").as_str()),
            "README env of {flag}"
        );
    }
    for flag in ["--max-lag", "--max-lag-bytes"] {
        assert!(help_block(&help, flag).contains("0 = no limit"), "{flag}");
    }
}
