use std::cell::Cell;

fn main() {
    let calls = Cell::new(0u64);
    let _f: serfn::SerFn<u64, u64> =
        serfn::closure!("counted", [calls: Cell<u64>], move |x: u64| -> u64 { calls.get() + x });
}
