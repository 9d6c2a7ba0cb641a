//! Async functions on a pool's real worker processes: many items in flight
//! per worker, each with its own timeout and panic, beside sync functions
//! on the same worker. Without the `tokio` feature, a typed refusal.

serfn::test_support!();

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serfn::{AsyncSerFn, Error, Pool, SerFn};

/// Items of this worker process running now, and the most seen at once.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST: AtomicUsize = AtomicUsize::new(0);

/// Waits `ms`, then gives `x * 2`, the most items seen in flight at once
/// in its worker, and the worker's pid.
fn nap() -> AsyncSerFn<(u64, u64), (u64, usize, u32)> {
    serfn::closure!("pool_async::nap", [], async move |x: u64,
                                                       ms: u64|
                -> (u64, usize, u32) {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        MOST.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        (x * 2, MOST.load(Ordering::SeqCst), std::process::id())
    })
}

/// Waits `ms` (forever, for `u64::MAX`) or panics on 0; gives the worker's pid.
fn flaky() -> AsyncSerFn<u64, u32> {
    serfn::closure!("pool_async::flaky", [], async move |ms: u64| -> u32 {
        assert!(ms != 0, "asked to fail");
        tokio::time::sleep(Duration::from_millis(ms.min(3_600_000))).await;
        std::process::id()
    })
}

fn pid() -> SerFn<(), u32> {
    serfn::closure!("pool_async::pid", [], move || -> u32 { std::process::id() })
}

#[cfg(feature = "tokio")]
#[test]
fn two_thousand_waiting_items_overlap_within_the_limit_with_exact_results() {
    let pool = Pool::builder()
        .workers(2)
        .max_concurrent(200)
        .build()
        .unwrap();
    let items: Vec<(u64, u64)> = (0..2_000).map(|x| (x, 100)).collect();
    let results: Vec<(u64, usize, u32)> = pool
        .map(&nap(), &items)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(results.len(), 2_000);
    for (x, (doubled, _, _)) in results.iter().enumerate() {
        assert_eq!(*doubled, 2 * x as u64);
    }
    // Each worker overlapped items, never more than the limit.
    let most = results.iter().map(|r| r.1).max().unwrap();
    assert_eq!(most, 200, "at most 200 at once, and that many were reached");
    let pids: std::collections::BTreeSet<u32> = results.iter().map(|r| r.2).collect();
    assert_eq!(pids.len(), 2, "both workers took items");
}

#[cfg(feature = "tokio")]
#[test]
fn a_timeout_or_a_panic_fails_its_item_only_and_keeps_the_worker() {
    let pool = Pool::builder()
        .workers(1)
        .max_concurrent(10)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let before = pool.worker_pids();
    // One chunk: the three run at once on the one worker.
    let results: Vec<serfn::Result<u32>> = pool.map(&flaky(), [u64::MAX, 0, 50, 100]).collect();
    assert!(
        matches!(&results[0], Err(Error::Timeout { name, timeout })
            if name == "test_pool_async::pool_async::flaky" && *timeout == Duration::from_millis(500)),
        "{:?}",
        results[0]
    );
    assert!(
        matches!(&results[1], Err(Error::Panicked { message, .. }) if message == "asked to fail"),
        "{:?}",
        results[1]
    );
    // The items in flight beside them completed, on the same worker.
    assert_eq!(results[2].as_ref().unwrap(), &before[0]);
    assert_eq!(results[3].as_ref().unwrap(), &before[0]);
    assert_eq!(pool.worker_pids(), before, "the worker was not killed");
    assert_eq!(pool.call(&pid(), ()).unwrap(), before[0]);
}

#[cfg(feature = "tokio")]
#[test]
fn sync_and_async_functions_share_a_worker_and_pipelines_run_there() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let worker = pool.call(&pid(), ()).unwrap();
    let async_pids: Vec<u32> = pool
        .map(&flaky(), [1, 2, 3])
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(async_pids, [worker; 3]);
    assert_eq!(pool.call(&pid(), ()).unwrap(), worker);

    // sync, async, sync: decoded in the worker, called through its stages.
    let parse = serfn::closure!("pool_async::parse", [], move |s: String| -> u64 {
        s.parse().unwrap()
    });
    let add = serfn::closure!("pool_async::add", [n: u64 = 7], async move |x: u64| -> u64 {
        tokio::task::yield_now().await;
        x + n
    });
    let show = serfn::closure!("pool_async::show", [], move |x: u64| -> String {
        format!("<{x}>")
    });
    let pipeline = parse.then_async(add).then(show);
    let out: Vec<String> = pool
        .map(&pipeline, ["1", "20"].map(String::from))
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(out, ["<8>", "<27>"]);
}

/// `call`, `call_timeout` and `submit` take an async function as `map`
/// does: its item runs on the worker's runtime, a timeout drops it there.
#[cfg(feature = "tokio")]
#[test]
fn one_call_of_an_async_function_runs_on_the_worker_and_times_out_there() {
    use serfn::Executor;
    let pool = Pool::builder().workers(1).build().unwrap();
    let worker = pool.worker_pids()[0];
    assert_eq!(pool.call(&flaky(), 20).unwrap(), worker);
    assert_eq!(pool.submit(&flaky(), 20).wait().unwrap(), worker);
    let late = pool.call_timeout(&flaky(), u64::MAX, Duration::from_millis(300));
    assert!(
        matches!(&late, Err(Error::Timeout { timeout, .. }) if *timeout == Duration::from_millis(300)),
        "{late:?}"
    );
    let failed = Executor::submit(&pool, &flaky(), 0).wait();
    assert!(
        matches!(&failed, Err(Error::Panicked { message, .. }) if message == "asked to fail"),
        "{failed:?}"
    );
    assert_eq!(Executor::call(&pool, &flaky(), 1).unwrap(), worker);
    assert_eq!(pool.worker_pids(), [worker], "the worker was not killed");
}

#[cfg(not(feature = "tokio"))]
#[test]
fn without_the_runtime_an_async_function_is_refused_and_the_worker_stays() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let before = pool.worker_pids();
    let results: Vec<serfn::Result<u32>> = pool.map(&flaky(), [1, 2]).collect();
    for result in results {
        assert!(
            matches!(&result, Err(Error::SignatureMismatch { expected, .. }) if expected.contains("`tokio` feature")),
            "{result:?}"
        );
    }
    assert_eq!(pool.call(&pid(), ()).unwrap(), before[0]);
}

#[test]
fn nap_is_registered() {
    // Keeps `nap` used in builds without the runtime.
    assert_eq!(nap().signature().kind(), serfn::Kind::Async);
}

/// A body that blocks its worker's thread instead of awaiting: no timer
/// fires in that worker, so the pool kills it past the items' timeouts
/// and a grace, and the items fail with the timeout.
#[cfg(feature = "tokio")]
#[test]
fn a_body_that_blocks_its_worker_is_bounded_by_a_kill() {
    let stuck = serfn::closure!("pool_async::stuck", [], async move |ms: u64| -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    });
    let pool = Pool::builder()
        .workers(1)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let before = pool.worker_pids();
    let results: Vec<serfn::Result<u64>> = pool.map(&stuck, [60_000, 1]).collect();
    for result in &results {
        assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    }
    assert_ne!(pool.call(&pid(), ()).unwrap(), before[0], "a new worker");
}
