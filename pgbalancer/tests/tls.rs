//! Clients' TLS terminated by pgbalancer (`--tls-cert`, `--tls-key`), with real clients: psql
//! (Debian's libpq) here, psycopg, asyncpg and pg8000 in `clients.rs`. An encrypted session's
//! cancel key is read by pgbalancer, so its cancel goes to its own server; `require` refuses a
//! plain login in words; the key never shows in what pgbalancer prints or serves.

mod support;

use std::process::Stdio;
use std::time::Duration;

use pgbalancer::tls::{ClientTls, TlsMode};
use support::Lab;
use tokio::process::Command;

const SLEEP: &str = "select pg_sleep(60)";

async fn with_tls(mode: TlsMode, dir: &std::path::Path) -> Lab {
    let (cert, key) = testkit::certs::self_signed(dir);
    let tls = ClientTls::load(mode, &cert, &key).expect("the test certificate loads");
    let lab = Lab::start(2, |c| c.tls = Some(tls)).await;
    lab.wait_up(&["pg1", "pg2"]).await;
    lab
}

/// psql against pgbalancer with `sslmode`, running `args`.
fn psql(lab: &Lab, sslmode: &str, args: &[&str]) -> Command {
    let addr = lab.pgb.listen_addr();
    let conninfo = format!(
        "host={} port={} user={} dbname={} sslmode={sslmode} connect_timeout=5",
        addr.ip(),
        addr.port(),
        lab.cluster.user(),
        lab.cluster.database()
    );
    let mut cmd = Command::new("psql");
    cmd.arg(conninfo)
        .args(["--no-psqlrc", "-X", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .env("PGPASSWORD", lab.cluster.password())
        .env_remove("PGSSLMODE")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn output(mut cmd: Command) -> (bool, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("psql finished in 20 s")
        .expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn metrics(lab: &Lab) -> String {
    support::http_get(lab.pgb.admin_addr(), "/metrics").await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_logs_in_encrypted_and_its_cancel_reaches_its_own_server() {
    let dir = tempfile::tempdir().unwrap();
    let lab = with_tls(TlsMode::Prefer, dir.path()).await;

    let (ok, out, err) = output(psql(
        &lab,
        "require",
        &["-c", "\\conninfo", "-c", "select 41 + 1"],
    ))
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("SSL connection (protocol: TLSv1."), "{out}");
    assert!(out.contains("42"), "{out}");
    // SCRAM channel binding cannot cross a terminating balancer: the plain servers never offer
    // SCRAM-SHA-256-PLUS, so libpq's default (prefer) logs in above, and `require` fails in
    // libpq's own words.
    let mut bound = psql(&lab, "require", &["-c", "select 1"]);
    bound.env("PGCHANNELBINDING", "require");
    let (ok, _, err) = output(bound).await;
    assert!(!ok);
    assert!(err.contains("channel binding"), "{err}");
    // prefer: plain clients are served too.
    let (ok, out, err) = output(psql(&lab, "disable", &["-c", "\\conninfo"])).await;
    assert!(ok, "{err}");
    assert!(!out.contains("SSL connection"), "{out}");

    // A TLS session's cancel (libpq 15 sends it unencrypted, with the key pgbalancer read
    // inside TLS): on SIGINT psql cancels its query, and the cancel is routed by its key.
    for _ in 0..2 {
        let mut sleeping = psql(&lab, "require", &["-c", SLEEP]);
        let child = sleeping
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        lab.wait_running(SLEEP, 1).await;
        let pid = child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .expect("psql ended after its cancel")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("canceling statement due to user request"),
            "{stderr}"
        );
        lab.wait_running(SLEEP, 0).await;
    }
    let m = metrics(&lab).await;
    assert!(
        m.contains("pgbalancer_cancel_requests_total{routing=\"known\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("pgbalancer_cancel_requests_total{routing=\"fanout\"} 0"),
        "{m}"
    );
    // \conninfo, the channel-binding attempt and the two sleeping sessions.
    assert!(
        m.contains("pgbalancer_tls_handshakes_total{result=\"ok\"} 4"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_refuses_a_plain_login_in_words_and_shows_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let lab = with_tls(TlsMode::Require, dir.path()).await;

    let (ok, _, err) = output(psql(&lab, "disable", &["-c", "select 1"])).await;
    assert!(!ok);
    assert!(
        err.contains("pgbalancer: TLS is required (connect with sslmode=require)"),
        "{err}"
    );
    // libpq's default, prefer, asks for TLS and gets it.
    let (ok, out, err) = output(psql(&lab, "prefer", &["-c", "\\conninfo"])).await;
    assert!(ok, "{err}");
    assert!(out.contains("SSL connection"), "{out}");
    // Not TLS at all after an SSLRequest: the handshake fails, counted, nothing else breaks.
    let mut raw = tokio::net::TcpStream::connect(lab.pgb.listen_addr())
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).await.unwrap();
    assert_eq!(raw.read_u8().await.unwrap(), b'S');
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut rest)).await;
    let m = metrics(&lab).await;
    assert!(
        m.contains("pgbalancer_tls_handshakes_total{result=\"failed\"} 1"),
        "{m}"
    );

    let status = lab.pgb.status();
    assert_eq!(status.tls.mode, TlsMode::Require);
    let key = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
    let cert = std::fs::read_to_string(dir.path().join("cert.pem")).unwrap();
    let secret_lines: Vec<&str> = key
        .lines()
        .chain(cert.lines())
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let (_, page) = support::http_get(lab.pgb.admin_addr(), "/").await;
    let (_, json) = support::http_get(lab.pgb.admin_addr(), "/status").await;
    assert!(json.contains("\"mode\":\"require\""), "{json}");
    for shown in [&page, &json, &m, &format!("{status:?}")] {
        for line in &secret_lines {
            assert!(
                !shown.contains(line),
                "certificate or key material shown: {line}"
            );
        }
    }
}
