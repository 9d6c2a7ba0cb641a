// A stateful function goes to `fold`, which gives back each worker's state.

fn main() {
    let pool = serfn::Pool::new().unwrap();
    let sum = serfn::closure!(mut "sum", [total: u64 = 0], move |x: u64| -> u64 {
        *total += x;
        *total
    });
    let _ = pool.map(&sum, 0..10u64);
}
