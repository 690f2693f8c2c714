//! The few pieces of the Postgres wire protocol routing needs: the client's first packet
//! (SSLRequest, GSSENCRequest, CancelRequest or StartupMessage), the server's BackendKeyData, and
//! encoding an `ErrorResponse` so a client prints a real error instead of "server closed the
//! connection unexpectedly".

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Postgres refuses a startup packet longer than this (`MAX_STARTUP_PACKET_LENGTH`); so do we.
pub const MAX_STARTUP_PACKET: usize = 10_000;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
/// Protocol 3.0, the only one servers since 7.4 speak (minor versions are negotiated by the
/// server, so any 3.x goes through).
const PROTOCOL_MAJOR_3: u32 = 3;

/// SQLSTATE of a client that broke the protocol.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// SQLSTATE of a login refused by the server's rules (pg_hba's "no encryption" among them).
pub const INVALID_AUTHORIZATION: &str = "28000";
/// SQLSTATE Postgres sends when `max_connections` is reached ("sorry, too many clients already").
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// SQLSTATE Postgres sends while it cannot accept connections ("the database system is starting
/// up"): the closest match for "no server is up", and clients treat it as retryable.
pub const CANNOT_CONNECT_NOW: &str = "57P03";

/// A client's session key, from BackendKeyData; a CancelRequest names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CancelKey {
    pub pid: i32,
    pub secret: i32,
}

/// What a client's first packet (or the one after a refused encryption request) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstPacket {
    Ssl,
    GssEnc,
    Cancel(CancelKey),
    /// A StartupMessage; `raw` is the whole packet, length included, to forward as is.
    Startup {
        raw: Bytes,
    },
}

impl FirstPacket {
    /// The bytes to forward to a server.
    pub fn encode(&self) -> Bytes {
        let code_only = |code: u32| {
            let mut b = BytesMut::with_capacity(8);
            b.put_u32(8);
            b.put_u32(code);
            b.freeze()
        };
        match self {
            Self::Ssl => code_only(SSL_REQUEST),
            Self::GssEnc => code_only(GSSENC_REQUEST),
            Self::Cancel(key) => {
                let mut b = BytesMut::with_capacity(16);
                b.put_u32(16);
                b.put_u32(CANCEL_REQUEST);
                b.put_i32(key.pid);
                b.put_i32(key.secret);
                b.freeze()
            }
            Self::Startup { raw } => raw.clone(),
        }
    }
}

/// Why a first packet was refused.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("reading the first packet")]
    Io(#[from] std::io::Error),
    #[error("invalid length {0} of the first packet (expected 8 to {MAX_STARTUP_PACKET} bytes)")]
    BadLength(u32),
    #[error("a CancelRequest of {0} bytes (expected 16)")]
    BadCancel(u32),
    #[error("unsupported protocol or request code {0}")]
    UnknownCode(u32),
}

/// Reads one packet of the startup phase; never more than [`MAX_STARTUP_PACKET`] bytes.
pub async fn read_first_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<FirstPacket, PacketError> {
    let len = reader.read_u32().await?;
    if !(8..=MAX_STARTUP_PACKET as u32).contains(&len) {
        return Err(PacketError::BadLength(len));
    }
    let mut raw = BytesMut::zeroed(len as usize);
    raw[..4].copy_from_slice(&len.to_be_bytes());
    reader.read_exact(&mut raw[4..]).await?;
    let code = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
    match code {
        SSL_REQUEST if len == 8 => Ok(FirstPacket::Ssl),
        GSSENC_REQUEST if len == 8 => Ok(FirstPacket::GssEnc),
        CANCEL_REQUEST if len == 16 => Ok(FirstPacket::Cancel(CancelKey {
            pid: i32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]),
            secret: i32::from_be_bytes([raw[12], raw[13], raw[14], raw[15]]),
        })),
        CANCEL_REQUEST => Err(PacketError::BadCancel(len)),
        code if code >> 16 == PROTOCOL_MAJOR_3 => Ok(FirstPacket::Startup { raw: raw.freeze() }),
        code => Err(PacketError::UnknownCode(code)),
    }
}

/// A FATAL `ErrorResponse` with `sqlstate` and `message`.
pub fn error_response(sqlstate: &str, message: &str) -> Bytes {
    let mut body = BytesMut::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', sqlstate),
        (b'M', message),
    ] {
        body.put_u8(field);
        // A NUL would end the field early; our messages have none, but never emit a broken frame.
        body.put_slice(value.replace('\0', " ").as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    let mut msg = BytesMut::with_capacity(body.len() + 5);
    msg.put_u8(b'E');
    msg.put_u32(body.len() as u32 + 4);
    msg.put_slice(&body);
    msg.freeze()
}

/// Follows the server's messages (type byte, length, body) in the bytes it sends after the
/// startup packet, to learn the session's BackendKeyData. Done at ReadyForQuery or an error.
#[derive(Debug, Default)]
pub struct StartupScanner {
    /// The header or BackendKeyData bytes of the message in progress.
    pending: Vec<u8>,
    /// Bytes of the current message's body still to skip.
    skip: usize,
    key: Option<CancelKey>,
    done: bool,
}

/// What the scanner learned from a chunk of server bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Keep feeding it.
    More,
    /// The startup phase is over; stop scanning. The key, when the server sent one.
    Done(Option<CancelKey>),
}

