//! pgbalancer's reader of a client's first packet: any bytes give a packet or an error, never a
//! panic or a read past the 10 000-byte limit; a packet read back from its encoding is the same.
#![no_main]

use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use pgbalancer::protocol::{read_first_packet, MAX_STARTUP_PACKET};

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let Ok(packet) = block_on(read_first_packet(&mut input)) else {
        return;
    };
    let consumed = data.len() - input.len();
    assert!(consumed <= MAX_STARTUP_PACKET, "read {consumed} bytes");
    let encoded = packet.encode();
    assert_eq!(
        &encoded[..],
        &data[..consumed],
        "encode gives back the bytes read"
    );
    let again = block_on(read_first_packet(&mut &encoded[..])).expect("its own encoding parses");
    assert_eq!(again, packet);
});
