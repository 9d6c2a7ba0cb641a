//! The worker's frame loop, in process: the input is what the pool would
//! write to the worker's socket. Its answers then go through the parent's
//! decoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serfn::__private::fuzz;

fuzz_target!(|data: &[u8]| {
    serfn_fuzz::install_panic_hook();
    let answers = fuzz::worker_frames(data);
    let _ = fuzz::parent_answers::<i64>(&answers, 1);
});
