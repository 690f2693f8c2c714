use std::path::Path;

use clap::Parser;

use super::*;

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("pgbalancer").chain(args.iter().copied())).unwrap()
}

fn build(cli: &Cli, yaml: &str) -> Result<Config, ConfigError> {
    let file = FileConfig::parse(Path::new("test.yaml"), yaml)?;
    Config::try_from(Layers {
        cli,
        file,
        env: &|name| (name == "PGB_PW").then(|| "s3cret".to_owned()),
    })
}

const MINIMAL: &[&str] = &[
    "--upstream",
    "postgres-replicas.highload-dns.svc.cluster.local:5432",
    "--check-user",
    "app",
    "--check-database",
    "highload",
];

#[test]
fn flags_alone_are_enough_and_defaults_fill_the_rest() {
    let c = build(&cli(MINIMAL), "").unwrap();
    assert_eq!(c.listen, "0.0.0.0:5432".parse().unwrap());
    assert_eq!(c.admin, "127.0.0.1:9187".parse().unwrap());
    assert_eq!(c.max_connections, 2000);
    assert_eq!(c.check.interval, Duration::from_secs(1));
    assert_eq!(c.check.timeout, Duration::from_secs(1));
    assert_eq!((c.check.fall, c.check.rise), (2, 1));
    assert_eq!(c.check.role, RoleFilter::Replica);
    assert_eq!(c.hold_timeout, Duration::from_secs(5));
    assert_eq!(c.on_down, OnDown::Keep);
    assert_eq!(c.check.password, None);
    assert_eq!(c.discovery.resolver, ResolverSpec::System);
}

#[test]
fn a_flag_beats_the_file_and_the_file_beats_the_default() {
    let yaml = "
listen: 127.0.0.1:6432
hold_timeout: 250ms
check:
  fall: 3
  role: any
";
    let c = build(&cli(&[MINIMAL, &["--fall", "4"]].concat()), yaml).unwrap();
    assert_eq!(c.listen, "127.0.0.1:6432".parse().unwrap());
    assert_eq!(c.hold_timeout, Duration::from_millis(250));
    assert_eq!(c.check.fall, 4);
    assert_eq!(c.check.role, RoleFilter::Any);
}

#[test]
fn the_password_comes_from_the_named_variable_and_is_never_printed() {
    let c = build(
        &cli(&[MINIMAL, &["--check-password-env", "PGB_PW"]].concat()),
        "",
    )
    .unwrap();
    assert_eq!(
        c.check.password.as_ref().map(Secret::expose),
        Some("s3cret")
    );
    assert!(!format!("{c:?}").contains("s3cret"));

    let err = build(
        &cli(&[MINIMAL, &["--check-password-env", "NOPE"]].concat()),
        "",
    )
    .unwrap_err();
    assert!(err.to_string().contains("check.password_env"), "{err}");
    assert!(err.to_string().contains("NOPE"), "{err}");
}

#[test]
fn errors_name_the_key() {
    let bad = |args: &[&str], yaml: &str| build(&cli(args), yaml).unwrap_err().to_string();
    assert!(bad(&[], "").contains("`upstream`"));
    assert!(bad(&["--upstream", "a:1"], "").contains("check.user"));
    let e = bad(MINIMAL, "check:\n  interval: soon\n");
    assert!(
        e.contains("test.yaml") && e.contains("check.interval"),
        "{e}"
    );
    let e = bad(MINIMAL, "chek:\n  fall: 1\n");
    assert!(e.contains("chek"), "{e}");
    let e = bad(MINIMAL, "check:\n  rise: 0\n");
    assert!(e.contains("check.rise"), "{e}");
    let e = bad(MINIMAL, "check:\n  timeout: 0s\n");
    assert!(e.contains("check.timeout"), "{e}");
    let e = bad(
        &["--check-user", "a", "--check-database", "b"],
        "upstream: no-port",
    );
    assert!(e.contains("upstream") && e.contains("NAME:PORT"), "{e}");
}

#[test]
fn bad_flags_are_refused_by_the_parser() {
    for args in [
        &["--role", "leader"][..],
        &["--check-interval", "soon"],
        &["--listen", "nowhere"],
        &["--upstream", "name-without-port"],
    ] {
        let e = Cli::try_parse_from(std::iter::once("pgbalancer").chain(args.iter().copied()))
            .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn tls_is_off_without_a_certificate_and_prefer_with_one() {
    let c = build(&cli(MINIMAL), "").unwrap();
    assert_eq!(c.tls, None);

    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = testkit::certs::self_signed(dir.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let c = build(
        &cli(&[MINIMAL, &["--tls-cert", &cert, "--tls-key", &key]].concat()),
        "",
    )
    .unwrap();
    assert_eq!(c.tls.as_ref().map(|t| t.mode), Some(TlsMode::Prefer));
    // The file's mode under the flags' files; the key's contents never in the printed config.
    let yaml = "tls:\n  mode: require\n";
    let c = build(
        &cli(&[MINIMAL, &["--tls-cert", &cert, "--tls-key", &key]].concat()),
        yaml,
    )
    .unwrap();
    assert_eq!(c.tls.as_ref().map(|t| t.mode), Some(TlsMode::Require));
    let printed = format!("{c:#?}");
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let key_line = key_pem.lines().nth(1).unwrap();
    assert!(!printed.contains(key_line), "{printed}");
}

#[test]
fn tls_settings_that_cannot_work_are_refused_by_key() {
    let err = |args: &[&str], yaml: &str| {
        build(&cli(&[MINIMAL, args].concat()), yaml)
            .unwrap_err()
            .to_string()
    };
    assert!(err(&["--tls-mode", "require"], "").contains("`tls.cert`: required"));
    assert!(err(&["--tls-cert", "/x.pem"], "").contains("`tls.key`: required"));
    assert!(err(&["--tls-mode", "off", "--tls-cert", "/x.pem"], "").contains("`tls.mode`"));
    let e = err(
        &["--tls-cert", "/nonexistent.pem", "--tls-key", "/k.pem"],
        "",
    );
    assert!(e.contains("/nonexistent.pem"), "{e}");
    let e = build(&cli(MINIMAL), "tls:\n  mode: sometimes\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("tls.mode"), "{e}");
}
