//! The throughput of a function that waits 100 ms per item, written async
//! and written sync, on the same pool of 2 workers: the async one overlaps
//! up to `max_concurrent` items per worker, the sync one runs one at a time.
//!
//! `cargo run --release --features tokio --example async_throughput`
//! (`-- ITEMS_ASYNC ITEMS_SYNC` to change the 2,000 and 40 items; the sync
//! run is short because it takes 50 ms an item on 2 workers).

use std::time::{Duration, Instant};

use serfn::{AsyncSerFn, Pool, SerFn};

fn main() -> serfn::Result<()> {
    serfn::worker::init();
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let async_items = args.next().and_then(Result::ok).unwrap_or(2_000);
    let sync_items = args.next().and_then(Result::ok).unwrap_or(40);

    let wait_async: AsyncSerFn<u64, u64> =
        serfn::closure!("wait_async", [], async move |x: u64| -> u64 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            x + 1
        });
    let wait_sync: SerFn<u64, u64> = serfn::closure!("wait_sync", [], move |x: u64| -> u64 {
        std::thread::sleep(Duration::from_millis(100));
        x + 1
    });

    let pool = Pool::builder().workers(2).max_concurrent(200).build()?;
    // Warm: both workers up, both functions shipped.
    pool.map(&wait_sync, 0..2).for_each(drop);
    pool.map(&wait_async, 0..2).for_each(drop);

    let rate = |items: u64, run: &dyn Fn() -> serfn::Result<Vec<u64>>| -> serfn::Result<f64> {
        let start = Instant::now();
        let results = run()?;
        let seconds = start.elapsed().as_secs_f64();
        assert!(
            results.iter().zip(1..).all(|(&r, x)| r == x),
            "results exact"
        );
        Ok(items as f64 / seconds)
    };
    let sync_rate = rate(sync_items, &|| {
        pool.map(&wait_sync, 0..sync_items).collect()
    })?;
    let async_rate = rate(async_items, &|| {
        pool.map(&wait_async, 0..async_items).collect()
    })?;
    println!("sync  (std::thread::sleep 100 ms): {sync_items:>5} items, {sync_rate:>8.1} items/s");
    println!(
        "async (tokio::time::sleep 100 ms): {async_items:>5} items, {async_rate:>8.1} items/s"
    );
    println!(
        "async / sync: {:.0}x (2 workers, max_concurrent 200)",
        async_rate / sync_rate
    );
    Ok(())
}
