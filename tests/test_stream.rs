//! The pool's async forms (feature `async`): streams that block no runtime
//! thread, and cancellation by dropping. Run with `cargo test --features
//! async --test test_stream` (the ticker test in release: see below).

serfn::test_support!();

use std::future::poll_fn;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_core::Stream;
use serfn::{Error, Pool, SerFn};

async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

fn pool(workers: usize) -> Pool {
    Pool::builder()
        .workers(workers)
        .build()
        .expect("pool starts")
}

fn square() -> SerFn<u64, u64> {
    serfn::closure!("test_stream::square", [], move |x: u64| -> u64 {
        assert!(x != 13, "unlucky {x}");
        x.wrapping_mul(x)
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// The ticker's period.
const PERIOD: Duration = Duration::from_millis(10);

/// A task that ticks every `PERIOD` until told to stop; gives the longest
/// time between two ticks.
async fn tick(stop: std::rc::Rc<std::cell::Cell<bool>>) -> (Duration, u32) {
    let (mut longest, mut ticks) = (Duration::ZERO, 0);
    while !stop.get() {
        let before = Instant::now();
        tokio::time::sleep(PERIOD).await;
        longest = longest.max(before.elapsed());
        ticks += 1;
    }
    (longest, ticks)
}

/// A million items stream through the pool while a ticker on the same
/// single-threaded runtime keeps ticking: the stream never holds the
/// thread for long, whether it waits on workers (it is woken) or results
/// pour in (it yields every 128 results).
#[test]
fn a_ticker_keeps_ticking_while_a_million_items_stream_through() {
    let items: u64 = 1_000_000;
    let pool = pool(2);
    let f = square();
    let rt = runtime();
    let local = tokio::task::LocalSet::new();
    let started = Instant::now();
    let (sum, count, (longest, ticks)) = local.block_on(&rt, async {
        let stop = std::rc::Rc::new(std::cell::Cell::new(false));
        let ticker = tokio::task::spawn_local(tick(stop.clone()));
        // Let the ticker start before the map.
        tokio::time::sleep(PERIOD).await;
        let mut stream = pool.map_stream(&f, (0..items).filter(|&x| x != 13));
        let (mut sum, mut count) = (0u64, 0u64);
        let mut slowest = Duration::ZERO;
        let mut timed = |cx: &mut std::task::Context<'_>| {
            let at = Instant::now();
            let poll = Pin::new(&mut stream).poll_next(cx);
            slowest = slowest.max(at.elapsed());
            poll
        };
        while let Some(result) = poll_fn(&mut timed).await {
            sum = sum.wrapping_add(result.unwrap());
            count += 1;
        }
        stop.set(true);
        eprintln!("the slowest poll of the stream: {slowest:?}");
        (sum, count, ticker.await.unwrap())
    });
    let elapsed = started.elapsed();
    let expected = (0..items)
        .filter(|&x| x != 13)
        .fold(0u64, |s, x| s.wrapping_add(x * x));
    assert_eq!((count, sum), (items - 1, expected));
    eprintln!(
        "{items} items in {elapsed:?}; {ticks} ticks, the longest gap {longest:?} (period {PERIOD:?})"
    );
    assert!(
        longest <= PERIOD + Duration::from_millis(50),
        "the runtime was held for {longest:?}"
    );
}

/// The same typed error per item as the blocking map, in both streams.
#[test]
fn streams_give_each_item_its_own_typed_error() {
    let pool = pool(2);
    let f = square();
    let (ordered, unordered) = runtime().block_on(async {
        let mut ordered = Vec::new();
        let mut stream = pool.map_stream(&f, [12u64, 13, 14]);
        while let Some(result) = next(&mut stream).await {
            ordered.push(result);
        }
        let mut unordered = Vec::new();
        let items: Vec<u64> = (0..100).collect();
        let mut stream = pool.map_unordered_stream(&f, &items);
        while let Some(pair) = next(&mut stream).await {
            unordered.push(pair);
        }
        (ordered, unordered)
    });
    assert!(
        matches!(&ordered[1], Err(Error::Panicked { message, .. }) if message.contains("unlucky 13"))
    );
    assert_eq!(
        (ordered[0].as_ref().ok(), ordered[2].as_ref().ok()),
        (Some(&144), Some(&196))
    );
    assert_eq!(unordered.len(), 100);
    for (index, result) in unordered {
        match index {
            13 => assert!(matches!(result, Err(Error::Panicked { .. }))),
            _ => assert_eq!(result.unwrap(), (index * index) as u64),
        }
    }
    // Progress as the blocking map reports it.
    let mut last = None;
    let items: Vec<u64> = (0..1_000).collect();
    let stream = pool
        .map(&f, &items)
        .chunk_size(100)
        .on_progress(|p| last = Some(p))
        .into_stream();
    let n = runtime().block_on(async {
        let mut stream = stream;
        let mut n = 0;
        while next(&mut stream).await.is_some() {
            n += 1;
        }
        n
    });
    assert_eq!(n, 1_000);
    let last = last.expect("progress reported");
    assert_eq!((last.done, last.total), (1_000, Some(1_000)));
    let answer = runtime().block_on(pool.call_async(&f, 7)).unwrap();
    assert_eq!(answer, 49);
}

fn marks(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Dropping a map mid-way, as a stream or as the blocking iterator: the
/// chunks no worker had never run. Each item that runs leaves a file,
/// written by the worker.
#[test]
fn dropping_a_stream_mid_map_runs_nothing_not_yet_started() {
    dropped_mid_map(true);
}

#[test]
fn dropping_an_iterator_mid_map_runs_nothing_not_yet_started() {
    dropped_mid_map(false);
}

fn dropped_mid_map(stream: bool) {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("serfn-stream-drop-{}-{stream}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let at = dir.to_string_lossy().into_owned();
    let marked = serfn::closure!("test_stream::marked", [at: String], move |x: u64| -> u64 {
        std::fs::write(format!("{at}/{x}"), b"ran").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        x
    });
    let workers = 2;
    let pool = pool(workers);
    let (items, taken) = (400u64, 6);
    let map = pool.map(&marked, 0..items).chunk_size(1);
    if stream {
        runtime().block_on(async {
            let mut stream = map.into_stream();
            for expected in 0..taken {
                assert_eq!(next(&mut stream).await.unwrap().unwrap(), expected);
            }
        });
    } else {
        let got: Vec<u64> = map.take(taken as usize).map(Result::unwrap).collect();
        assert_eq!(got, (0..taken).collect::<Vec<_>>());
    }
    // Whatever a worker had (one running, a few read ahead) finishes.
    std::thread::sleep(Duration::from_secs(2));
    let ran = marks(&dir);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(marks(&dir), ran, "items still run after the drop settled");
    // Each worker is sent at most a few chunks ahead of the one it runs.
    let bound = taken as usize + workers * 4;
    assert!(
        ran >= taken as usize && ran <= bound,
        "{ran} of {items} items ran after the map was dropped at {taken}: at most {bound} may"
    );
    eprintln!("{ran} of {items} items ran; the map was dropped after {taken}");
    // The pool goes on serving.
    assert_eq!(
        pool.map(&marked, [1_000u64]).next().unwrap().unwrap(),
        1_000
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn is_send<T: Send>(_: &T) {}
fn is_sync<T: Sync>(_: &T) {}

/// What a multi-threaded runtime's `spawn` needs: the pool shared by
/// reference, and its streams and tasks moved between threads.
#[test]
fn streams_and_tasks_can_move_between_threads() {
    let pool = pool(1);
    let f = square();
    let items: Vec<u64> = (0..10).collect();
    is_sync(&pool);
    let ordered = pool.map_stream(&f, &items);
    is_send(&ordered);
    let unordered = pool.map_unordered_stream(&f, 0..10u64);
    is_send(&unordered);
    let with_progress = pool
        .map(&f, items.clone())
        .on_progress(|_| {})
        .into_stream();
    is_send(&with_progress);
    let task = pool.call_async(&f, 3);
    is_send(&task);
    let results = std::thread::scope(|scope| {
        scope
            .spawn(move || runtime().block_on(collect(ordered)))
            .join()
            .unwrap()
    });
    assert_eq!(results.len(), 10);
    drop((unordered, with_progress));
    assert_eq!(runtime().block_on(task).unwrap(), 9);
}

async fn collect<S: Stream<Item = serfn::Result<u64>> + Unpin>(mut stream: S) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(result) = next(&mut stream).await {
        out.push(result.unwrap());
    }
    out
}
