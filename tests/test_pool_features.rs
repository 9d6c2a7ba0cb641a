//! The pool features Python's pools have (multiprocessing, loky, joblib),
//! against real worker processes: an initializer per worker, recycling
//! after N items, cancelling a task, per-call timeouts, close and join,
//! and maps over borrowed items.

serfn::test_support!();

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use std::path::{Path, PathBuf};

use serfn::pool::Cancelled;
use serfn::{Error, Pool, SerFn, SerFnOnce};
use support::{alive, eventually};

/// What the initializer set up in this worker process.
static LOADED: OnceLock<f64> = OnceLock::new();
/// How many times the initializer ran in this process.
static INIT_RUNS: AtomicU32 = AtomicU32::new(0);

fn load(scale: f64) -> SerFnOnce<(), ()> {
    serfn::closure!(once "features::load", [scale: f64], move || -> () {
        INIT_RUNS.fetch_add(1, Ordering::SeqCst);
        LOADED.get_or_init(|| scale);
    })
}

/// `x` times the scale the initializer loaded, with the worker's pid and
/// how many times the initializer ran there.
fn scaled() -> SerFn<u64, (f64, u32, u32)> {
    serfn::closure!("features::scaled", [], move |x: u64| -> (f64, u32, u32) {
        let scale = LOADED.get().copied().unwrap_or(f64::NAN);
        (
            x as f64 * scale,
            std::process::id(),
            INIT_RUNS.load(Ordering::SeqCst),
        )
    })
}

fn square() -> SerFn<u64, (u64, u32)> {
    serfn::closure!("features::square", [], move |x: u64| -> (u64, u32) {
        (x * x, std::process::id())
    })
}

/// Sleeps `ms` milliseconds and says which process it ran in.
fn nap() -> SerFn<u64, u32> {
    serfn::closure!("features::nap", [], move |ms: u64| -> u32 {
        std::thread::sleep(Duration::from_millis(ms));
        std::process::id()
    })
}

/// Ends its worker process with the given exit code.
fn exits_with() -> SerFn<u64, u64> {
    serfn::closure!("features::exit", [], move |code: u64| -> u64 {
        std::process::exit(code as i32)
    })
}

#[test]
fn the_initializer_runs_once_in_each_worker_before_its_tasks() {
    let pool = Pool::builder()
        .workers(2)
        .initializer(load(2.5))
        .build()
        .unwrap();
    let results: Vec<(f64, u32, u32)> = pool
        .map(&scaled(), 0..200u64)
        .chunk_size(1)
        .collect::<serfn::Result<_>>()
        .unwrap();
    for (x, (value, _, runs)) in results.iter().enumerate() {
        assert_eq!(*value, x as f64 * 2.5);
        assert_eq!(*runs, 1, "the initializer ran once per process");
    }
    // And not in this process, which only started the pool.
    assert!(LOADED.get().is_none());
    assert_eq!(INIT_RUNS.load(Ordering::SeqCst), 0);
}

#[test]
fn a_replacement_worker_runs_the_initializer_too() {
    let pool = Pool::builder()
        .workers(1)
        .initializer(load(4.0))
        .build()
        .unwrap();
    let (_, first, _) = pool.call(&scaled(), 1).unwrap();
    let exit = exits_with();
    assert!(matches!(pool.call(&exit, 7), Err(Error::WorkerDied { .. })));
    let (value, second, runs) = pool.call(&scaled(), 3).unwrap();
    assert_ne!(first, second, "a new worker");
    assert_eq!((value, runs), (12.0, 1));
}

#[test]
fn an_initializer_that_panics_fails_build_with_its_message() {
    let broken: SerFnOnce<(), ()> = serfn::closure!(once "features::broken", [], move || -> () {
        panic!("no model at /nowhere");
    });
    let error = Pool::builder()
        .workers(2)
        .initializer(broken)
        .build()
        .unwrap_err();
    let Error::WorkerStart { reason } = &error else {
        panic!("{error:?}")
    };
    assert!(reason.contains("features::broken"), "{reason}");
    assert!(reason.contains("no model at /nowhere"), "{reason}");
}

