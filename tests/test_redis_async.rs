//! Async functions on a fleet's real worker processes: many items of a
//! task in flight on one worker, each with its own timeout and panic, the
//! worker living on.
//!
//! Run with `cargo test --features redis,tokio --test test_redis_async`; the
//! server is `SERFN_REDIS_URL` (see `tests/support/redis.rs`).

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use std::time::{Duration, Instant};

use redis_support::{prefix, Server, Worker, WorkerSetup};
use serfn::redis::RedisExecutor;
use serfn::{AsyncSerFn, Error, SerFn};

/// The worker's side of this binary: see `Worker::start`.
#[test]
fn redis_worker_entry() {
    redis_support::serve_from_env();
}

/// Waits `ms`, then gives `x * 2`.
fn nap() -> AsyncSerFn<(u64, u64), u64> {
    serfn::closure!("redis_async::nap", [], async move |x: u64,
                                                        ms: u64|
                -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        x * 2
    })
}

/// Waits `ms` (an hour, for `u64::MAX`) or panics on 0; gives the worker's pid.
fn flaky() -> AsyncSerFn<u64, u32> {
    serfn::closure!("redis_async::flaky", [], async move |ms: u64| -> u32 {
        assert!(ms != 0, "asked to fail");
        tokio::time::sleep(Duration::from_millis(ms.min(3_600_000))).await;
        std::process::id()
    })
}

fn pid() -> SerFn<(), u32> {
    serfn::closure!("redis_async::pid", [], move || -> u32 {
        std::process::id()
    })
}

fn one_worker(server: &Server, prefix: &str, max_concurrent: usize) -> Worker {
    let setup = WorkerSetup {
        prefix: prefix.to_owned(),
        max_concurrent: Some(max_concurrent),
        ..Default::default()
    };
    Worker::start(&server.url, &setup)
}

#[test]
fn four_hundred_waiting_items_overlap_on_one_worker_with_exact_results() {
    let server = Server::shared();
    let prefix = prefix("async_overlap");
    let _worker = one_worker(&server, &prefix, 200);
    // Tasks of the default 100 items for an async function: each one
    // round of the worker's items at once.
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .build()
        .unwrap();
    let items: Vec<(u64, u64)> = (0..400).map(|x| (x, 100)).collect();
    let started = Instant::now();
    let results: Vec<u64> = fleet
        .map(&nap(), items)
        .collect::<serfn::Result<_>>()
        .unwrap();
    // 40 s one after the other; printed, not asserted.
    println!(
        "400 items of 100 ms on 1 worker, max_concurrent(200): {:?}",
        started.elapsed()
    );
    assert_eq!(results, (0..400).map(|x| 2 * x).collect::<Vec<u64>>());
    assert_eq!(fleet.stats().tasks, 4, "tasks of 100 items");
}

#[test]
fn a_timeout_or_a_panic_fails_its_item_only_and_keeps_the_worker() {
    let server = Server::shared();
    let prefix = prefix("async_faults");
    let worker = one_worker(&server, &prefix, 10);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .chunk_size(4)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let before = fleet.call(&pid(), ()).unwrap();
    assert_eq!(before, worker.child.id());
    // One task: the four run at once on the one worker.
    let results: Vec<serfn::Result<u32>> = fleet.map(&flaky(), [u64::MAX, 0, 50, 100]).collect();
    assert!(
        matches!(&results[0], Err(Error::Timeout { name, timeout })
            if name.ends_with("redis_async::flaky") && *timeout == Duration::from_millis(500)),
        "{:?}",
        results[0]
    );
    assert!(
        matches!(&results[1], Err(Error::Panicked { message, .. }) if message == "asked to fail"),
        "{:?}",
        results[1]
    );
    // The items in flight beside them completed, on the same process.
    assert_eq!(results[2].as_ref().unwrap(), &before);
    assert_eq!(results[3].as_ref().unwrap(), &before);
    assert_eq!(
        fleet.call(&pid(), ()).unwrap(),
        before,
        "the worker lives on"
    );
    let mut worker = worker;
    assert!(worker.exited().is_none(), "the worker did not exit");
}

/// `call` and `submit` take an async function as `map` does, on the
/// executor and through `Executor`.
#[test]
fn one_call_of_an_async_function_runs_on_a_fleet_worker() {
    let server = Server::shared();
    let prefix = prefix("async_call");
    let worker = one_worker(&server, &prefix, 10);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let pid = worker.child.id();
    assert_eq!(fleet.call(&flaky(), 20).unwrap(), pid);
    assert_eq!(fleet.submit(&flaky(), 20).wait().unwrap(), pid);
    let late = serfn::Executor::call(&fleet, &flaky(), u64::MAX);
    assert!(
        matches!(&late, Err(Error::Timeout { timeout, .. }) if *timeout == Duration::from_millis(500)),
        "{late:?}"
    );
    let failed = serfn::Executor::submit(&fleet, &flaky(), 0).wait();
    assert!(
        matches!(&failed, Err(Error::Panicked { message, .. }) if message == "asked to fail"),
        "{failed:?}"
    );
    assert_eq!(fleet.call(&flaky(), 1).unwrap(), pid, "the worker lives on");
}

/// A body that blocks its worker's thread instead of awaiting: no timer
/// fires there, so the worker's heartbeat ends it past the items' timeout
/// per round and a grace, and the items fail with the timeout.
#[test]
fn a_body_that_blocks_its_worker_is_bounded_by_the_heartbeat() {
    let server = Server::shared();
    let prefix = prefix("async_stuck");
    let mut worker = one_worker(&server, &prefix, 10);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .chunk_size(2)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let stuck = serfn::closure!("redis_async::stuck", [], async move |ms: u64| -> u64 {
        std::thread::sleep(Duration::from_millis(ms)); // blocks, never yields
        ms
    });
    let results: Vec<serfn::Result<u64>> = fleet.map(&stuck, [5_000, 5_000]).collect();
    for result in &results {
        assert!(
            matches!(result, Err(Error::Timeout { timeout, .. }) if *timeout == Duration::from_millis(300)),
            "{result:?}"
        );
    }
    let status = worker.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(serfn::redis::TIMEOUT_EXIT_CODE));
}
