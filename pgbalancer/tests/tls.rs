//! Clients' TLS terminated by pgbalancer (`--tls-cert`, `--tls-key`) and TLS to the servers
//! (`--server-tls`), with real clients: psql
//! (Debian's libpq) here, psycopg, asyncpg and pg8000 in `clients.rs`. An encrypted session's
//! cancel key is read by pgbalancer, so its cancel goes to its own server; `require` refuses a
//! plain login in words; the key never shows in what pgbalancer prints or serves.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pgbalancer::tls::{ClientTls, ServerTls, ServerTlsMode, TlsMode};
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

/// psql over TLS running [`SLEEP`] through pgbalancer, once the replica runs it.
async fn start_sleep(lab: &Lab) -> tokio::process::Child {
    let mut sleeping = psql(lab, "require", &["-c", SLEEP]);
    let child = sleeping
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lab.wait_running(SLEEP, 1).await;
    child
}

/// SIGINT to psql, which sends a CancelRequest: its query ends cancelled, not run out.
async fn sigint_cancels(child: tokio::process::Child) {
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
        let child = start_sleep(&lab).await;
        sigint_cancels(child).await;
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

/// Whether the session running `query` on a replica came in over TLS (pg_stat_ssl).
async fn session_encrypted(lab: &Lab, query: &str) -> bool {
    for replica in lab.cluster.replicas() {
        let client = replica.connect().await.expect("direct login");
        let rows = client
            .query(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.state = 'active' AND a.query = $1",
                &[&query],
            )
            .await
            .expect("pg_stat_ssl");
        if let Some(row) = rows.first() {
            return row.get(0);
        }
    }
    panic!("no session runs {query}");
}

/// A lab whose servers run TLS with `servers` (cert, key), and a pgbalancer terminating clients'
/// TLS with `ours` and speaking TLS to the servers.
async fn both_sides_tls(servers: (&Path, &Path), ours: (&Path, &Path)) -> Lab {
    let tls = ClientTls::load(TlsMode::Prefer, ours.0, ours.1).unwrap();
    let lab = Lab::start_on(
        testkit::PgClusterBuilder::default()
            .replicas(2)
            .ssl_files(servers.0, servers.1),
        |c| {
            c.tls = Some(tls);
            c.server_tls = ServerTls::new(ServerTlsMode::Require);
        },
    )
    .await;
    // The login checks pass inside TLS (require: a plain one would not be tried).
    lab.wait_up(&["pg1", "pg2"]).await;
    lab
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_servers_certificate_on_both_sides_channel_binding_crosses_pgbalancer() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = testkit::certs::self_signed(dir.path());
    let lab = both_sides_tls((&cert, &key), (&cert, &key)).await;

    // SCRAM-SHA-256-PLUS binds the login to the server certificate's hash
    // (tls-server-end-point): the same certificate on pgbalancer and the servers, the same hash.
    for binding in ["prefer", "require"] {
        let mut bound = psql(&lab, "require", &["-c", "\\conninfo"]);
        bound.env("PGCHANNELBINDING", binding);
        let (ok, out, err) = output(bound).await;
        assert!(ok, "channel_binding={binding}: {err}");
        assert!(out.contains("SSL connection"), "{out}");
    }

    // A session's query reaches the replica inside TLS, and its cancel still finds it.
    let child = start_sleep(&lab).await;
    assert!(
        session_encrypted(&lab, SLEEP).await,
        "the server side is plain"
    );
    sigint_cancels(child).await;
    // A plain client is carried inside TLS to the server too, with plain SCRAM.
    let (ok, _, err) = output(psql(&lab, "disable", &["-c", "select 1"])).await;
    assert!(ok, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_another_certificate_than_the_servers_channel_binding_fails_and_disable_logs_in() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = testkit::certs::self_signed(dir.path());
    let other = tempfile::tempdir().unwrap();
    let (our_cert, our_key) = testkit::certs::self_signed(other.path());
    let lab = both_sides_tls((&cert, &key), (&our_cert, &our_key)).await;

    // The hashes differ: libpq's default (prefer) picks SCRAM-SHA-256-PLUS and the server
    // refuses the binding. No balancer can fix that short of taking over the login.
    let (ok, _, err) = output(psql(&lab, "require", &["-c", "select 1"])).await;
    assert!(!ok);
    assert!(err.contains("channel binding"), "{err}");
    let mut unbound = psql(&lab, "require", &["-c", "select 1"]);
    unbound.env("PGCHANNELBINDING", "disable");
    let (ok, _, err) = output(unbound).await;
    assert!(ok, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tls_require_against_servers_without_ssl_fails_their_checks_in_words() {
    let lab = Lab::start(1, |c| c.server_tls = ServerTls::new(ServerTlsMode::Require)).await;
    let pg1 = lab.addr_of("pg1");
    let status = lab
        .wait_status("a failed check", |s| {
            s.backend(pg1)
                .and_then(|b| b.last_check.as_ref())
                .is_some_and(|c| c.error.is_some())
        })
        .await;
    let check = status.backend(pg1).unwrap().last_check.clone().unwrap();
    let error = check.error.unwrap();
    assert!(error.contains("refused TLS"), "{error}");
    assert_eq!(status.healthy, 0);
    // No certificate of its own: a client's SSLRequest cannot be passed on, and is refused.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(lab.pgb.listen_addr())
        .await
        .unwrap();
    raw.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).await.unwrap();
    assert_eq!(raw.read_u8().await.unwrap(), b'N');
}
