//! One client connection: read its first packet, route it (a cancel to the session's server, a
//! new session to the next healthy backend, found by [`crate::dial`]), terminate the client's
//! TLS when pgbalancer has a certificate, answer like Postgres when there is no backend or the packet is bad, then relay.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::cancel::{self, KeyGuard};
use crate::config::OnDown;
use crate::dial;
use crate::metrics::Outcome;
use crate::pool::Backend;
use crate::protocol::{
    self, FirstPacket, PacketError, CANNOT_CONNECT_NOW, INVALID_AUTHORIZATION, PROTOCOL_VIOLATION,
};
use crate::relay;
use crate::shared::Shared;
use crate::tls::{ClientTls, ServerStream, TlsMode};

/// At most this many packets before the StartupMessage: GSSENCRequest, then SSLRequest.
const MAX_NEGOTIATIONS: usize = 2;

pub async fn handle(mut client: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let outcome = serve(&mut client, &shared).await;
    shared
        .metrics
        .clients
        .with_label_values(&[outcome.label()])
        .inc();
    debug!(%peer, outcome = outcome.label(), "client connection done");
}

/// Serves one client; returns the outcome label for `pgbalancer_client_connections_total`.
async fn serve(client: &mut TcpStream, shared: &Shared) -> Outcome {
    let packet = match read_packet(client, shared).await {
        Ok(p) => p,
        Err(outcome) => return outcome,
    };
    // With TLS to the servers, a client's SSLRequest cannot be passed on: pgbalancer answers it
    // (`N` without a certificate of its own).
    match (&shared.config.tls, &shared.config.server_tls) {
        (None, None) => pass_through(client, packet, shared).await,
        (tls, _) => terminate(client, packet, tls.as_ref(), shared).await,
    }
}

/// Clients' TLS ends here: an SSLRequest is answered `S` and the handshake made (or, without a
/// certificate, `N`), GSSAPI encryption is refused as a server without it would, and what follows
/// (inside TLS or not) is routed as a plain client's packet would be.
async fn terminate(
    client: &mut TcpStream,
    mut packet: FirstPacket,
    tls: Option<&ClientTls>,
    shared: &Shared,
) -> Outcome {
    for _ in 0..=MAX_NEGOTIATIONS {
        match (packet, tls) {
            (FirstPacket::Ssl, Some(tls)) => {
                if client.write_all(b"S").await.is_err() {
                    return Outcome::Closed;
                }
                let handshake = tokio::time::timeout(
                    shared.config.client_timeout,
                    tls.acceptor.accept(&mut *client),
                )
                .await;
                let mut stream = match handshake {
                    Ok(Ok(stream)) => {
                        shared.metrics.tls_handshakes_ok.inc();
                        stream
                    }
                    Ok(Err(e)) => {
                        shared.metrics.tls_handshakes_failed.inc();
                        info!(error = %e, "client TLS handshake failed");
                        return Outcome::Closed;
                    }
                    Err(_) => {
                        shared.metrics.tls_handshakes_failed.inc();
                        return Outcome::Timeout;
                    }
                };
                let inner = match read_packet(&mut stream, shared).await {
                    Ok(p) => p,
                    Err(outcome) => return outcome,
                };
                if matches!(inner, FirstPacket::Ssl | FirstPacket::GssEnc) {
                    protocol::send_error(
                        &mut stream,
                        PROTOCOL_VIOLATION,
                        "pgbalancer: an encryption request inside TLS",
                    )
                    .await;
                    return Outcome::BadRequest;
                }
                return route(&mut stream, inner, true, shared).await;
            }
            (FirstPacket::Ssl | FirstPacket::GssEnc, _) => {
                if client.write_all(b"N").await.is_err() {
                    return Outcome::Closed;
                }
            }
            (FirstPacket::Startup { .. }, Some(tls)) if tls.mode == TlsMode::Require => {
                info!("refusing a plain login: TLS is required");
                protocol::send_error(
                    client,
                    INVALID_AUTHORIZATION,
                    "pgbalancer: TLS is required (connect with sslmode=require)",
                )
                .await;
                return Outcome::BadRequest;
            }
            (packet @ (FirstPacket::Startup { .. } | FirstPacket::Cancel(_)), _) => {
                return route(client, packet, false, shared).await;
            }
        }
        packet = match read_packet(client, shared).await {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
    }
    too_many_negotiations(client).await
}

/// A CancelRequest or a StartupMessage pgbalancer can read (plain, or inside TLS it
/// terminated): the cancel goes to its session's server, the session to the next healthy one
/// with its cancel key learnt.
/// `encrypted`: the client's connection is inside TLS pgbalancer terminated.
async fn route<C>(client: &mut C, packet: FirstPacket, encrypted: bool, shared: &Shared) -> Outcome
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    match packet {
        FirstPacket::Cancel(key) => {
            cancel_request(key, shared).await;
            // As a server ends a cancel connection: closed, inside TLS with a close_notify (a
            // bare TCP close there is an "unexpected eof" to libpq 17+, a failed cancel).
            let _ = client.shutdown().await;
            Outcome::Cancel
        }
        FirstPacket::Startup { raw } => match dial::connect(shared, &raw).await {
            Some((backend, mut stream)) => {
                run_session(client, &mut stream, &backend, shared, true, encrypted).await
            }
            None => {
                shared.metrics.no_backend.inc();
                refuse_no_backend(client, shared).await
            }
        },
        FirstPacket::Ssl | FirstPacket::GssEnc => unreachable!("negotiated by the caller"),
    }
}

