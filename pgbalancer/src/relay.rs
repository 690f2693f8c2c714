//! Relaying a session's bytes both ways until either side closes, counting them. The server's
//! side is scanned until the startup phase ends to learn the session's cancel key; after that
//! both directions are plain copies.
//!
//! A userspace copy with a 16 KiB buffer per direction: measured against HAProxy (which splices)
//! with `pgbench -S`, see README.md. Postgres messages are small and latency-bound, so the copy
//! costs less than the pipe bookkeeping splice(2) would add, and it needs no `unsafe`.

use std::io;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::pool::Backend;
use crate::protocol::{CancelKey, Scan, StartupScanner};
use crate::sasl::SaslFilter;
use crate::tls::ServerStream;

const BUF: usize = 16 * 1024;

/// Relays until both directions are done (each side's close is passed on as a half-close) or one
/// fails. `on_key` gets the session's BackendKeyData when `scan` is set and the server sends one.
pub async fn relay<C>(
    client: &mut C,
    server: &mut ServerStream,
    backend: &Backend,
    scan: bool,
    client_tls: bool,
    on_key: impl FnOnce(CancelKey),
) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    // A plain client must not be offered the channel binding of the server's TLS (see
    // [`SaslFilter`]); a TLS client gets the offer as it is.
    let filter = (server.is_tls() && !client_tls).then(SaslFilter::default);
    // A plain or a TLS client alike (a TLS stream cannot be split without a lock; the halves'
    // lock is uncontended, one task polls both).
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut server_read, mut server_write) = tokio::io::split(server);
    let to_backend = copy(
        &mut client_read,
        &mut server_write,
        &backend.data.metrics.bytes_to_backend,
    );
    let to_client = async {
        if scan {
            let done = copy_scanning(
                &mut server_read,
                &mut client_write,
                &backend.data.metrics.bytes_to_client,
                filter,
            )
            .await?;
            match done {
                Some(key) => on_key(key),
                None => return Ok(()),
            }
        }
        copy(
            &mut server_read,
            &mut client_write,
            &backend.data.metrics.bytes_to_client,
        )
        .await
    };
    futures::future::try_join(to_backend, to_client).await?;
    Ok(())
}

async fn copy<R, W>(reader: &mut R, writer: &mut W, counter: &IntCounter) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0; BUF];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return writer.shutdown().await;
        }
        writer.write_all(&buf[..n]).await?;
        counter.inc_by(n as u64);
    }
}

/// Copies while scanning for the cancel key. `Ok(Some(key))`: startup over, key found, keep
/// copying. `Ok(None)`: the server closed (passed on), or startup ended without a key and the rest
/// was copied to the end.
async fn copy_scanning<R, W>(
    reader: &mut R,
    writer: &mut W,
    counter: &IntCounter,
    mut filter: Option<SaslFilter>,
) -> io::Result<Option<CancelKey>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scanner = StartupScanner::default();
    let mut buf = vec![0; BUF];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            if let Some(f) = filter.as_mut() {
                writer.write_all(&f.take_rest()).await?;
            }
            writer.shutdown().await?;
            return Ok(None);
        }
        let filtered;
        let chunk = match filter.as_mut() {
            Some(f) => {
                filtered = f.feed(&buf[..n]);
                &filtered[..]
            }
            None => &buf[..n],
        };
        writer.write_all(chunk).await?;
        counter.inc_by(chunk.len() as u64);
        let scan = scanner.feed(chunk);
        if scan != Scan::More {
            if let Some(f) = filter.as_mut() {
                let rest = f.take_rest();
                writer.write_all(&rest).await?;
                counter.inc_by(rest.len() as u64);
            }
        }
        match scan {
            Scan::More => {}
            Scan::Done(Some(key)) => return Ok(Some(key)),
            Scan::Done(None) => {
                copy(reader, writer, counter).await?;
                return Ok(None);
            }
        }
    }
}
