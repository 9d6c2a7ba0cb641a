//! The parent's decoding of a worker's answers: `[output type][item
//! count][answer frames]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serfn::__private::fuzz;

fuzz_target!(|data: &[u8]| {
    serfn_fuzz::install_panic_hook();
    let [kind, count, frames @ ..] = data else {
        return;
    };
    let count = u32::from(*count);
    // f64 and u8 take the one-pass path of plain numbers.
    match kind % 5 {
        0 => drop(fuzz::parent_answers::<i64>(frames, count)),
        1 => drop(fuzz::parent_answers::<Vec<i32>>(frames, count)),
        2 => drop(fuzz::parent_answers::<f64>(frames, count)),
        3 => drop(fuzz::parent_answers::<u8>(frames, count)),
        _ => drop(fuzz::parent_answers::<String>(frames, count)),
    }
});
