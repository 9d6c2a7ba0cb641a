//! The pool against real worker processes (this test binary, re-executed):
//! results equal a sequential run, functions are shipped once per worker,
//! and the whole API (call, submit, futures, maps, fold) works.

serfn::test_support!();

use std::cell::Cell;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use serfn::{Error, Pool, SerFn, SerFnMut, SerFnOnce};

fn pool(workers: usize) -> Pool {
    Pool::builder()
        .workers(workers)
        .build()
        .expect("pool starts")
}

/// A function with real work per item, so chunks and orders matter.
fn collatz() -> SerFn<u64, u32> {
    serfn::closure!("test_pool::collatz", [], move |n: u64| -> u32 {
        let (mut n, mut steps) = (n.max(1), 0);
        while n != 1 {
            n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
            steps += 1;
        }
        steps
    })
}

fn scaled(factor: f64) -> SerFn<f64, f64> {
    serfn::closure!("test_pool::scaled", [factor: f64], move |x: f64| -> f64 { x * factor })
}

#[test]
fn map_equals_sequential_for_thousands_of_items_at_any_chunk_size() {
    let pool = pool(2);
    let f = collatz();
    let expected: Vec<u32> = (0..5_000u64).map(|n| f.call(n)).collect();
    for chunk in [None, Some(1), Some(7), Some(10_000)] {
        let map = pool.map(&f, 0..5_000u64);
        let map = match chunk {
            Some(size) => map.chunk_size(size),
            None => map,
        };
        let got: Vec<u32> = map.collect::<serfn::Result<_>>().unwrap();
        assert_eq!(got, expected, "chunk size {chunk:?}");
    }
    assert_eq!(pool.stats().tasks, 4 * 5_000);
}

#[test]
fn map_unordered_yields_every_index_once() {
    let pool = pool(2);
    let f = collatz();
    let mut got: Vec<(usize, u32)> = pool
        .map_unordered(&f, 0..3_000u64)
        .map(|(i, r)| (i, r.unwrap()))
        .collect();
    got.sort_unstable();
    let expected: Vec<(usize, u32)> = (0..3_000u64)
        .map(|n| (n as usize, f.call(n)))
        .enumerate()
        .map(|(i, (_, r))| (i, r))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn map_streams_an_endless_input_with_bounded_read_ahead() {
    let pool = pool(2);
    let pulled = Cell::new(0u64);
    let endless = (0u64..).inspect(|_| pulled.set(pulled.get() + 1));
    let first: Vec<u32> = pool
        .map(&collatz(), endless)
        .take(50_000)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(first.len(), 50_000);
    assert_eq!(first[27], 111);
    // What was read ahead is bounded by the chunks in flight, not the input.
    assert!(pulled.get() < 50_000 + 500_000, "pulled {}", pulled.get());
}

#[test]
fn a_one_mib_capture_over_10000_items_is_shipped_once_per_worker() {
    let pool = pool(2);
    let table: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let lookup: SerFn<u32, u8> = serfn::closure!("test_pool::lookup", [table: Vec<u8>], move |i: u32| -> u8 {
        table[i as usize % table.len()]
    });
    let got: Vec<u8> = pool
        .map(&lookup, 0..10_000u32)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    let stats = pool.stats();
    assert_eq!(stats.functions_shipped, 2, "{stats:?}");
    // About 1 MiB per worker plus the items, not 10,000 MiB.
    assert!(stats.bytes_sent < 3 << 20, "{stats:?}");
    assert_eq!(stats.tasks, 10_000);

    // A second map of the same function and capture reuses what the workers hold.
    let again: Vec<u8> = pool
        .map(&lookup, 0..100u32)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(again, got[..100]);
    assert_eq!(pool.stats().functions_shipped, 2);
    // Another capture is another function.
    let other = scaled(2.0);
    assert_eq!(pool.call(&other, 1.5).unwrap(), 3.0);
    assert!(pool.stats().functions_shipped >= 3);
}

#[test]
fn call_submit_and_call_once() {
    let pool = pool(2);
    let f = scaled(3.0);
    assert_eq!(pool.call(&f, 2.0).unwrap(), 6.0);
    let tasks: Vec<_> = (0..100).map(|i| pool.submit(&f, f64::from(i))).collect();
    let results: Vec<f64> = tasks.into_iter().map(|t| t.wait().unwrap()).collect();
    assert_eq!(
        results,
        (0..100).map(|i| 3.0 * f64::from(i)).collect::<Vec<_>>()
    );

    let words = vec!["owned".to_string(), "state".to_string()];
    let once: SerFnOnce<String, Vec<String>> = serfn::closure!(once "test_pool::push", [words: Vec<String>], move |w: String| -> Vec<String> {
        let mut words = words;
        words.push(w);
        words
    });
    assert_eq!(
        pool.call_once(once, "moved".into()).unwrap(),
        ["owned", "state", "moved"]
    );
    // A multi-argument function takes its arguments as a tuple.
    let add: SerFn<(i32, i32), i32> =
        serfn::closure!("test_pool::add", [], move |x: i32, y: i32| -> i32 { x + y });
    let sums: Vec<i32> = pool
        .map(&add, (0..10).map(|i| (i, 10 * i)))
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(sums, (0..10).map(|i| 11 * i).collect::<Vec<_>>());
}

/// Runs a future to completion on this thread: no runtime needed.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return output;
        }
        std::thread::park();
    }
}