impl StartupScanner {
    pub fn feed(&mut self, mut chunk: &[u8]) -> Scan {
        while !chunk.is_empty() && !self.done {
            if self.skip > 0 {
                let n = self.skip.min(chunk.len());
                self.skip -= n;
                chunk = &chunk[n..];
                continue;
            }
            let need = if self.pending.first() == Some(&b'K') && self.pending.len() >= 5 {
                13 // type, length, pid, secret
            } else {
                5
            };
            let n = (need - self.pending.len()).min(chunk.len());
            self.pending.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.pending.len() < need {
                continue;
            }
            self.message_header_complete();
        }
        if self.done {
            Scan::Done(self.key)
        } else {
            Scan::More
        }
    }

    fn message_header_complete(&mut self) {
        let p = &self.pending;
        let len = u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize;
        match p[0] {
            b'K' if p.len() == 5 && len == 12 => return, // read pid and secret next
            b'K' if p.len() == 13 => {
                self.key = Some(CancelKey {
                    pid: i32::from_be_bytes([p[5], p[6], p[7], p[8]]),
                    secret: i32::from_be_bytes([p[9], p[10], p[11], p[12]]),
                });
                self.skip = len - 12;
            }
            // ReadyForQuery ends the startup; an ErrorResponse ends the connection. Either way,
            // no key comes later. A length below 4 is not Postgres talking: stop looking.
            b'Z' | b'E' => self.done = true,
            _ if len < 4 => self.done = true,
            _ => self.skip = len - 4,
        }
        self.pending.clear();
    }
}

/// After an error, how much of the client's unread input to swallow, and for how long.
const DRAIN_LIMIT: usize = 256 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_millis(500);

/// Answers `client` with a FATAL ErrorResponse and closes it, as Postgres does.
pub async fn send_error<C>(client: &mut C, sqlstate: &str, message: &str)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let msg = error_response(sqlstate, message);
    // The client may be gone already; there is no one else to tell.
    if client.write_all(&msg).await.is_err() || client.shutdown().await.is_err() {
        return;
    }
    // Closing a socket with unread input sends a RST, which can destroy the error before the
    // client reads it (an oversized packet leaves plenty unread). Read what the client still
    // sends, bounded, until it closes.
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut left = DRAIN_LIMIT;
        while left > 0 {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: u32, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(8 + body.len() as u32).to_be_bytes());
        v.extend_from_slice(&code.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    async fn parse(bytes: &[u8]) -> Result<FirstPacket, PacketError> {
        read_first_packet(&mut &bytes[..]).await
    }

    #[tokio::test]
    async fn reads_each_kind_of_first_packet_and_encodes_it_back() {
        assert_eq!(
            parse(&packet(SSL_REQUEST, b"")).await.unwrap(),
            FirstPacket::Ssl
        );
        assert_eq!(
            parse(&packet(GSSENC_REQUEST, b"")).await.unwrap(),
            FirstPacket::GssEnc
        );
        let cancel = packet(CANCEL_REQUEST, &[0, 0, 0, 7, 0, 0, 1, 0]);
        let parsed = parse(&cancel).await.unwrap();
        assert_eq!(
            parsed,
            FirstPacket::Cancel(CancelKey {
                pid: 7,
                secret: 256
            })
        );
        assert_eq!(parsed.encode(), cancel);
        let startup = packet(196_608, b"user\0app\0\0");
        let parsed = parse(&startup).await.unwrap();
        assert_eq!(parsed.encode(), startup);
    }

    #[tokio::test]
    async fn refuses_garbage_and_oversized_packets() {
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n").await,
            Err(PacketError::BadLength(_))
        ));
        assert!(matches!(
            parse(&(MAX_STARTUP_PACKET as u32 + 1).to_be_bytes()).await,
            Err(PacketError::BadLength(_))
        ));
        assert!(matches!(
            parse(&packet(12_345, b"")).await,
            Err(PacketError::UnknownCode(12_345))
        ));
        assert!(matches!(
            parse(&packet(CANCEL_REQUEST, b"")).await,
            Err(PacketError::BadCancel(8))
        ));
        assert!(matches!(
            parse(&[0, 0, 0, 9]).await,
            Err(PacketError::Io(_))
        ));
    }

    #[test]
    fn error_response_is_a_well_formed_message() {
        let msg = error_response(CANNOT_CONNECT_NOW, "no server");
        assert_eq!(msg[0], b'E');
        let len = u32::from_be_bytes([msg[1], msg[2], msg[3], msg[4]]) as usize;
        assert_eq!(len + 1, msg.len());
        assert_eq!(&msg[5..], b"SFATAL\0VFATAL\0C57P03\0Mno server\0\0");
    }

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&(4 + body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn scanner_finds_the_key_however_the_bytes_are_split() {
        let mut stream = message(b'R', &[0, 0, 0, 0]);
        stream.extend(message(b'S', b"server_version\x0015\0"));
        stream.extend(message(b'K', &[0, 0, 0x30, 0x39, 0xff, 0xff, 0xff, 0xfe]));
        stream.extend(message(b'Z', b"I"));
        stream.extend(b"trailing query results");
        let want = Scan::Done(Some(CancelKey {
            pid: 12345,
            secret: -2,
        }));
        for split in 1..stream.len() {
            let mut s = StartupScanner::default();
            let mut result = Scan::More;
            for chunk in stream.chunks(split) {
                result = s.feed(chunk);
                if result != Scan::More {
                    break;
                }
            }
            assert_eq!(result, want, "chunks of {split}");
        }
    }

    #[test]
    fn scanner_stops_at_an_error_without_a_key() {
        let mut s = StartupScanner::default();
        assert_eq!(s.feed(&message(b'R', &[0, 0, 0, 10])), Scan::More);
        assert_eq!(s.feed(&message(b'E', b"SFATAL\0\0")), Scan::Done(None));
    }
}
