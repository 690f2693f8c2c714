//! The real binary, stopped the way Kubernetes stops a pod: after SIGTERM /readyz answers 503 at
//! once while the listener still serves requests, and only after the shutdown delay does the
//! process stop listening and exit cleanly.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{database_url, http_get_json, poll};
use testkit::PgCluster;

mod support;

/// Kills the child if the test fails before it exits on its own.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readiness_before_the_listener_closes() {
    let cluster = PgCluster::start(1).await.expect("start cluster");
    let replica = &cluster.replicas()[0];
    let mut child = Command::new(env!("CARGO_BIN_EXE_backend"))
        .args(["--listen", "127.0.0.1:0", "--shutdown-delay", "5s"])
        .args(["--pod", "backend-sigterm"])
        .env("DATABASE_URL", database_url(&cluster, replica))
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the backend binary");
    // Logs go to stderr, as every binary's here.
    let stdout = child.stderr.take().unwrap();
    let pid = child.id().to_string();
    let mut running = Running(child);

    // Every log line goes to the channel; the "serving" line names the bound address.
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let addr: SocketAddr = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the backend logs the address it serves on");
        if let Some(listen) = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("listen="))
        {
            break listen.parse().expect("listen= is an address");
        }
    };

    poll("ready before SIGTERM", Duration::from_secs(10), || async {
        let (status, _) = http_get_json(addr, "/readyz").await.ok()?;
        (status == 200).then_some(())
    })
    .await;

    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success(), "kill -TERM {pid}");

    let body = poll(
        "readyz 503 after SIGTERM",
        Duration::from_secs(3),
        || async {
            let (status, body) = http_get_json(addr, "/readyz").await.ok()?;
            (status == 503).then_some(body)
        },
    )
    .await;
    assert_eq!(body["status"], "draining");
    // Still listening and serving while the endpoints controller catches up.
    let (status, body) = http_get_json(addr, "/users")
        .await
        .expect("/users while draining");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pod"], "backend-sigterm");
    assert_eq!(body["db"], "pg1");
    let (status, _) = http_get_json(addr, "/healthz")
        .await
        .expect("/healthz while draining");
    assert_eq!(status, 200);

    let exit = poll(
        "exit after the shutdown delay",
        Duration::from_secs(20),
        || {
            let exited = running.0.try_wait().expect("try_wait");
            async move { exited }
        },
    )
    .await;
    assert!(exit.success(), "exit status {exit}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed after exit"
    );
    // The process is gone, so its stdout reaches EOF and the reader thread hangs up.
    let mut log = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        log.push(line);
    }
    assert!(
        log.iter().any(|l| l.contains("all requests finished")),
        "{log:#?}"
    );
}
