//! Hostile Postgres clients: silent and stalled ones are closed after the client timeout, endless
//! encryption requests and absurd lengths get a protocol violation, and 2000 idle connections
//! fill `max_connections` while a real client is still served and one more is told 53300. Never a
//! panic: pgbalancer serves normally afterwards in every test.

mod support;

use std::time::Duration;

use support::{http_get, read_error_response, Lab};
use testkit::sockets::closed_within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

async fn metric(pgb: &pgbalancer::Running, line: &str) -> bool {
    http_get(pgb.admin_addr(), "/metrics")
        .await
        .1
        .contains(line)
}

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_stalled_clients_are_closed_after_the_client_timeout() {
    support::init_logs();
    let pgb = pgbalancer::start(pgbalancer::Config {
        client_timeout: Duration::from_millis(500),
        hold_timeout: Duration::ZERO,
        ..support::bare_config()
    })
    .await
    .expect("start pgbalancer");

    // Connects and sends nothing.
    let mut silent = TcpStream::connect(pgb.listen_addr()).await.unwrap();
    // Announces 100 bytes and sends 20.
    let mut truncated = TcpStream::connect(pgb.listen_addr()).await.unwrap();
    let mut partial = 100u32.to_be_bytes().to_vec();
    partial.extend_from_slice(&196_608u32.to_be_bytes());
    partial.extend_from_slice(b"user\0app\0data");
    truncated.write_all(&partial).await.unwrap();
    // Refused encryption, then silence before the StartupMessage.
    let mut after_ssl = TcpStream::connect(pgb.listen_addr()).await.unwrap();
    after_ssl.write_all(&SSL_REQUEST).await.unwrap();
    assert_eq!(after_ssl.read_u8().await.unwrap(), b'N');

    for (what, stream) in [
        ("silent", &mut silent),
        ("truncated", &mut truncated),
        ("silent after SSLRequest", &mut after_ssl),
    ] {
        let waited = closed_within(stream, Duration::from_secs(5)).await;
        let waited = waited.unwrap_or_else(|| panic!("{what} client still open after 5s"));
        assert!(
            waited < Duration::from_secs(3),
            "{what}: closed after {waited:?}"
        );
    }
    assert!(
        metric(
            &pgb,
            "pgbalancer_client_connections_total{result=\"timeout\"} 3"
        )
        .await,
        "{}",
        http_get(pgb.admin_addr(), "/metrics").await.1
    );
    testkit::wait::until_some("every connection released", Duration::from_secs(5), || {
        (pgb.status().client_connections == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_encryption_requests_and_absurd_lengths_are_protocol_violations() {
    support::init_logs();
    let pgb = pgbalancer::start(pgbalancer::Config {
        hold_timeout: Duration::ZERO,
        ..support::bare_config()
    })
    .await
    .expect("start pgbalancer");

    // Four SSLRequests in a row: three refused like a server would, then the client is cut off.
    let mut ssl = TcpStream::connect(pgb.listen_addr()).await.unwrap();
    ssl.write_all(&SSL_REQUEST.repeat(4)).await.unwrap();
    let mut answers = [0u8; 3];
    ssl.read_exact(&mut answers).await.unwrap();
    assert_eq!(&answers, b"NNN");
    let (code, message) = read_error_response(&mut ssl).await;
    assert_eq!(code, "08P01");
    assert!(
        message.contains("too many encryption requests"),
        "{message}"
    );

    for length in [0u32, 7, 10_001, u32::MAX, 0x8000_0000] {
        let mut stream = TcpStream::connect(pgb.listen_addr()).await.unwrap();
        let mut packet = length.to_be_bytes().to_vec();
        packet.extend_from_slice(&196_608u32.to_be_bytes());
        stream.write_all(&packet).await.unwrap();
        let (code, message) = read_error_response(&mut stream).await;
        assert_eq!(code, "08P01", "length {length}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_fill_max_connections_and_real_clients_still_get_an_answer() {
    const MAX: usize = 2000;
    let lab = Lab::start(1, |c| {
        c.max_connections = MAX;
        c.client_timeout = Duration::from_secs(60);
    })
    .await;
    lab.wait_up(&["pg1"]).await;

    let mut idle = Vec::with_capacity(MAX);
    for _ in 0..MAX - 1 {
        idle.push(TcpStream::connect(lab.pgb.listen_addr()).await.unwrap());
    }
    lab.wait_status("1999 idle clients admitted", |s| {
        s.client_connections == (MAX - 1) as i64
    })
    .await;

    // The last place goes to a real client, which is served.
    let client = lab
        .connect()
        .await
        .expect("log in through a full pgbalancer");
    let row = client.query_one("SHOW cluster_name", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "pg1");

    // One more is told what Postgres tells it, at once.
    let started = Instant::now();
    let mut extra = TcpStream::connect(lab.pgb.listen_addr()).await.unwrap();
    let (code, message) = read_error_response(&mut extra).await;
    assert_eq!(code, "53300", "{message}");
    assert!(message.contains("too many clients"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let refused = lab
        .connect()
        .await
        .expect_err("a second real client over the limit");
    let db = refused
        .as_db_error()
        .expect("an ErrorResponse, not a dropped socket");
    assert_eq!(db.code().code(), "53300");

    // Everyone leaves: every place is freed, and pgbalancer serves as before.
    drop(idle);
    drop(client);
    lab.wait_status("every connection closed", |s| s.client_connections == 0)
        .await;
    assert_eq!(lab.served_by().await.unwrap(), "pg1");
    let metrics = http_get(lab.pgb.admin_addr(), "/metrics").await.1;
    for line in [
        "pgbalancer_client_connections_total{result=\"refused\"} 2",
        "pgbalancer_client_connections_total{result=\"closed\"} 1999",
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
}
