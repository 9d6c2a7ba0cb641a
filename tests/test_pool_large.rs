//! A capture larger than the default limits, through a pool whose limits
//! allow it: shipped (straight from its bytes, not copied into the slot's
//! buffer) and decoded under the pool's limits, not the defaults.

serfn::test_support!();

use serfn::{Error, Limits, Pool, SerFn};

/// Above [`Limits::DEFAULT_MAX_BYTES`]; a `String`, cheap to encode in a debug build.
const LEN: usize = Limits::DEFAULT_MAX_BYTES + (1 << 20);

fn text_len() -> SerFn<u64, u64> {
    let text = "a".repeat(LEN);
    serfn::closure!("test_pool_large::text_len", [text: String], move |x: u64| -> u64 {
        x + text.len() as u64
    })
}

#[test]
fn a_capture_over_the_default_limits_runs_under_a_pools_larger_limits() {
    let pool = Pool::builder()
        .workers(1)
        .limits(Limits::new().max_bytes(2 * LEN))
        .build()
        .expect("pool starts");
    let f = text_len();
    assert_eq!(pool.call(&f, 1).expect("the call runs"), LEN as u64 + 1);
    // Loaded once: the second call and a small map reuse it.
    assert_eq!(pool.call(&f, 2).expect("the call runs"), LEN as u64 + 2);
    let results: Vec<u64> = pool
        .map(&f, 0..4)
        .collect::<serfn::Result<_>>()
        .expect("map");
    assert_eq!(results, (0..4).map(|x| x + LEN as u64).collect::<Vec<_>>());
    assert_eq!(pool.stats().functions_shipped, 1);
}

#[test]
fn the_same_capture_under_the_default_limits_is_too_large_at_the_caller() {
    let pool = Pool::builder().workers(1).build().expect("pool starts");
    match pool.call(&text_len(), 1) {
        Err(Error::TooLarge { limit, .. }) => assert_eq!(limit, Limits::DEFAULT_MAX_BYTES),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}