#[test]
fn tasks_are_futures() {
    let pool = pool(2);
    let f = collatz();
    let (a, b) = (pool.submit(&f, 27), pool.submit(&f, 97));
    let both = block_on(async { (a.await.unwrap(), b.await.unwrap()) });
    assert_eq!(both, (111, 118));
}

#[test]
fn fold_gives_back_one_state_per_worker() {
    let pool = pool(2);
    let histogram: SerFnMut<u32, u64> = serfn::closure!(mut "test_pool::histogram", [counts: Vec<u64> = vec![0; 10]], move |x: u32| -> u64 {
        if x < 10 {
            counts[x as usize] += 1;
        }
        counts.iter().sum()
    });
    let mut states = pool
        .fold(&histogram, (0..10_000u32).map(|i| i % 10))
        .unwrap();
    assert_eq!(states.len(), 2);
    // Calling a state with an out-of-range value reads its total.
    let total: u64 = states.iter_mut().map(|s| s.call_mut(99)).sum();
    assert_eq!(total, 10_000);
    // The original is untouched: folding works on copies.
    assert_eq!(histogram.clone().call_mut(99), 0);
}

#[test]
fn progress_is_reported_up_to_the_total() {
    let pool = pool(2);
    let seen = Mutex::new(Vec::new());
    let n = pool
        .map(&collatz(), 0..2_000u64)
        .chunk_size(100)
        .on_progress(|p| seen.lock().unwrap().push((p.done, p.total)))
        .filter(Result::is_ok)
        .count();
    assert_eq!(n, 2_000);
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 20);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(seen.last(), Some(&(2_000, Some(2_000))));
}

#[test]
fn stdout_noise_from_user_code_breaks_nothing() {
    let pool = pool(2);
    let noisy: SerFn<u32, u32> = serfn::closure!("test_pool::noisy", [], move |x: u32| -> u32 {
        // Bytes that would look like frames if frames were on stdout.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&[0xff, 0, 0, 0, 0x82, 1, 2, 3]);
        let _ = writeln!(out, " item {x}");
        x + 1
    });
    let got: Vec<u32> = pool
        .map(&noisy, 0..500u32)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(got, (1..501).collect::<Vec<_>>());
}

/// A worker's typed batches reuse the `Vec`s of the last batch of the same
/// types: batches of other sizes in a row, one with panics, each answer
/// exactly their own items, as plain numbers and as strings.
#[test]
fn batches_of_other_sizes_in_a_row_answer_only_their_own_items() {
    let pool = pool(1);
    let halve: SerFn<f64, f64> = serfn::closure!("test_pool::halve", [], move |x: f64| -> f64 {
        assert!(x != 7.0, "seven");
        x / 2.0
    });
    let label: SerFn<String, String> =
        serfn::closure!("test_pool::label", [], move |s: String| -> String {
            assert!(s != "7", "seven");
            format!("<{s}>")
        });
    for (items, chunk) in [(5_000u32, 2_500), (30, 30), (1_200, 400), (9, 3)] {
        let got: Vec<Option<f64>> = pool
            .map(&halve, (0..items).map(f64::from))
            .chunk_size(chunk)
            .map(serfn::Result::ok)
            .collect();
        let want: Vec<Option<f64>> = (0..items)
            .map(|x| (x != 7).then(|| f64::from(x) / 2.0))
            .collect();
        assert_eq!(got, want, "{items} f64s in chunks of {chunk}");
        let got: Vec<Option<String>> = pool
            .map(&label, (0..items).map(|x| x.to_string()))
            .chunk_size(chunk)
            .map(serfn::Result::ok)
            .collect();
        let want: Vec<Option<String>> = (0..items)
            .map(|x| (x != 7).then(|| format!("<{x}>")))
            .collect();
        assert_eq!(got, want, "{items} strings in chunks of {chunk}");
    }
}

