//! The input is an envelope's body, sealed with a correct checksum, so that
//! the header checks, the capture decoders and the guard see every mutation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    serfn_fuzz::install_panic_hook();
    serfn_fuzz::decode_everything(&serfn_fuzz::seal(data));
});
