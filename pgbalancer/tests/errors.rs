//! What a client is told when pgbalancer cannot serve it: Postgres ErrorResponses, never a
//! dropped socket or a panic.

mod support;

use std::time::Duration;

use support::{read_error_response, Lab};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;

const HOLD: Duration = Duration::from_millis(800);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_replicas_down_gives_57p03_naming_pgbalancer_after_the_hold_timeout() {
    let lab = Lab::start(1, |c| c.hold_timeout = HOLD).await;
    lab.wait_up(&["pg1"]).await;
    lab.stop("pg1").await;
    lab.wait_down(&["pg1"]).await;

    let started = Instant::now();
    let Err(error) = lab.connect().await else {
        panic!("logged in with no server up");
    };
    let waited = started.elapsed();
    let db = error
        .as_db_error()
        .expect("a Postgres ErrorResponse, not a closed socket");
    assert_eq!(db.code(), &SqlState::CANNOT_CONNECT_NOW);
    assert_eq!(db.severity(), "FATAL");
    assert!(db.message().contains("pgbalancer"), "{}", db.message());
    assert!(
        db.message().contains("no healthy server"),
        "{}",
        db.message()
    );
    assert!(
        waited >= HOLD,
        "answered after {waited:?}, before the hold timeout"
    );
    assert_eq!(lab.pgb.status().no_backend_total, 1);

    // A client asking for TLS first is refused it like a server would, then told the same.
    let mut raw = TcpStream::connect(lab.pgb.listen_addr()).await.unwrap();
    raw.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .await
        .unwrap();
    assert_eq!(raw.read_u8().await.unwrap(), b'N');
    raw.write_all(&startup_packet()).await.unwrap();
    let (code, message) = read_error_response(&mut raw).await;
    assert_eq!(code, "57P03");
    assert!(message.contains("pgbalancer"), "{message}");

    // The replica comes back: served again, no restart needed.
    lab.restart("pg1").await;
    lab.wait_up(&["pg1"]).await;
    assert_eq!(lab.served_by().await.unwrap(), "pg1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waits_for_a_replica_that_comes_up_within_the_hold_timeout() {
    let lab = Lab::start(1, |c| c.hold_timeout = Duration::from_secs(30)).await;
    lab.wait_up(&["pg1"]).await;
    lab.stop("pg1").await;
    lab.wait_down(&["pg1"]).await;

    // The client connects while nothing is up and is held, not refused.
    let client = tokio::spawn({
        let config = lab.client_config();
        async move {
            let client = support::connect(&config).await?;
            let row = client.query_one("SHOW cluster_name", &[]).await?;
            Ok::<String, tokio_postgres::Error>(row.get(0))
        }
    });
    lab.wait_status("the client held", |s| s.waiting_clients == 1)
        .await;
    assert!(!client.is_finished());
    lab.restart("pg1").await;
    assert_eq!(client.await.unwrap().expect("served once pg1 is up"), "pg1");
}

fn startup_packet() -> Vec<u8> {
    let body = b"user\0app\0database\0highload\0\0";
    let mut packet = (8 + body.len() as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&196_608u32.to_be_bytes());
    packet.extend_from_slice(body);
    packet
}

/// pgbalancer in front of nothing: the first packet is judged before any backend is needed.
async fn bare() -> pgbalancer::Running {
    support::init_logs();
    let config = pgbalancer::Config {
        hold_timeout: Duration::ZERO,
        ..support::bare_config()
    };
    pgbalancer::start(config).await.expect("start pgbalancer")
}

async fn send_and_expect_08p01(pgb: &pgbalancer::Running, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(pgb.listen_addr()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let (code, message) = read_error_response(&mut stream).await;
    assert_eq!(code, "08P01", "protocol violation for {bytes:?}: {message}");
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .await
        .expect("closed after the error");
    assert!(rest.is_empty(), "nothing after the ErrorResponse");
    message
}

#[tokio::test]
async fn garbage_and_oversized_first_packets_get_a_protocol_violation_error() {
    let pgb = bare().await;
    let http = send_and_expect_08p01(&pgb, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        http.contains("pgbalancer") && http.contains("length"),
        "{http}"
    );

    let mut oversized = 1_000_000u32.to_be_bytes().to_vec();
    oversized.extend_from_slice(&196_608u32.to_be_bytes());
    oversized.extend(std::iter::repeat_n(b'x', 4096));
    send_and_expect_08p01(&pgb, &oversized).await;

    let unknown = [0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78];
    let message = send_and_expect_08p01(&pgb, &unknown).await;
    assert!(message.contains("unsupported"), "{message}");

    // A short cancel packet is refused rather than misread.
    send_and_expect_08p01(&pgb, &[0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1]).await;

    // Half a packet then a close, and a silent client: nothing to answer, nothing breaks.
    let mut half = TcpStream::connect(pgb.listen_addr()).await.unwrap();
    half.write_all(&[0, 0]).await.unwrap();
    drop(half);
    send_and_expect_08p01(&pgb, b"\0\0\0\x04").await;
}