async fn cancel_request(key: protocol::CancelKey, shared: &Shared) {
    let route = cancel::route(&shared.cancels, &key, || {
        shared.pool.usable().iter().map(|b| b.addr).collect()
    });
    shared
        .metrics
        .cancels
        .with_label_values(&[route.label()])
        .inc();
    cancel::forward(key, &route, shared.config.connect_timeout).await;
}

async fn refuse_no_backend<C>(client: &mut C, shared: &Shared) -> Outcome
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let message = no_backend_message(shared);
    info!(reason = %message, "no healthy backend for a client");
    protocol::send_error(client, CANNOT_CONNECT_NOW, &message).await;
    Outcome::NoBackend
}

/// No TLS here: an encryption request goes to the first server that answers, and the client
/// and that server negotiate it between them.
async fn pass_through(client: &mut TcpStream, mut packet: FirstPacket, shared: &Shared) -> Outcome {
    if let FirstPacket::Cancel(key) = packet {
        cancel_request(key, shared).await;
        return Outcome::Cancel;
    }
    // The first packet goes to a server that answers it: a frozen one is passed over.
    let mut server = dial::connect(shared, &packet.encode()).await;
    if server.is_none() {
        shared.metrics.no_backend.inc();
    }
    let mut sent = true;
    for _ in 0..=MAX_NEGOTIATIONS {
        if !sent {
            if let Some((backend, stream)) = server.as_mut() {
                if let Err(e) = stream.write_all(&packet.encode()).await {
                    warn!(backend = %backend.addr, error = %e, "could not forward the client's packet");
                    return Outcome::Relayed;
                }
            }
        }
        sent = false;
        match (packet, server.as_mut()) {
            (FirstPacket::Startup { .. }, Some((backend, stream))) => {
                return run_session(client, stream, backend, shared, true, false).await;
            }
            (FirstPacket::Startup { .. }, None) => {
                return refuse_no_backend(client, shared).await;
            }
            (FirstPacket::Ssl | FirstPacket::GssEnc, Some((backend, stream))) => {
                match negotiate(client, stream).await {
                    // Encryption accepted: from here on the bytes are opaque, and the cancel key
                    // is inside TLS; a cancel for this session will be fanned out.
                    Ok(true) => {
                        return run_session(client, stream, backend, shared, false, true).await
                    }
                    Ok(false) => {}
                    Err(e) => {
                        debug!(backend = %backend.addr, error = %e, "encryption negotiation failed");
                        return Outcome::Closed;
                    }
                }
            }
            // Refuse encryption as a server would, so the client goes on to its StartupMessage
            // and can be told in plain words why it gets no server.
            (FirstPacket::Ssl | FirstPacket::GssEnc, None) => {
                if client.write_all(b"N").await.is_err() {
                    return Outcome::Closed;
                }
            }
            (FirstPacket::Cancel(_), _) => {
                protocol::send_error(
                    client,
                    PROTOCOL_VIOLATION,
                    "pgbalancer: CancelRequest after an encryption request",
                )
                .await;
                return Outcome::BadRequest;
            }
        }
        packet = match read_packet(client, shared).await {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
    }
    too_many_negotiations(client).await
}

async fn too_many_negotiations(client: &mut TcpStream) -> Outcome {
    protocol::send_error(
        client,
        PROTOCOL_VIOLATION,
        "pgbalancer: too many encryption requests",
    )
    .await;
    Outcome::BadRequest
}

/// Passes the server's one-byte answer to a forwarded SSLRequest or GSSENCRequest back. True
/// when the server accepted (anything but `N`): relay opaque bytes from now on.
async fn negotiate(client: &mut TcpStream, server: &mut ServerStream) -> std::io::Result<bool> {
    let answer = server.read_u8().await?;
    client.write_all(&[answer]).await?;
    Ok(answer != b'N')
}

async fn run_session<C>(
    client: &mut C,
    server: &mut ServerStream,
    backend: &Arc<Backend>,
    shared: &Shared,
    scan: bool,
    encrypted: bool,
) -> Outcome
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let m = &backend.data.metrics;
    m.active.inc();
    let mut key_guard: Option<KeyGuard> = None;
    let relayed = relay::relay(client, server, backend, scan, encrypted, |key| {
        key_guard = Some(shared.cancels.register(key, backend.addr));
    });
    let shutdown_on_down = shared.config.on_down == OnDown::Shutdown;
    tokio::select! {
        result = relayed => {
            if let Err(e) = result {
                debug!(backend = %backend.addr, error = %e, "session ended with an error");
            }
        }
        () = backend.wait_gone(), if shutdown_on_down => {
            info!(backend = %backend.addr, "closing a session: its backend was marked down or left DNS");
        }
    }
    m.active.dec();
    Outcome::Relayed
}

