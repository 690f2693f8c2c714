//! The binary as an operator runs it: `--check-config`, exit code 2 on bad config, the drop-in
//! command line against a real cluster, secrets kept out of logs and the admin pages, SIGTERM.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{http_get, Binary, BIN, NAME};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pgbalancer.example.yaml");

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("PGBALANCER_CHECK_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .expect("run pgbalancer");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_the_example_and_prints_no_password() {
    let (code, stdout, stderr) = run(
        &["--config", EXAMPLE, "--check-config"],
        &[("PGBALANCER_CHECK_PASSWORD", "example-secret-pw")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("configuration ok"), "{stdout}");
    assert!(stdout.contains("postgres-replicas.highload-dns.svc.cluster.local"));
    assert!(!stdout.contains("example-secret-pw"), "{stdout}");
}

#[test]
fn bad_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    const OK: &str = "upstream: a.example:5432\n";
    const CHECK: &str = "check:\n  user: u\n  database: d\n";
    let cases = [
        (format!("{OK}{CHECK}  fall: 0\n"), "check.fall"),
        (format!("{OK}{CHECK}  interval: often\n"), "check.interval"),
        (format!("{OK}{CHECK}upstreams: x:1\n"), "upstreams"),
        (format!("{OK}{CHECK}hold_timeout: 5\n"), "hold_timeout"),
        (format!("upstream: no-port\n{CHECK}"), "upstream"),
        (format!("{OK}check:\n  user: u\n"), "check.database"),
    ];
    for (i, (yaml, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let (code, _, stderr) = run(&["--config", path.to_str().unwrap(), "--check-config"], &[]);
        assert_eq!(code, 2, "{yaml}: {stderr}");
        assert!(
            stderr.contains(key),
            "{yaml}: the error names `{key}`: {stderr}"
        );
    }
    let (code, _, stderr) = run(
        &[
            "--check-user",
            "u",
            "--check-database",
            "d",
            "--check-config",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("upstream"), "{stderr}");
    let (code, _, stderr) = run(&["--role", "leader"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--role"), "{stderr}");
    let (code, _, stderr) = run(
        &[
            "--upstream",
            "a:1",
            "--check-user",
            "u",
            "--check-database",
            "d",
            "--check-password-env",
            "PGB_UNSET_VAR",
            "--check-config",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("check.password_env") && stderr.contains("PGB_UNSET_VAR"),
        "{stderr}"
    );
}

#[test]
fn help_explains_every_flag() {
    let (code, stdout, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--listen",
        "--upstream",
        "--admin",
        "--check-user",
        "--check-database",
        "--check-password-env",
        "--resolver",
        "--config",
        "--check-config",
        "--role",
        "--on-down",
        "--check-interval",
        "--check-timeout",
        "--fall",
        "--rise",
        "--max-lag",
        "--max-lag-bytes",
        "--hold-timeout",
        "--connect-timeout",
        "--client-timeout",
        "--max-connections",
        "--shutdown-grace",
        "--resolve-interval",
        "--log-format",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}");
    }
}

/// Kubernetes' order on SIGTERM: `/readyz` 503 at once, new clients still logged in for the
/// shutdown delay (the Service may still send them here), then a clean exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_shutdown_delay_keeps_accepting_while_readyz_answers_503() {
    let (cluster, dns) = support::one_replica_in_dns().await;
    let password = cluster.password().to_owned();
    let pgb = Binary::in_front_of(&cluster, &dns, &password, &["--shutdown-delay", "2s"]);
    let (listen, admin) = pgb.addrs().await;
    Binary::wait_status_text(admin, "\"state\":\"up\"").await;
    assert_eq!(http_get(admin, "/readyz").await.0, 200);

    let pid = pgb.child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let signalled = std::time::Instant::now();
    while http_get(admin, "/readyz").await.0 != 503 {
        assert!(
            signalled.elapsed() < Duration::from_secs(1),
            "/readyz still 200 after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut logins = 0;
    while signalled.elapsed() < Duration::from_millis(1500) {
        let client = support::connect(&support::client_config(&cluster, listen))
            .await
            .expect("a new client logs in during the delay");
        let row = client.query_one("SELECT 1", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 1);
        logins += 1;
    }
    assert!(logins >= 3, "{logins} logins during the delay");
    let (exit, log) = pgb.exit(Duration::from_secs(20)).await;
    assert_eq!(exit.code(), Some(0), "clean exit: {log}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "ran through the whole delay: exited after {:?}",
        signalled.elapsed()
    );
}

/// The drop-in command line against a real cluster: serves, shows status, never shows the
/// password (not in logs at debug level, not in /status, /metrics or /), exits 0 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_keeps_the_password_secret_and_stops_on_sigterm() {
    let (cluster, dns) = support::one_replica_in_dns().await;
    let password = cluster.password().to_owned();

    let pgb = Binary::in_front_of(&cluster, &dns, &password, &[]);
    let (listen, admin) = pgb.addrs().await;

    let status = Binary::wait_status_text(admin, "\"state\":\"up\"").await;
    assert!(
        status.contains("PGB_TEST_PASSWORD"),
        "shows where the password comes from"
    );

    let client = support::connect(&support::client_config(&cluster, listen))
        .await
        .expect("login through the binary");
    let row = client.query_one("SHOW cluster_name", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "pg1");
    drop(client);

    let (code, metrics) = http_get(admin, "/metrics").await;
    assert_eq!(code, 200);
    let pg1 = cluster.replicas()[0].addr();
    let relayed =
        format!("pgbalancer_backend_connections_total{{backend=\"{pg1}\",result=\"ok\"}} 1");
    assert!(
        metrics.contains(&relayed),
        "the session went through: {metrics}"
    );
    assert!(metrics.contains(&format!("pgbalancer_backend_up{{backend=\"{pg1}\"}} 1")));
    let (code, page) = http_get(admin, "/").await;
    assert_eq!(code, 200);
    assert!(page.contains("<table>") && page.contains(&cluster.replicas()[0].addr().to_string()));
    assert_eq!(http_get(admin, "/healthz").await.0, 200);
    assert_eq!(http_get(admin, "/readyz").await.0, 200, "a backend is up");
    dns.set(NAME, &[]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while http_get(admin, "/readyz").await.0 != 503 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still 200 with no replica in DNS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http_get(admin, "/healthz").await.0, 200, "still alive");
    for (what, text) in [("/status", &status), ("/metrics", &metrics), ("/", &page)] {
        assert!(!text.contains(&password), "{what} shows the password");
    }

    let pid = pgb.child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (exit, log) = pgb.exit(Duration::from_secs(20)).await;
    assert_eq!(exit.code(), Some(0), "clean exit on SIGTERM");
    assert!(
        log.contains("health check") || log.contains("backend up"),
        "debug logs were on: {log}"
    );
    assert!(
        !log.contains(&password),
        "the log shows the password:\n{log}"
    );
}
