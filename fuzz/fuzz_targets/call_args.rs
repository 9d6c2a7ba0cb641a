//! `DynFn::call_bytes` (and its `_mut` and `_once` siblings) on raw
//! argument bytes: `[sample index][argument bytes]`, checked against the
//! typed decoder and the typed call.
#![no_main]

use libfuzzer_sys::fuzz_target;

thread_local! {
    static SAMPLES: Vec<serfn_fuzz::Sample> = serfn_fuzz::samples();
}

fuzz_target!(|data: &[u8]| {
    serfn_fuzz::install_panic_hook();
    let Some((&index, args)) = data.split_first() else {
        return;
    };
    SAMPLES.with(|samples| (samples[index as usize % samples.len()].check_args)(args));
});
