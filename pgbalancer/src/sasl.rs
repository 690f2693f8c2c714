//! The one rewrite pgbalancer makes to what a server says: SCRAM-SHA-256-PLUS taken out of the
//! authentication offer to a plain client whose session goes to the server inside TLS (README
//! "TLS", channel binding).

/// The SASL mechanism that binds the login to the TLS channel.
const SCRAM_PLUS: &[u8] = b"SCRAM-SHA-256-PLUS";
/// A startup-phase message longer than this is not one to rewrite: passed on as it comes.
const MAX_FILTERED_MESSAGE: usize = 64 * 1024;

/// Takes SCRAM-SHA-256-PLUS out of a server's AuthenticationSASL on its way to a plain client
/// whose session goes to the server inside TLS: offered channel binding over a connection
/// without TLS, libpq refuses to log in. Without the offer the client says it cannot bind (`n`),
/// which the server accepts. Every other byte passes unchanged; after ReadyForQuery or an
/// ErrorResponse it passes everything as it comes.
#[derive(Debug, Default)]
pub struct SaslFilter {
    held: Vec<u8>,
    off: bool,
}

impl SaslFilter {
    /// The server's next bytes in; out, what can be passed on now (whole messages, rewritten).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.off {
            return chunk.to_vec();
        }
        self.held.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.held.len());
        let mut at = 0;
        while self.held.len() - at >= 5 {
            let h = &self.held[at..];
            let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
            if !(4..=MAX_FILTERED_MESSAGE).contains(&len) {
                self.off = true;
                break;
            }
            if h.len() < 1 + len {
                break;
            }
            let message = &h[..1 + len];
            match message[0] {
                b'R' => out.extend_from_slice(&without_scram_plus(message)),
                b'Z' | b'E' => {
                    out.extend_from_slice(message);
                    self.off = true;
                }
                _ => out.extend_from_slice(message),
            }
            at += 1 + len;
            if self.off {
                break;
            }
        }
        if self.off {
            out.extend_from_slice(&self.held[at..]);
            self.held.clear();
        } else {
            self.held.drain(..at);
        }
        out
    }

    /// Whatever is held back (part of a message), to pass on when filtering stops.
    pub fn take_rest(&mut self) -> Vec<u8> {
        self.off = true;
        std::mem::take(&mut self.held)
    }
}

/// An AuthenticationSASL (`R`, code 10, NUL-terminated mechanism names, an empty one last)
/// without SCRAM-SHA-256-PLUS; any other message as it is.
fn without_scram_plus(message: &[u8]) -> Vec<u8> {
    if message.len() < 9 || message[5..9] != 10u32.to_be_bytes() {
        return message.to_vec();
    }
    let names: Vec<&[u8]> = message[9..]
        .split(|&b| b == 0)
        .take_while(|name| !name.is_empty())
        .filter(|name| *name != SCRAM_PLUS)
        .collect();
    let body_len = 4 + 4 + names.iter().map(|n| n.len() + 1).sum::<usize>() + 1;
    let mut out = Vec::with_capacity(1 + body_len);
    out.push(b'R');
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    out.extend_from_slice(&10u32.to_be_bytes());
    for name in names {
        out.extend_from_slice(name);
        out.push(0);
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl(names: &[&str]) -> Vec<u8> {
        let mut body = 10u32.to_be_bytes().to_vec();
        for n in names {
            body.extend_from_slice(n.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut m = vec![b'R'];
        m.extend_from_slice(&(4 + body.len() as u32).to_be_bytes());
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn scram_plus_is_taken_out_of_the_offer_in_any_chunking() {
        let offer = sasl(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
        let ready = [b'Z', 0, 0, 0, 5, b'I'];
        let after = b"D-anything-after-startup";
        let stream: Vec<u8> = [&offer[..], &ready, after].concat();
        let expected: Vec<u8> = [&sasl(&["SCRAM-SHA-256"])[..], &ready, after].concat();
        for size in [1, 3, 7, stream.len()] {
            let mut f = SaslFilter::default();
            let mut out = Vec::new();
            for chunk in stream.chunks(size) {
                out.extend(f.feed(chunk));
            }
            out.extend(f.take_rest());
            assert_eq!(out, expected, "chunks of {size}");
        }
    }

    #[test]
    fn other_messages_and_offers_pass_unchanged() {
        let plain = sasl(&["SCRAM-SHA-256"]);
        let ok = [b'R', 0, 0, 0, 8, 0, 0, 0, 0];
        let mut f = SaslFilter::default();
        assert_eq!(f.feed(&plain), plain);
        assert_eq!(f.feed(&ok), ok);
        // Not Postgres (an absurd length): passed through, never held.
        let mut f = SaslFilter::default();
        let absurd = [b'R', 0xff, 0xff, 0xff, 0xff, 1];
        assert_eq!(f.feed(&absurd), absurd);
    }
}