/// Reads the next startup-phase packet; on failure answers the client (when it is worth it) and
/// returns the outcome label.
async fn read_packet<C>(client: &mut C, shared: &Shared) -> Result<FirstPacket, Outcome>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let read = tokio::time::timeout(
        shared.config.client_timeout,
        protocol::read_first_packet(client),
    )
    .await;
    match read {
        Ok(Ok(packet)) => Ok(packet),
        Err(_) => Err(Outcome::Timeout),
        // Closed before a full packet: a TCP probe, or a client that gave up. Nobody to answer.
        Ok(Err(PacketError::Io(_))) => Err(Outcome::Closed),
        Ok(Err(e)) => {
            info!(error = %e, "refusing a bad first packet");
            protocol::send_error(client, PROTOCOL_VIOLATION, &format!("pgbalancer: {e}")).await;
            Err(Outcome::BadRequest)
        }
    }
}

/// "pgbalancer: no healthy server for NAME:PORT after 5s (2 in DNS: 127.0.2.2:5432: login failed…)".
fn no_backend_message(shared: &Shared) -> String {
    let backends = shared.pool.endpoints();
    let why = if backends.is_empty() {
        "DNS lists no servers".to_owned()
    } else {
        let reasons: Vec<String> = backends
            .iter()
            .map(|b| {
                let reason = match b.health().last {
                    Some(c) => c
                        .result
                        .err()
                        .map_or_else(|| "passing, not yet up".into(), |f| f.reason),
                    None => "not checked yet".into(),
                };
                format!("{}: {reason}", b.addr)
            })
            .collect();
        format!(
            "{} in DNS, none healthy: {}",
            backends.len(),
            reasons.join("; ")
        )
    };
    format!(
        "pgbalancer: no healthy server for {} after waiting {:?} ({why})",
        shared.config.upstream, shared.config.hold_timeout
    )
}
