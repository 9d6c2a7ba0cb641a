//! One generic function against both executors: a `Pool` and a
//! `RedisExecutor` on a real Redis with real worker processes, with owned
//! and borrowed items. Run with `cargo test --features redis,async --test
//! test_executor` (the server: `SERFN_REDIS_URL`, see tests/support/redis.rs).

serfn::test_support!();

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use redis_support::{prefix, Server, Worker, WorkerSetup};
use serfn::redis::RedisExecutor;
use serfn::{Error, Executor, Pool, SerFn, SerFnMut, SerFnOnce};

/// The fleet's worker side of this binary.
#[test]
fn redis_worker_entry() {
    redis_support::serve_from_env();
}

fn square() -> SerFn<u64, u64> {
    serfn::closure!("test_executor::square", [], move |x: u64| -> u64 {
        assert!(x != 13, "unlucky {x}");
        x * x
    })
}

fn sum() -> SerFnMut<u64, u64> {
    serfn::closure!(mut "test_executor::sum", [total: u64 = 0], move |x: u64| -> u64 {
        *total += x;
        *total
    })
}

/// Everything the trait offers, checked against a sequential run. Compiled
/// once, run on both executors.
fn exercise<E: Executor>(on: &E) {
    let f = square();
    let items: Vec<u64> = (0..2_000).filter(|&x| x != 13).collect();
    let expected: Vec<u64> = items.iter().map(|&x| x * x).collect();

    let owned: Vec<u64> = on
        .map(&f, items.clone())
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(owned, expected);
    let borrowed: Vec<u64> = on.map(&f, &items).collect::<serfn::Result<_>>().unwrap();
    assert_eq!(borrowed, expected);
    let by_iter: Vec<u64> = on
        .map(&f, items.iter())
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(by_iter, expected);
    assert_eq!(on.map(&f, vec![]).count(), 0);
    assert_eq!(on.map(&f, std::iter::empty()).count(), 0);

    let mut unordered = vec![0; items.len()];
    let mut seen = 0;
    for (index, result) in on.map_unordered(&f, &items) {
        unordered[index] = result.unwrap();
        seen += 1;
    }
    assert_eq!((seen, unordered), (items.len(), expected.clone()));

    // Each item's error is its own, typed, in its place.
    let results: Vec<_> = on.map(&f, [12, 13, 14]).collect();
    assert!(
        matches!(&results[1], Err(Error::Panicked { message, .. }) if message.contains("unlucky 13"))
    );
    assert_eq!(
        (results[0].as_ref().ok(), results[2].as_ref().ok()),
        (Some(&144), Some(&196))
    );

    assert_eq!(on.call(&f, 9).unwrap(), 81);
    assert!(matches!(on.call(&f, 13), Err(Error::Panicked { .. })));
    let tasks: Vec<_> = (1..=5).map(|x| on.submit(&f, x)).collect();
    let got: Vec<u64> = tasks.into_iter().map(|t| t.wait().unwrap()).collect();
    assert_eq!(got, [1, 4, 9, 16, 25]);

    let words = vec!["one".to_owned(), "machine".to_owned(), "or many".to_owned()];
    let join = serfn::closure!(once "test_executor::join", [words: Vec<String>], move |sep: String| -> String {
        words.join(&sep)
    });
    assert_eq!(
        on.call_once(join, " ".into()).unwrap(),
        "one machine or many"
    );

    // However many states come back, combined they saw every item once.
    let mut states = on.fold(&sum(), &items).unwrap();
    assert!(!states.is_empty());
    let total: u64 = states.iter_mut().map(|state| state.call_mut(0)).sum();
    assert_eq!(total, items.iter().sum::<u64>());
    // Handles converted to a later kind keep working: an `Fn` folded (no
    // state to carry), an `FnMut` called once (its state dropped).
    let mut plain = on.fold(&SerFnMut::from(square()), [2u64, 3]).unwrap();
    assert_eq!(plain[0].call_mut(4), 16);
    assert!(matches!(
        on.fold(&SerFnMut::from(square()), [13u64]),
        Err(Error::Panicked { .. })
    ));
    assert_eq!(on.call_once(SerFnOnce::from(sum()), 5).unwrap(), 5);
    assert_eq!(on.call_once(SerFnOnce::from(square()), 5).unwrap(), 25);
    // A panic inside a fold is the fold's error.
    let picky = serfn::closure!(mut "test_executor::picky", [total: u64 = 0], move |x: u64| -> u64 {
        assert!(x != 13, "unlucky {x}");
        *total += x;
        *total
    });
    assert!(matches!(
        on.fold(&picky, [1, 13, 2]),
        Err(Error::Panicked { .. })
    ));
}