#[test]
fn an_initializer_failing_in_a_replacement_fails_the_waiting_call_then_recovers() {
    let dir = scratch("init-flag");
    let flag = at(&dir, "gone");
    let path = flag.clone();
    let picky = serfn::closure!(once "features::picky", [flag: String = path], move || -> () {
        if Path::new(&flag).exists() {
            panic!("the model file is gone");
        }
    });
    let pool = Pool::builder()
        .workers(1)
        .initializer(picky)
        .build()
        .unwrap();
    std::fs::write(&flag, b"").unwrap();
    let exit = exits_with();
    assert!(matches!(pool.call(&exit, 7), Err(Error::WorkerDied { .. })));
    // Its replacements cannot start: the waiting call gets why, no hang.
    let error = pool.call(&square(), 2).unwrap_err();
    let Error::WorkerStart { reason } = &error else {
        panic!("{error:?}")
    };
    assert!(reason.contains("the model file is gone"), "{reason}");
    std::fs::remove_file(&flag).unwrap();
    assert!(eventually(|| pool
        .call(&square(), 3)
        .is_ok_and(|(n, _)| n == 9)));
    let _ = std::fs::remove_dir_all(&dir);
}

fn slow_init(ms: u64) -> SerFnOnce<(), ()> {
    serfn::closure!(once "features::slow_init", [ms: u64], move || -> () {
        std::thread::sleep(Duration::from_millis(ms));
        INIT_RUNS.fetch_add(1, Ordering::SeqCst);
    })
}

#[test]
fn slow_initializers_run_side_by_side_within_the_start_timeout() {
    // One after another, four would take 8 s, past the start timeout.
    let pool = Pool::builder()
        .workers(4)
        .initializer(slow_init(2_000))
        .start_timeout(Duration::from_secs(6))
        .build()
        .unwrap();
    let (_, _, runs) = pool.call(&scaled(), 1).unwrap();
    assert_eq!(runs, 1);
}

#[test]
fn an_initializer_that_never_returns_is_a_start_error_and_leaves_no_process() {
    let error = Pool::builder()
        .workers(1)
        .initializer(slow_init(600_000))
        .start_timeout(Duration::from_secs(1))
        .build()
        .unwrap_err();
    let Error::WorkerStart { reason } = &error else {
        panic!("{error:?}")
    };
    assert!(reason.contains("start timeout"), "{reason}");
    let pid: u32 = reason
        .split("worker process ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap();
    assert!(eventually(|| !alive(pid)));
}

#[test]
fn a_worker_is_recycled_after_max_tasks_and_no_item_is_lost() {
    let pool = Pool::builder()
        .workers(2)
        .max_tasks_per_worker(10)
        .initializer(load(1.0))
        .build()
        .unwrap();
    let first = pool.worker_pids();
    let results: Vec<(u64, u32)> = pool
        .map(&square(), 0..200u64)
        .collect::<serfn::Result<_>>()
        .unwrap();
    let mut per_pid: HashMap<u32, usize> = HashMap::new();
    for (x, (value, pid)) in results.iter().enumerate() {
        assert_eq!(*value, (x * x) as u64);
        *per_pid.entry(*pid).or_default() += 1;
    }
    assert!(per_pid.values().all(|&n| n <= 10), "{per_pid:?}");
    assert!(per_pid.len() >= 20, "{per_pid:?}");
    // Each new worker ran the initializer before its first item.
    let (value, _, runs) = pool.call(&scaled(), 5).unwrap();
    assert_eq!((value, runs), (5.0, 1));
    let stats = pool.stats();
    assert!(stats.recycled >= 19, "{stats:?}");
    assert_eq!(stats.restarts, 0, "{stats:?}");
    // The first workers exited by themselves.
    assert!(eventually(|| first.iter().all(|&pid| !alive(pid))));
}

#[test]
fn recycling_waits_for_a_folds_state_and_single_tasks_count_too() {
    let pool = Pool::builder()
        .workers(2)
        .max_tasks_per_worker(3)
        .build()
        .unwrap();
    let sum = serfn::closure!(mut "features::sum", [total: u64 = 0], move |x: u64| -> u64 {
        *total += x;
        *total
    });
    let mut states = pool.fold(&sum, 1..=100u64).unwrap();
    let total: u64 = states.iter_mut().map(|state| state.call_mut(0)).sum();
    assert_eq!(total, 5050);
    let pids: Vec<u32> = (0..12)
        .map(|x| pool.submit(&square(), x))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|task| task.wait().unwrap().1)
        .collect();
    let mut per_pid: HashMap<u32, usize> = HashMap::new();
    pids.iter()
        .for_each(|pid| *per_pid.entry(*pid).or_default() += 1);
    assert!(per_pid.values().all(|&n| n <= 3), "{per_pid:?}");
}

