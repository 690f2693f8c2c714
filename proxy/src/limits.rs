//! Resource limits enforced: what one hostile or broken client may cost the proxy. The settings
//! and their defaults are [`crate::config::Limits`]; they are enforced per connection in
//! [`connections`] (how many connections, how long a request header may take) and per request in
//! [`request`] (URI, header and body sizes).
//!
//! What Pingora 0.9 already does without us, and so is not repeated here: a request header over
//! 1 MiB or with more than 256 header lines, a malformed request line, duplicate differing or
//! non-numeric `Content-Length`, a non-chunked final `Transfer-Encoding` and `Transfer-Encoding`
//! in HTTP/1.0 are all answered 400 before any hook runs. Its per-read timeout (60 s) is the only
//! bound on a slow client, which a client trickling one byte a minute never trips.

pub mod connections;
pub mod request;
