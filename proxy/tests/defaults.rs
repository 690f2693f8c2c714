//! One source for each default: the configuration the proxy builds from nothing (the code's
//! defaults) is what `--help` says and what the README's flag table says, flag by flag, with the
//! same environment variable. Changing a default in one place and not the others fails here.

use proxy::config::{Overrides, Source};

fn help() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxy"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// The `--help` block of `flag`: its line and the description under it, whitespace folded.
fn help_block(help: &str, flag: &str) -> String {
    let start = help
        .find(&format!("      {flag} "))
        .or_else(|| help.find(&format!("      {flag}\n")))
        .unwrap_or_else(|| panic!("--help has no {flag}"));
    let rest = &help[start..];
    let end = rest[1..].find("\n      --").map_or(rest.len(), |i| i + 1);
    // clap wraps long lines: fold whitespace.
    rest[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The README table row of `flag`, split into cells.
fn readme_row(readme: &str, flag: &str) -> Vec<String> {
    let row = readme
        .lines()
        .find(|l| l.starts_with(&format!("| `{flag} ")) || l.starts_with(&format!("| `{flag}`")))
        .unwrap_or_else(|| panic!("proxy/README.md has no row for {flag}"));
    row.trim_matches('|')
        .split(" | ")
        .map(|c| c.trim().to_owned())
        .collect()
}

/// A value as it is written on the command line.
fn value_name(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .expect("not skipped")
        .get_name()
        .to_owned()
}

fn health_kind(kind: &proxy::config::HealthKind) -> proxy::config::CheckKind {
    use proxy::config::{CheckKind, HealthKind};
    match kind {
        HealthKind::Tcp => CheckKind::Tcp,
        HealthKind::Http { .. } => CheckKind::Http,
        HealthKind::Responds { .. } => CheckKind::Responds,
    }
}

#[test]
fn help_and_readme_state_the_defaults_the_config_applies() {
    let source = Source {
        file: None,
        overrides: Overrides {
            upstream: Some("127.0.0.1:9".into()),
            ..Overrides::default()
        },
    };
    let c = source
        .load()
        .expect("the defaults are a valid configuration");
    let d = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let defaults = [
        ("--listen", c.listen.to_string()),
        ("--admin", c.admin.to_string()),
        ("--resolve-interval", d(c.resolve_interval)),
        ("--connect-timeout", d(c.upstream.connect_timeout)),
        (
            "--failover-connect-timeout",
            d(c.upstream.failover_connect_timeout),
        ),
        ("--hold-timeout", d(c.upstream.hold_timeout)),
        ("--max-attempts", c.upstream.max_attempts.to_string()),
        ("--balance", value_name(c.upstream.balance)),
        (
            "--first-byte-timeout",
            c.upstream.first_byte.spec.to_string(),
        ),
        ("--health-kind", value_name(health_kind(&c.health.kind))),
        ("--health-interval", d(c.health.interval)),
        ("--shutdown-delay", d(c.shutdown_delay)),
        ("--shutdown-timeout", d(c.shutdown_timeout)),
        ("--max-connections", c.limits.max_connections.to_string()),
        ("--header-timeout", d(c.limits.header_timeout)),
        ("--body-timeout", d(c.limits.body_timeout)),
        ("--max-body-bytes", c.limits.max_body_bytes.to_string()),
        ("--log-format", format!("{:?}", c.log_format).to_lowercase()),
    ];
    let help = help();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (flag, value) in defaults {
        let block = help_block(&help, flag);
        assert!(
            block.contains(&format!("[default: {value}]")),
            "--help for {flag} does not say [default: {value}]:\n{block}"
        );
        let row = readme_row(&readme, flag);
        assert_eq!(
            row.get(3).map(String::as_str),
            Some(format!("`{value}`").as_str()),
            "README default of {flag}: {row:?}"
        );
        let env = format!(
            "PROXY_{}",
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
}