#[test]
fn join_runs_what_was_submitted_then_reports_clean_exits() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let pids = pool.worker_pids();
    let tasks: Vec<_> = (0..10).map(|_| pool.submit(&nap(), 50)).collect();
    pool.close();
    assert!(matches!(pool.call(&nap(), 0), Err(Error::PoolClosed)));
    assert!(matches!(
        pool.map(&nap(), [0]).next(),
        Some(Err(Error::PoolClosed))
    ));
    let exits = pool.join();
    assert_eq!(exits.len(), 2, "{exits:?}");
    for exit in &exits {
        assert!(exit.is_clean(), "{exit:?}");
        assert!(pids.contains(&exit.pid), "{exit:?}");
        assert!(!alive(exit.pid));
    }
    for task in tasks {
        assert!(pids.contains(&task.wait().unwrap()));
    }
}

#[test]
fn terminate_kills_a_busy_worker_and_fails_its_task() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let task = pool.submit(&nap(), 60_000);
    let queued = pool.submit(&nap(), 0);
    assert!(eventually(|| pool.stats().bytes_sent > 0));
    std::thread::sleep(Duration::from_millis(100));
    let exits = pool.terminate();
    assert_eq!(exits.len(), 1);
    assert!(!exits[0].is_clean(), "{exits:?}");
    assert!(!alive(exits[0].pid));
    assert!(matches!(task.wait(), Err(Error::PoolClosed)));
    assert!(matches!(queued.wait(), Err(Error::PoolClosed)));
}

