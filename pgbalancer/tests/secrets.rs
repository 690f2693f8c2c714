//! The check password on the error paths: a wrong password fails every check, so every reason
//! pgbalancer gives (the log at debug level, /status, /metrics, the HTML page, the 57P03 a client
//! receives) is about a failed login; and a bad configuration exits 2. The password appears in
//! none of them. The happy path is in `cli.rs`.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{http_get, Binary, BIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_check_password_is_reported_everywhere_and_shown_nowhere() {
    let (cluster, dns) = support::one_replica_in_dns().await;
    // Contains the real password, so a leak of either is caught by one search.
    let wrong = format!("wrong-{}-pw", cluster.password());

    let pgb = Binary::in_front_of(&cluster, &dns, &wrong, &["--hold-timeout", "300ms"]);
    let (listen, admin) = pgb.addrs().await;

    // Wait until a check has failed on the login, so the error paths have all run.
    let status = Binary::wait_status_text(admin, "\"passed\":false").await;
    assert!(
        status.contains("password authentication failed"),
        "{status}"
    );

    // A client is told why there is no server, with the check's reason.
    let error = support::connect(&support::client_config(&cluster, listen))
        .await
        .expect_err("no healthy server with a wrong check password");
    let client_message = error
        .as_db_error()
        .expect("an ErrorResponse")
        .message()
        .to_owned();
    assert!(
        client_message.contains("authentication failed"),
        "{client_message}"
    );

    let metrics = http_get(admin, "/metrics").await.1;
    let page = http_get(admin, "/").await.1;
    let pid = pgb.child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (_, log) = pgb.exit(Duration::from_secs(20)).await;
    assert!(
        log.contains("password authentication failed"),
        "debug logs have the check errors: {log}"
    );

    for (what, text) in [
        ("the log", &log),
        ("/status", &status),
        ("/metrics", &metrics),
        ("/", &page),
        ("the client's error", &client_message),
    ] {
        assert!(
            !text.contains(cluster.password()),
            "{what} shows the password:\n{text}"
        );
    }
}

#[test]
fn a_bad_configuration_does_not_echo_the_password() {
    let secret = "pgb-config-secret-4711";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "upstream: a:1\ncheck:\n  user: u\n  database: d\n  password_env: PGB_SECRET\n  fall: 0\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let flags = [
        "--upstream",
        "a:1",
        "--check-user",
        "u",
        "--check-database",
        "d",
        "--check-password-env",
        "PGB_SECRET",
        "--rise",
        "0",
        "--check-config",
    ];
    for args in [&flags[..], &["--config", file, "--check-config"][..]] {
        let out = Command::new(BIN)
            .args(args)
            .env("PGB_SECRET", secret)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("rise") || stderr.contains("fall"),
            "{stderr}"
        );
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{args:?}:\n{stdout}\n{stderr}"
        );
    }
}