/// The async forms, generic too: results as they come, the same errors.
#[cfg(feature = "async")]
fn exercise_async<E: Executor>(on: &E) {
    use futures_core::Stream;

    let f = square();
    let items: Vec<u64> = (0..1_000).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut ordered = Vec::new();
        let mut stream = std::pin::pin!(on.map_stream(&f, &items));
        while let Some(result) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            ordered.push(result);
        }
        assert_eq!(ordered.len(), items.len());
        assert!(matches!(ordered[13], Err(Error::Panicked { .. })));
        assert!(ordered
            .iter()
            .enumerate()
            .all(|(i, r)| i == 13 || r.as_ref().ok() == Some(&((i * i) as u64))));

        let mut seen = vec![false; items.len()];
        let mut stream = std::pin::pin!(on.map_unordered_stream(&f, items.clone()));
        while let Some((index, result)) =
            std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
        {
            assert_eq!(result.is_err(), index == 13);
            seen[index] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(on.call_async(&f, 12).await.unwrap(), 144);
    });
}

/// A fleet's stream waits on Redis on a thread of its own: a ticker on the
/// same single-threaded runtime keeps ticking (a read of Redis blocks for
/// up to 500 ms, which would show as a gap).
#[cfg(feature = "async")]
fn ticker_keeps_ticking(fleet: &RedisExecutor) {
    use futures_core::Stream;
    use std::time::{Duration, Instant};

    const PERIOD: Duration = Duration::from_millis(10);
    let nap = serfn::closure!("test_executor::nap", [], move |ms: u64| -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let (sum, longest) = local.block_on(&runtime, async {
        let stop = std::rc::Rc::new(std::cell::Cell::new(false));
        let ticking = stop.clone();
        let ticker = tokio::task::spawn_local(async move {
            let mut longest = Duration::ZERO;
            while !ticking.get() {
                let before = Instant::now();
                tokio::time::sleep(PERIOD).await;
                longest = longest.max(before.elapsed());
            }
            longest
        });
        tokio::time::sleep(PERIOD).await;
        // 200 items of 10 ms on two workers: a second of waiting on Redis.
        let mut stream = fleet.map_stream(&nap, vec![10u64; 200]);
        let mut sum = 0;
        while let Some(ms) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await
        {
            sum += ms.unwrap();
        }
        stop.set(true);
        (sum, ticker.await.unwrap())
    });
    assert_eq!(sum, 2_000);
    // A multi-threaded runtime's `spawn` may move it between threads.
    fn is_send<T: Send>(_: &T) {}
    let items: Vec<u64> = vec![1];
    is_send(&fleet.map_stream(&nap, &items));
    is_send(&fleet.map_unordered_stream(&nap, 0..1u64));
    eprintln!("fleet stream: the ticker's longest gap {longest:?} (period {PERIOD:?})");
    assert!(
        longest <= PERIOD + Duration::from_millis(50),
        "the runtime was held for {longest:?}"
    );
}

#[test]
fn one_generic_function_runs_on_a_pool() {
    let pool = Pool::builder().workers(2).build().unwrap();
    exercise(&pool);
    #[cfg(feature = "async")]
    exercise_async(&pool);
}

#[test]
fn one_generic_function_runs_on_a_fleet() {
    let server = Server::shared();
    let prefix = prefix("executor");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        ..Default::default()
    };
    let _workers: Vec<Worker> = (0..2).map(|_| Worker::start(&server.url, &setup)).collect();
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .build()
        .unwrap();
    exercise(&fleet);
    #[cfg(feature = "async")]
    exercise_async(&fleet);
    #[cfg(feature = "async")]
    ticker_keeps_ticking(&fleet);
    // The fleet's fold is sequential: one state, which saw every item.
    let mut states = fleet.fold(&sum(), 1..=100u64).unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].call_mut(0), 5050);
}

/// A fleet's stream through a Redis restart (without persistence: the job
/// is lost): the results before it, then the broker's typed error for
/// every item left, and the stream ends; as the blocking map does.
#[cfg(feature = "async")]
#[test]
fn a_fleet_stream_through_a_lost_broker_ends_with_typed_errors() {
    use futures_core::Stream;
    use std::time::{Duration, Instant};

    let server = Server::own();
    let prefix = prefix("stream-restart");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        ..Default::default()
    };
    let _worker = Worker::start(&server.url, &setup);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .chunk_size(1)
        .in_flight(4)
        .reconnect(Duration::from_secs(5))
        .build()
        .unwrap();
    let slow = serfn::closure!("test_executor::slow", [], move |x: u64| -> u64 {
        std::thread::sleep(Duration::from_millis(20));
        x
    });
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let results: Vec<serfn::Result<u64>> = runtime.block_on(async {
        let mut stream = fleet.map_stream(&slow, 0..200u64);
        let mut results = Vec::new();
        while let Some(result) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await
        {
            if results.len() == 5 {
                server.kill();
                server.restart();
            }
            results.push(result);
        }
        results
    });
    assert_eq!(results.len(), 200);
    assert!(results[..5]
        .iter()
        .enumerate()
        .all(|(i, r)| r.as_ref().ok() == Some(&(i as u64))));
    let first_error = results
        .iter()
        .position(|r| r.is_err())
        .expect("an error after the restart");
    assert!(results[first_error..]
        .iter()
        .all(|r| matches!(r, Err(Error::Broker { .. }))));
    assert!(started.elapsed() < Duration::from_secs(30));
}
