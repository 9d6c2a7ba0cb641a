//! Every handle type's `from_bytes` on raw bytes; the checksum stops most
//! mutations (`envelope_crc` gets past it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    serfn_fuzz::install_panic_hook();
    serfn_fuzz::decode_everything(data);
});
