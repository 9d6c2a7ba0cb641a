//! A tokio service that keeps serving while a pool works for it: a ticker
//! task (the service's own work, which must not stall) runs on the
//! runtime's one thread while the same pool maps a CPU-bound sync function
//! and an I/O-bound async one (simulated latency: `tokio::time::sleep`).
//!
//! Both async forms at once: the driver's `map_stream` yields results as
//! they come without blocking the runtime's thread (no `spawn_blocking`),
//! and the async function's items overlap in the workers, up to
//! `max_concurrent` per worker.
//!
//! `cargo run --features tokio,async --example async_service`

use std::time::{Duration, Instant};

use futures_core::Stream;
use serfn::{AsyncSerFn, Pool, SerFn};

const TICK: Duration = Duration::from_millis(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First, before any runtime: a process the pool starts becomes a worker
    // here, and a worker starts a runtime of its own.
    serfn::worker::init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(serve())?)
}

async fn serve() -> serfn::Result<()> {
    let pool = Pool::builder().workers(2).max_concurrent(100).build()?;

    // CPU-bound: the number of primes below `n`, by trial division.
    let primes: SerFn<u64, u64> = serfn::closure!("primes_below", [], move |n: u64| -> u64 {
        (2..n)
            .filter(|&k| (2..).take_while(|d| d * d <= k).all(|d| k % d != 0))
            .count() as u64
    });
    // I/O-bound: a lookup that waits 50 ms, as a request would.
    let lookup: AsyncSerFn<u64, String> =
        serfn::closure!("lookup", [], async move |id: u64| -> String {
            tokio::time::sleep(Duration::from_millis(50)).await;
            format!("record-{id}")
        });

    // The service's own work: tick, and note the longest gap between ticks.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ticker = tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        let (mut ticks, mut worst, mut last) = (0u32, Duration::ZERO, Instant::now());
        let mut stopped = stopped;
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    worst = worst.max(last.elapsed());
                    last = Instant::now();
                    ticks += 1;
                }
                _ = &mut stopped => return (ticks, worst),
            }
        }
    });

    let started = Instant::now();
    // Two streams on the runtime's one thread, beside the ticker.
    let (cpu, io) = tokio::join!(
        collect(pool.map_stream(&primes, (0..400).map(|i| 20_000 + i))),
        collect(pool.map_stream(&lookup, 0..2_000u64)),
    );
    let (cpu, io) = (cpu?, io?);
    let elapsed = started.elapsed();
    let _ = stop.send(());
    let (ticks, worst) = ticker.await.expect("the ticker ran");

    assert_eq!(cpu[0], 2_262, "primes below 20,000");
    assert_eq!(cpu.len(), 400);
    assert!(io
        .iter()
        .enumerate()
        .all(|(i, s)| *s == format!("record-{i}")));
    println!(
        "400 prime counts (CPU-bound, sync) and 2,000 lookups (50 ms each, async) in {elapsed:.2?}"
    );
    println!("the ticker ticked {ticks} times every {TICK:?}; its longest gap: {worst:.2?}");
    assert!(
        worst < TICK + Duration::from_millis(50),
        "the service stalled for {worst:?}"
    );
    Ok(())
}

/// The stream's results in order, or its first error: awaited, so the
/// runtime's thread serves the ticker in between.
async fn collect<T>(stream: impl Stream<Item = serfn::Result<T>>) -> serfn::Result<Vec<T>> {
    let mut stream = std::pin::pin!(stream);
    let mut all = Vec::new();
    while let Some(result) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        all.push(result?);
    }
    Ok(all)
}
