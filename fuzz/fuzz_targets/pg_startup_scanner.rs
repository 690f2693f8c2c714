//! pgbalancer's scanner of the server's startup messages (for BackendKeyData): any bytes, cut into
//! any chunks, never panic, and the verdict does not depend on where the chunks were cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbalancer::protocol::{Scan, StartupScanner};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let whole = StartupScanner::default().feed(bytes);

    let mut pieces = StartupScanner::default();
    let mut verdict = Scan::More;
    let step = usize::from(cut).max(1);
    for chunk in bytes.chunks(step) {
        verdict = pieces.feed(chunk);
        if verdict != Scan::More {
            break;
        }
    }
    assert_eq!(whole, verdict, "one chunk vs chunks of {step}");
});