/// Sleeps `ms`, then creates the file at `path`: proof that it ran to the end.
fn touch() -> SerFn<(String, u64), u32> {
    serfn::closure!("features::touch", [], move |path: String, ms: u64| -> u32 {
        std::thread::sleep(Duration::from_millis(ms));
        std::fs::write(&path, b"ran").unwrap();
        std::process::id()
    })
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("serfn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn at(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

#[test]
fn a_cancelled_task_that_waits_never_runs_and_a_running_one_is_killed() {
    let dir = scratch("cancel");
    let pool = Pool::builder().workers(1).build().unwrap();
    let first = pool.worker_pids();
    let long = pool.submit(&touch(), (at(&dir, "long"), 60_000));
    let mut short: Vec<_> = (0..5)
        .map(|i| pool.submit(&touch(), (at(&dir, &format!("short{i}")), 1)))
        .collect();
    // The long task reaches the worker; the last short one waits in the queue.
    assert!(eventually(|| pool.stats().bytes_sent > 0));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(short.pop().unwrap().cancel(), Cancelled::NotStarted);
    assert_eq!(long.cancel(), Cancelled::Stopped);
    for task in short {
        assert_ne!(task.wait().unwrap(), first[0], "ran on the new worker");
    }
    assert!(eventually(|| pool.stats().restarts == 1));
    assert!(
        eventually(|| !alive(first[0])),
        "the running task's worker was killed"
    );
    assert_eq!(pool.join().len(), 1);
    assert!(!dir.join("long").exists());
    assert!(!dir.join("short4").exists(), "the cancelled task never ran");
    assert!((0..4).all(|i| dir.join(format!("short{i}")).exists()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_task_cancelled_behind_a_running_one_is_stopped_with_its_worker() {
    let dir = scratch("cancel-behind");
    let pool = Pool::builder().workers(1).build().unwrap();
    let first = pool.submit(&touch(), (at(&dir, "first"), 1_000));
    // Sent to the worker behind the first: stopped when the worker gets to it.
    let behind = pool.submit(&nap(), 600_000);
    assert!(eventually(|| pool.stats().bytes_sent > 0));
    std::thread::sleep(Duration::from_millis(300));
    let cancelled = behind.cancel();
    assert_ne!(cancelled, Cancelled::Finished);
    // The task before it is not touched.
    let pid = first.wait().unwrap();
    assert!(dir.join("first").exists());
    // Else this would wait behind a ten-minute nap.
    let next = pool.submit(&nap(), 1);
    let after = next
        .wait_timeout(Duration::from_secs(60))
        .expect("not stuck behind the nap");
    if cancelled == Cancelled::Stopped {
        assert_ne!(after.unwrap(), pid, "its worker was killed");
        assert!(eventually(|| pool.stats().restarts == 1));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cancelling_a_finished_task_changes_nothing() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let task = pool.submit(&square(), 3);
    assert!(eventually(|| task.is_finished()));
    assert_eq!(task.cancel(), Cancelled::Finished);
    assert_eq!(pool.call(&square(), 4).unwrap().0, 16);
    assert_eq!(pool.stats().restarts, 0);
}

#[test]
fn a_per_call_timeout_kills_its_worker_and_overrides_the_pools() {
    let pool = Pool::builder()
        .workers(1)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let late = pool.call_timeout(&nap(), 60_000, Duration::from_millis(300));
    assert!(
        matches!(late, Err(Error::Timeout { timeout, .. }) if timeout == Duration::from_millis(300)),
        "{late:?}"
    );
    assert!(eventually(|| pool.stats().restarts == 1));
    // Longer than the pool's own timeout, within its own.
    let task = pool.submit_timeout(&nap(), 1_500, Duration::from_secs(60));
    assert!(task.wait().is_ok());
    assert!(
        matches!(pool.call(&nap(), 60_000), Err(Error::Timeout { timeout, .. }) if timeout == Duration::from_secs(1))
    );
}

#[test]
fn a_maps_timeout_fails_only_the_late_item() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let results: Vec<serfn::Result<u32>> = pool
        .map(&nap(), [1, 60_000, 2, 3])
        .timeout(Duration::from_millis(500))
        .collect();
    assert!(
        matches!(results[1], Err(Error::Timeout { .. })),
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        3,
        "{results:?}"
    );
}

#[test]
fn maps_and_folds_take_borrowed_items() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let len: SerFn<String, usize> =
        serfn::closure!("features::len", [], move |s: String| -> usize { s.len() });
    let words: Vec<String> = (0..100).map(|n| "x".repeat(n)).collect();
    let expected: Vec<usize> = (0..100).collect();
    let by_ref: Vec<usize> = pool
        .map(&len, &words)
        .collect::<serfn::Result<_>>()
        .unwrap();
    let by_iter: Vec<usize> = pool
        .map(&len, words.iter())
        .collect::<serfn::Result<_>>()
        .unwrap();
    let by_slice: Vec<usize> = pool
        .map(&len, &words[..10])
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(by_ref, expected);
    assert_eq!(by_iter, expected);
    assert_eq!(by_slice, expected[..10]);
    let mut unordered: Vec<(usize, usize)> = pool
        .map_unordered(&len, &words)
        .map(|(i, r)| (i, r.unwrap()))
        .collect();
    unordered.sort_unstable();
    assert!(unordered.iter().all(|&(i, n)| i == n));
    let count = serfn::closure!(mut "features::count", [chars: usize = 0], move |s: String| -> usize {
        *chars += s.len();
        *chars
    });
    let mut states = pool.fold(&count, &words).unwrap();
    let total: usize = states
        .iter_mut()
        .map(|state| state.call_mut(String::new()))
        .sum();
    assert_eq!(total, (0..100).sum::<usize>());
    // The words are still here, never cloned by hand.
    assert_eq!(words.len(), 100);
}

/// Items whose type is known only from the function: an empty `vec![]`,
/// `std::iter::empty()`, `[]`, as well as owned and borrowed forms, each
/// compiles and maps with real workers.
#[test]
fn maps_take_empty_owned_and_borrowed_items_alike() {
    let pool = Pool::builder().workers(1).build().unwrap();
    let double: SerFn<u64, u64> =
        serfn::closure!("features::double", [], move |x: u64| -> u64 { 2 * x });
    let none = |results: Vec<serfn::Result<u64>>| results.is_empty();
    assert!(none(pool.map(&double, vec![]).collect()));
    assert!(none(pool.map(&double, std::iter::empty()).collect()));
    assert!(none(pool.map(&double, []).collect()));
    assert_eq!(pool.map_unordered(&double, vec![]).count(), 0);
    let items: Vec<u64> = vec![1, 2, 3];
    let queue: std::collections::VecDeque<u64> = items.iter().copied().collect();
    let twice = |results: Vec<serfn::Result<u64>>| {
        results
            .into_iter()
            .collect::<serfn::Result<Vec<u64>>>()
            .unwrap()
    };
    assert_eq!(twice(pool.map(&double, &items).collect()), [2, 4, 6]);
    assert_eq!(twice(pool.map(&double, &[1, 2, 3]).collect()), [2, 4, 6]);
    assert_eq!(twice(pool.map(&double, &queue).collect()), [2, 4, 6]);
    assert_eq!(twice(pool.map(&double, queue.iter()).collect()), [2, 4, 6]);
    assert_eq!(
        twice(pool.map(&double, items.iter().copied()).collect()),
        [2, 4, 6]
    );
    assert_eq!(twice(pool.map(&double, 1..4).collect()), [2, 4, 6]);
    assert_eq!(twice(pool.map(&double, items).collect()), [2, 4, 6]);
}

/// Everything the `serfn` target logs, captured for the tracing test.
#[cfg(feature = "tracing")]
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(feature = "tracing")]
impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "tracing")]
#[test]
fn restarts_recycling_timeouts_and_shipping_are_tracing_events() {
    use tracing_subscriber::util::SubscriberInitExt;

    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("serfn=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .try_init()
        .unwrap();
    let pool = Pool::builder()
        .workers(1)
        .max_tasks_per_worker(2)
        .build()
        .unwrap();
    let results: Vec<serfn::Result<u32>> = pool
        .map(&nap(), [1, 2, 60_000, 3])
        .timeout(Duration::from_millis(300))
        .collect();
    assert!(
        matches!(results[2], Err(Error::Timeout { .. })),
        "{results:?}"
    );
    drop(pool);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for expected in [
        "function shipped",
        "worker recycled",
        "task past its timeout",
        "worker died",
        "worker started",
    ] {
        assert!(log.contains(expected), "no `{expected}` in:\n{log}");
    }
    // A recycled worker exits by itself, cleanly.
    let recycled = log.lines().find(|line| line.contains("worker recycled"));
    assert!(
        recycled.is_some_and(|line| line.contains("status=exit status 0")),
        "{log}"
    );
}