/// A chunk of megabytes goes to the socket straight from its job, in as
/// many writes as the socket takes, and every byte is counted as sent.
#[test]
fn chunks_of_megabytes_arrive_whole_and_are_counted() {
    let pool = pool(2);
    let items: Vec<f64> = (0..1_000_000).map(f64::from).collect();
    let got: Vec<f64> = pool
        .map(&scaled(3.0), items.iter().copied())
        .chunk_size(250_000)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(got.len(), items.len());
    assert!(got.iter().zip(&items).all(|(got, x)| *got == x * 3.0));
    let sent = pool.stats().bytes_sent;
    assert!(sent >= 8 * 1_000_000, "{sent} bytes sent for 8 MB of items");
}

/// Panics on the items that end in 13 (`unlucky 13`, `unlucky 113`, ...).
fn picky() -> SerFn<u32, u32> {
    serfn::closure!("test_pool::picky", [], move |x: u32| -> u32 {
        assert!(x % 100 != 13, "unlucky {x}");
        x
    })
}

#[test]
fn a_panic_fails_only_its_item_and_the_worker_lives_on() {
    let pool = pool(2);
    let pids = pool.worker_pids();
    let results: Vec<serfn::Result<u32>> = pool.map(&picky(), 0..1_000u32).collect();
    for (i, result) in results.iter().enumerate() {
        match result {
            Err(Error::Panicked { name, message, .. }) => {
                assert_eq!(i % 100, 13);
                assert!(name.ends_with("test_pool::picky"), "{name}");
                assert_eq!(message, &format!("unlucky {i}"));
            }
            Ok(x) => assert_eq!(*x as usize, i),
            Err(other) => panic!("item {i}: {other}"),
        }
    }
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 10);
    let stats = pool.stats();
    assert_eq!(stats.restarts, 0);
    let mut after = pool.worker_pids();
    after.sort_unstable();
    let mut before = pids;
    before.sort_unstable();
    assert_eq!(before, after, "no worker was replaced");
}

/// Each panic reaches the index of its own item, at any chunk size: a
/// chunk's results are handed out in runs between its panics.
#[test]
fn map_unordered_gives_each_panic_the_index_of_its_item() {
    let pool = pool(2);
    for chunk in [1, 7, 100, 1_000] {
        let mut seen = vec![false; 1_000];
        for (index, result) in pool.map_unordered(&picky(), 0..1_000u32).chunk_size(chunk) {
            assert!(
                !std::mem::replace(&mut seen[index], true),
                "index {index} twice"
            );
            match result {
                Err(Error::Panicked { message, .. }) => {
                    assert_eq!(message, format!("unlucky {index}"), "chunks of {chunk}");
                }
                Ok(x) => assert_eq!(x as usize, index, "chunks of {chunk}"),
                Err(other) => panic!("item {index}, chunks of {chunk}: {other}"),
            }
        }
        assert!(
            seen.iter().all(|&seen| seen),
            "chunks of {chunk}: an index is missing"
        );
    }
}

