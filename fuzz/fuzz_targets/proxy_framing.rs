//! The proxy's own look at a raw request header (Transfer-Encoding with Content-Length): any
//! bytes, never a panic; a header naming both is always refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::service::reject::ambiguous_framing;

fuzz_target!(|data: &[u8]| {
    let verdict = ambiguous_framing(data);
    let lower = data.to_ascii_lowercase();
    let has = |name: &[u8]| {
        lower
            .split(|b| *b == b'\n')
            .skip(1)
            .any(|line| line.trim_ascii_start().starts_with(name) && line.contains(&b':'))
    };
    if verdict.is_none() {
        // Not refused: then it does not carry both headers as clean lines.
        assert!(!(has(b"transfer-encoding:") && has(b"content-length:")));
    }
});
