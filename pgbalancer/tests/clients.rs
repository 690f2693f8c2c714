//! The compatibility matrix: the clients people use (psql on Debian's libpq 15; psycopg on the
//! libpq 18 its wheel bundles, whose `cancel_safe()` cancels inside TLS; asyncpg; pg8000) × their
//! sslmode × pgbalancer's `--tls-mode`, each logging in and cancelling a `pg_sleep` through a
//! pgbalancer that terminates TLS in front of two real replicas. Every cancel must reach its
//! query by its key (none fanned out), encrypted or not.
//!
//! The table in pgbalancer/README.md comes from this test:
//! `PGBALANCER_MATRIX_OUT=/tmp/matrix.md cargo test -p pgbalancer --test clients`.

mod support;

use pgbalancer::tls::{ClientTls, ServerTls, ServerTlsMode, TlsMode};
use serde_json::Value;
use support::Lab;

const MATRIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/matrix.py");
const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/clients/bin/python");
const CLIENTS: [&str; 4] = ["psql", "psycopg", "asyncpg", "pg8000"];
const SSLMODES: [&str; 3] = ["disable", "prefer", "require"];

async fn run(lab: &Lab, client: &str, sslmode: &str) -> Value {
    let addr = lab.pgb.listen_addr();
    let out = tokio::process::Command::new(PYTHON)
        .arg(MATRIX)
        .args(["--client", client, "--sslmode", sslmode, "--cancel"])
        .args([
            "--host",
            &addr.ip().to_string(),
            "--port",
            &addr.port().to_string(),
        ])
        .args([
            "--user",
            lab.cluster.user(),
            "--password",
            lab.cluster.password(),
        ])
        .args(["--dbname", lab.cluster.database()])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{PYTHON}: {e} (scripts/setup.sh makes the venv)"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{client} {sslmode}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "–".to_owned(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => format!("{:.0}", n.as_f64().unwrap_or_default()),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_logs_in_and_cancels_through_terminated_tls_in_every_mode() {
    assert!(
        std::path::Path::new(PYTHON).exists(),
        "{PYTHON} is missing: run scripts/setup.sh (it makes .venv/clients)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = testkit::certs::self_signed(dir.path());
    let mut rows = Vec::new();
    // Plain servers; then servers with TLS on (the same certificate as pgbalancer's, so channel
    // binding can cross it) and `--server-tls require`.
    for (mode, server_tls) in [
        (TlsMode::Prefer, ServerTlsMode::Off),
        (TlsMode::Require, ServerTlsMode::Off),
        (TlsMode::Prefer, ServerTlsMode::Require),
    ] {
        let tls = ClientTls::load(mode, &cert, &key).unwrap();
        let mut cluster = testkit::PgClusterBuilder::default().replicas(2);
        if server_tls != ServerTlsMode::Off {
            cluster = cluster.ssl_files(&cert, &key);
        }
        let lab = Lab::start_on(cluster, |c| {
            c.tls = Some(tls);
            c.server_tls = ServerTls::new(server_tls);
        })
        .await;
        lab.wait_up(&["pg1", "pg2"]).await;
        let modes = format!("{mode:?} / {server_tls:?}").to_lowercase();
        let mut cancelled = 0;
        for client in CLIENTS {
            for sslmode in SSLMODES {
                let r = run(&lab, client, sslmode).await;
                let what =
                    format!("{client} sslmode={sslmode} --tls-mode / --server-tls {modes}: {r}");
                let refused = mode == TlsMode::Require && sslmode == "disable";
                if refused {
                    assert_eq!(r["login"], false, "{what}");
                    let error = r["error"].as_str().unwrap_or_default();
                    assert!(error.contains("TLS is required"), "{what}");
                } else {
                    assert_eq!(r["login"], true, "{what}");
                    assert_eq!(r["tls"], sslmode != "disable", "{what}");
                    let expected = if client == "pg8000" {
                        "unsupported"
                    } else {
                        "ok"
                    };
                    assert_eq!(r["cancel"], expected, "{what}");
                    if expected == "ok" {
                        cancelled += 1;
                    }
                }
                rows.push(format!(
                    "| {} | {sslmode} | {modes} | {} | {} | {} | {} |",
                    cell(&r["client_version"]),
                    if refused {
                        "refused: FATAL 28000 \"pgbalancer: TLS is required\"".to_owned()
                    } else {
                        cell(&r["login"])
                    },
                    cell(&r["tls"]),
                    cell(&r["cancel"]),
                    cell(&r["cancel_ms"]),
                ));
            }
        }
        // Every cancel went to its own session's server: pgbalancer read every key, also those
        // of sessions inside TLS and of cancels sent inside TLS.
        let metrics = support::http_get(lab.pgb.admin_addr(), "/metrics").await.1;
        let known = format!("pgbalancer_cancel_requests_total{{routing=\"known\"}} {cancelled}");
        assert!(metrics.contains(&known), "{known} missing:\n{metrics}");
        assert!(
            metrics.contains("pgbalancer_cancel_requests_total{routing=\"fanout\"} 0"),
            "{metrics}"
        );
    }
    let table = format!(
        "| client | sslmode | pgbalancer `--tls-mode` / `--server-tls` | login | client's connection encrypted | cancel | cancel ms |\n|---|---|---|---|---|---|---|\n{}\n",
        rows.join("\n")
    );
    println!("{table}");
    if let Ok(path) = std::env::var("PGBALANCER_MATRIX_OUT") {
        std::fs::write(&path, &table).unwrap();
    }
}