#[test]
fn pipelines_run_chunks_stage_by_stage_and_give_the_same_results() {
    let pool = pool(2);
    // Each stage runs over the whole chunk; a panic fails its item alone,
    // named after the pipeline, as item by item.
    let pipeline = scaled(2.0).then(scaled(0.5)).then(serfn::closure!(
        "test_pool::halve_or_panic",
        [],
        move |x: f64| -> f64 {
            assert!(x != 7.0, "seven");
            x / 2.0
        }
    ));
    let results: Vec<serfn::Result<f64>> = pool.map(&pipeline, (0..1_000).map(f64::from)).collect();
    for (i, result) in results.iter().enumerate() {
        match result {
            Ok(x) => assert_eq!(*x, i as f64 / 2.0),
            Err(Error::Panicked { name, message, .. }) => {
                assert_eq!((i, message.as_str()), (7, "seven"));
                assert_eq!(name, "serfn::then");
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
}

/// Whether the stage `k` of [`pass_unless`] fails `x`: its last digit is
/// `k`, or for stage 1, a run of items in a row.
fn fails(k: u64, x: u64) -> bool {
    x % 10 == k || (k == 1 && (40..46).contains(&x))
}

/// `x`, unless [`fails`]: then a panic naming `k`.
fn pass_unless(k: u64) -> SerFn<f64, f64> {
    serfn::closure!("test_pool::pass_unless", [k: u64], move |x: f64| -> f64 {
        assert!(!fails(*k, x as u64), "stage {k}");
        x
    })
}

#[test]
fn panics_in_different_stages_fail_their_own_items_in_order() {
    let pool = pool(2);
    let pair: SerFn<(f64, f64), f64> =
        serfn::closure!("test_pool::add_pair", [], move |p: (f64, f64)| -> f64 {
            p.0 + p.1
        });
    let typed = pass_unless(3)
        .then(pass_unless(1))
        .then(pass_unless(7))
        .then(scaled(2.0));
    // A bound stage does not run chunks: the pipeline runs item by item.
    let bound = pass_unless(3)
        .then(pass_unless(1))
        .then(pass_unless(7))
        .then(pair.bind(0.0))
        .then(scaled(2.0));
    for pipeline in [typed, bound] {
        for chunk in [1, 7, 100, 1_000] {
            let results: Vec<serfn::Result<f64>> = pool
                .map(&pipeline, (0..1_000).map(f64::from))
                .chunk_size(chunk)
                .collect();
            assert_eq!(results.len(), 1_000);
            for (i, result) in results.into_iter().enumerate() {
                let failed = [3, 1, 7].into_iter().find(|&k| fails(k, i as u64));
                match (failed, result) {
                    (Some(k), Err(Error::Panicked { message, .. })) => {
                        assert_eq!(message, format!("stage {k}"), "item {i}");
                    }
                    (None, Ok(x)) => assert_eq!(x, 2.0 * i as f64, "item {i}"),
                    (_, other) => panic!("item {i} in chunks of {chunk}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn adjacent_panics_in_one_chunk_fail_each_their_own_item() {
    // A chunk is called in runs between panics: two panics in a row, a
    // panic first and last in the chunk, each fails its item alone.
    let pool = pool(2);
    let flaky: SerFn<u32, u32> = serfn::closure!("test_pool::flaky", [], move |x: u32| -> u32 {
        assert!(!matches!(x % 10, 0 | 4 | 5 | 9), "flaky {x}");
        x * 3
    });
    for chunk in [1, 5, 10, 1_000] {
        let results: Vec<serfn::Result<u32>> =
            pool.map(&flaky, 0..1_000u32).chunk_size(chunk).collect();
        assert_eq!(results.len(), 1_000);
        for (i, result) in results.into_iter().enumerate() {
            match (i % 10, result) {
                (0 | 4 | 5 | 9, Err(Error::Panicked { message, .. })) => {
                    assert_eq!(message, format!("flaky {i}"));
                }
                (_, Ok(x)) => assert_eq!(x as usize, 3 * i, "item {i}"),
                (_, other) => panic!("item {i} in chunks of {chunk}: {other:?}"),
            }
        }
    }
}

#[test]
fn workers_get_the_environment_the_builder_sets() {
    let pool = Pool::builder()
        .workers(1)
        .env("SERFN_TEST_GREETING", "hello from the builder")
        .build()
        .unwrap();
    let read: SerFn<String, Option<String>> = serfn::closure!(
        "test_pool::read_env",
        [],
        move |name: String| -> Option<String> { std::env::var(name).ok() }
    );
    assert_eq!(
        pool.call(&read, "SERFN_TEST_GREETING".into())
            .unwrap()
            .as_deref(),
        Some("hello from the builder")
    );
    assert!(
        !serfn::worker::is_worker(),
        "the test process is not a worker"
    );
}

#[cfg(feature = "progress")]
#[test]
fn a_progress_bar_does_not_change_the_results() {
    let pool = pool(2);
    let got: Vec<u32> = pool
        .map(&collatz(), 0..2_000u64)
        .chunk_size(50)
        .progress_bar()
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(
        got,
        (0..2_000u64).map(|n| collatz().call(n)).collect::<Vec<_>>()
    );
}
