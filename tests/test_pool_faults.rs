//! Faults, really provoked: workers that abort, exit, are killed with
//! SIGKILL mid-map or while they start, are stopped, or run past their
//! timeout; work and answers over the limits; a worker program that lacks
//! the function; pools dropped and parents killed. Each gives a typed error
//! and loses nothing, and no worker process outlives its pool.

serfn::test_support!();

mod support;

#[path = "../examples/shared/functions.rs"]
mod functions;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serfn::{Error, Limits, Pool, SerFn};
use support::{alive, eventually, stopped};

/// What a test function does to its worker for one item.
fn faulty() -> SerFn<(u32, u32), u32> {
    serfn::closure!("faults::faulty", [], move |x: u32, fault: u32| -> u32 {
        match fault {
            1 => std::process::abort(),
            2 => std::process::exit(3),
            3 => std::thread::sleep(Duration::from_secs(60)),
            4 => std::thread::sleep(Duration::from_millis(5)),
            5 => std::thread::sleep(Duration::from_secs(2)),
            _ => {}
        }
        x
    })
}

fn wait_gone(pid: u32) -> bool {
    eventually(|| !alive(pid))
}

fn kill_9(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn abort_and_exit_give_worker_died_and_the_worker_is_replaced() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let f = faulty();
    for (fault, status) in [(1, "signal 6"), (2, "exit status 3")] {
        match pool.call(&f, (7, fault)) {
            Err(Error::WorkerDied {
                name, status: got, ..
            }) => {
                assert!(name.ends_with("faults::faulty"));
                assert!(got.contains(status), "{got}");
            }
            other => panic!("fault {fault}: {other:?}"),
        }
    }
    // The replacements work.
    let got: Vec<u32> = pool
        .map(&f, (0..100).map(|x| (x, 0)))
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert!(eventually(|| pool.stats().restarts == 2));
}

#[test]
fn kill_9_mid_map_fails_only_the_running_item() {
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    let victim = pool.worker_pids()[0];
    let mut map = pool.map(&faulty(), (0..400).map(|x| (x, 4)));
    let mut results: Vec<serfn::Result<u32>> = map.by_ref().take(20).collect();
    kill_9(victim);
    results.extend(map);
    assert_eq!(results.len(), 400);
    let failed: Vec<usize> = (0..400).filter(|&i| results[i].is_err()).collect();
    assert_eq!(
        failed.len(),
        1,
        "only what the killed worker was running fails"
    );
    match &results[failed[0]] {
        Err(Error::WorkerDied { pid, status, .. }) => {
            assert_eq!(*pid, victim);
            assert!(status.contains("signal 9"), "{status}");
        }
        other => panic!("{other:?}"),
    }
    for (i, result) in results.iter().enumerate() {
        if let Ok(x) = result {
            assert_eq!(*x as usize, i);
        }
    }
    assert!(eventually(|| pool.stats().restarts == 1));
    assert!(!pool.worker_pids().contains(&victim));
}

#[test]
fn with_retries_a_killed_workers_item_runs_again() {
    let pool = Pool::builder()
        .workers(2)
        .chunk_size(1)
        .retries(1)
        .build()
        .unwrap();
    let victim = pool.worker_pids()[1];
    let mut map = pool.map(&faulty(), (0..300).map(|x| (x, 4)));
    let mut results: Vec<serfn::Result<u32>> = map.by_ref().take(20).collect();
    kill_9(victim);
    results.extend(map);
    let got: Vec<u32> = results.into_iter().collect::<serfn::Result<_>>().unwrap();
    assert_eq!(got, (0..300).collect::<Vec<_>>());
    assert_eq!(pool.stats().retries, 1);
    assert!(eventually(|| pool.stats().restarts == 1));
}

#[test]
fn a_task_past_its_timeout_is_killed_and_reported() {
    let pool = Pool::builder()
        .workers(2)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let before = pool.worker_pids();
    let results: Vec<serfn::Result<u32>> = pool
        .map(&faulty(), [(0, 0), (1, 3), (2, 0), (3, 0)])
        .collect();
    assert!(
        matches!(results[1], Err(Error::Timeout { timeout, .. }) if timeout == Duration::from_secs(1))
    );
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        3,
        "{results:?}"
    );
    assert!(eventually(|| pool.stats().restarts == 1));
    let killed: Vec<u32> = before
        .into_iter()
        .filter(|p| !pool.worker_pids().contains(p))
        .collect();
    assert_eq!(killed.len(), 1);
    assert!(wait_gone(killed[0]));
}

/// The dedicated worker program, brought up to date (`cargo test` alone
/// builds examples, but not `cargo test --test test_pool_faults`).
fn worker_program() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--example", "worker"])
        .args(support::format_flags())
        .status()
        .unwrap();
    assert!(status.success());
    let dir = std::env::current_exe().unwrap();
    dir.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("worker")
}

#[test]
fn a_dedicated_worker_program_runs_what_it_registers_and_refuses_the_rest() {
    let pool = Pool::builder()
        .workers(1)
        .program(worker_program())
        .build()
        .unwrap();
    let scale = SerFn::new(functions::Scale { factor: 4.0 });
    assert_eq!(pool.call(&scale, 2.5).unwrap(), 10.0);
    let sqrt: SerFn<f64, f64> = functions::checked_sqrt();
    assert!(matches!(
        pool.call(&sqrt, -1.0),
        Err(Error::Panicked { .. })
    ));
    // Defined in this test binary only.
    match pool.call(&faulty(), (1, 0)) {
        Err(Error::UnknownFunction { name }) => assert!(name.ends_with("faults::faulty")),
        other => panic!("{other:?}"),
    }
    let mapped: Vec<serfn::Result<u32>> = pool.map(&faulty(), (0..10).map(|x| (x, 0))).collect();
    assert!(mapped
        .iter()
        .all(|r| matches!(r, Err(Error::UnknownFunction { .. }))));
    assert_eq!(pool.stats().restarts, 0);
}

#[test]
fn a_program_that_never_becomes_a_worker_is_a_start_error() {
    let error = Pool::builder()
        .workers(1)
        .program("/bin/true")
        .build()
        .unwrap_err();
    assert!(
        matches!(error, Error::WorkerStart { ref reason } if reason.contains("init()")),
        "{error}"
    );
}

#[test]
fn dropping_the_pool_leaves_no_worker_and_fails_pending_tasks() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let pids = pool.worker_pids();
    assert!(pids.iter().all(|&p| alive(p)));
    let busy = pool.submit(&faulty(), (1, 3)); // sleeps a minute
    let queued: Vec<_> = (0..4).map(|i| pool.submit(&faulty(), (i, 3))).collect();
    drop(pool);
    for pid in pids {
        assert!(!alive(pid), "worker {pid} outlived its pool");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} was not reaped"
        );
    }
    assert!(matches!(busy.wait(), Err(Error::PoolClosed)));
    assert!(queued
        .into_iter()
        .all(|t| matches!(t.wait(), Err(Error::PoolClosed))));
}

const PARENT_ROLE: &str = "SERFN_TEST_PARENT_ROLE";

/// Not a test on its own: the parent process of the next test.
#[test]
fn parent_role() {
    if std::env::var_os(PARENT_ROLE).is_none() {
        return;
    }
    let pool = Pool::builder().workers(2).build().unwrap();
    let _busy = pool.submit(&faulty(), (0, 3)); // one worker inside a function
    std::thread::sleep(Duration::from_millis(100));
    let pids: Vec<String> = pool.worker_pids().iter().map(u32::to_string).collect();
    println!("PIDS {}", pids.join(" "));
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn workers_exit_when_their_parent_is_killed() {
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .args(["parent_role", "--exact", "--nocapture", "--test-threads=1"])
        .env(PARENT_ROLE, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pids = Vec::new();
    for line in BufReader::new(parent.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // After libtest's "test parent_role ... " on the same line.
        if let Some((_, list)) = line.split_once("PIDS ") {
            pids = list.split(' ').map(|p| p.parse::<u32>().unwrap()).collect();
            break;
        }
    }
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| alive(p)));
    parent.kill().unwrap(); // SIGKILL: no destructor runs in the parent
    parent.wait().unwrap();
    for pid in pids {
        assert!(wait_gone(pid), "worker {pid} outlived its killed parent");
    }
}

/// Live worker processes of the pools built with `.env(MARK, mark)`,
/// connected or still starting (a fork not yet exec'd has no such variable).
fn worker_children(mark: &str) -> Vec<u32> {
    let mark = format!("{MARK}={mark}\0").into_bytes();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if fields.get(1) == Some(&me.as_str())
            && fields.first() != Some(&"Z")
            && env.windows(mark.len()).any(|w| w == mark)
        {
            found.push(pid);
        }
    }
    found
}

/// Tells this binary's pools apart, for tests that kill what they start.
const MARK: &str = "SERFN_TEST_MARK";

fn blob() -> SerFn<u32, Vec<u8>> {
    serfn::closure!("faults::blob", [], move |n: u32| -> Vec<u8> {
        vec![7; n as usize]
    })
}

fn length() -> SerFn<Vec<u8>, u64> {
    serfn::closure!("faults::length", [], move |v: Vec<u8>| -> u64 {
        v.len() as u64
    })
}

#[test]
fn work_over_the_limits_is_too_large_at_the_caller_and_kills_no_worker() {
    let limit = 64 << 10;
    let pool = Pool::builder()
        .workers(2)
        .limits(Limits::default().max_bytes(limit))
        .build()
        .unwrap();
    let pids = pool.worker_pids();
    let too_large = |result: serfn::Result<u64>| match result {
        Err(Error::TooLarge { len, limit: l }) => assert!(l == limit && len > limit as u64),
        other => panic!("{other:?}"),
    };
    // A capture the workers could not read.
    let data = vec![1u8; 2 * limit];
    let captured: SerFn<u32, u64> = serfn::closure!("faults::captured", [data: Vec<u8>], move |x: u32| -> u64 {
        data.len() as u64 + u64::from(x)
    });
    too_large(pool.call(&captured, 1));
    too_large(pool.map(&captured, 0..10).next().unwrap());
    // One item too large in a chunk of ten: only it fails, the others run
    // in their order, in a typed batch and item by item (a pipeline).
    let pipeline = length().then(serfn::closure!("faults::same", [], move |n: u64| -> u64 {
        n
    }));
    for f in [length(), pipeline] {
        let items = (0..20).map(|i| vec![1u8; if i == 5 { 2 * limit } else { i }]);
        let results: Vec<serfn::Result<u64>> = pool.map(&f, items).chunk_size(10).collect();
        assert_eq!(results.len(), 20);
        for (i, result) in results.into_iter().enumerate() {
            match i {
                5 => too_large(result),
                _ => assert_eq!(result.unwrap(), i as u64),
            }
        }
    }
    // Items that fit one by one but not together are split into chunks that fit.
    let items = (0..40).map(|_| vec![1u8; limit / 8]);
    let lengths: Vec<u64> = pool
        .map(&length(), items)
        .chunk_size(40)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(lengths, vec![limit as u64 / 8; 40]);
    assert_eq!(pool.stats().restarts, 0);
    assert_eq!(pool.worker_pids(), pids);
}

#[test]
fn answers_over_the_limits_fail_their_chunk_and_later_chunks_fit() {
    let limit = 16 << 10;
    let pool = Pool::builder()
        .workers(2)
        .limits(Limits::default().max_bytes(limit))
        .build()
        .unwrap();
    let pids = pool.worker_pids();
    // 100 answers of 1 KiB in a chunk: 100 KiB, past the limit of 16 KiB.
    let results: Vec<serfn::Result<Vec<u8>>> = pool
        .map(&blob(), (0..4_000).map(|_| 1024))
        .chunk_size(100)
        .collect();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(Error::TooLarge { .. })))
        .count();
    assert!(refused >= 100, "{refused}");
    assert!(results.iter().all(|r| match r {
        Ok(v) => v.len() == 1024,
        Err(e) => matches!(e, Error::TooLarge { .. }),
    }));
    // Once an answer was refused, the chunks sent after it are made to fit.
    assert!(results[3_500..].iter().all(Result::is_ok));
    // One answer alone too large.
    match pool.call(&blob(), 2 * limit as u32) {
        Err(Error::TooLarge { len, limit: l }) => assert!(l == limit && len > limit as u64),
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.stats().restarts, 0, "no honest worker is killed");
    assert_eq!(pool.worker_pids(), pids);
}

/// A pool whose workers take `delay` to start, marked `mark`: a shell
/// that sleeps, then becomes this binary's worker.
fn slow_start(mark: &str, delay: &str) -> serfn::PoolBuilder {
    let script = format!("sleep {delay}; exec \"$0\" \"$@\"");
    let exe = std::env::current_exe().unwrap();
    let entry = serfn::worker::TEST_ENTRY;
    Pool::builder()
        .program("/bin/sh")
        .args([
            OsStr::new("-c"),
            OsStr::new(&script),
            exe.as_os_str(),
            OsStr::new(entry),
            OsStr::new("--test-threads=1"),
            OsStr::new("-q"),
        ])
        .env(MARK, mark)
}

#[test]
fn a_start_up_storm_on_one_slot_fails_no_queued_job() {
    let pool = slow_start("storm", "0.1")
        .workers(2)
        .chunk_size(1)
        .retries(10)
        .build()
        .unwrap();
    let (healthy, victim) = (pool.worker_pids()[0], pool.worker_pids()[1]);
    let results: Vec<serfn::Result<u32>> = std::thread::scope(|scope| {
        let killer = scope.spawn(|| {
            kill_9(victim);
            // Each new worker of the victim's slot is killed while it starts.
            let (mut starts_killed, until) = (0, Instant::now() + Duration::from_secs(20));
            while starts_killed < 5 && Instant::now() < until {
                for pid in worker_children("storm") {
                    if pid != healthy && !pool.worker_pids().contains(&pid) {
                        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                        starts_killed += 1;
                    }
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            starts_killed
        });
        let results = pool.map(&faulty(), (0..400).map(|x| (x, 4))).collect();
        assert!(killer.join().unwrap() >= 5, "the storm did not happen");
        results
    });
    let got: Vec<u32> = results.into_iter().collect::<serfn::Result<_>>().unwrap();
    assert_eq!(got, (0..400).collect::<Vec<_>>());
    assert!(pool.worker_pids().contains(&healthy));
    assert!(
        eventually(|| pool.worker_pids().len() == 2),
        "the slot recovers"
    );
}

#[test]
fn a_worker_killed_while_it_starts_is_not_called_a_set_up_mistake() {
    let done = std::sync::atomic::AtomicBool::new(false);
    let error = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                worker_children("start").into_iter().for_each(kill_quietly);
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let built = slow_start("start", "1").workers(1).build();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        built.unwrap_err()
    });
    match error {
        Error::WorkerStart { reason } => {
            assert!(reason.contains("killed by signal 9"), "{reason}");
            assert!(!reason.contains("init()"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

fn kill_quietly(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

#[test]
fn a_stopped_worker_is_killed_after_the_liveness_timeout_a_busy_one_is_not() {
    let pool = Pool::builder()
        .workers(1)
        .liveness_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    // Busy for 2 s, twice the bound: its heartbeat says it is alive. (With a
    // 500 ms bound, a cold start on a loaded machine sometimes delayed a
    // heartbeat past it.)
    assert_eq!(pool.call(&faulty(), (1, 5)).unwrap(), 1);
    let pid = pool.worker_pids()[0];
    let status = Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // `kill` returns once the signal is sent; the worker stops when one of
    // its threads next runs. A task sent before that was sometimes answered.
    assert!(eventually(|| stopped(pid)), "worker {pid} never stopped");
    let started = Instant::now();
    match pool.call(&faulty(), (2, 0)) {
        Err(Error::WorkerDied {
            pid: died, status, ..
        }) => {
            assert_eq!(died, pid);
            assert!(status.contains("sent nothing"), "{status}");
        }
        other => panic!("{other:?}"),
    }
    // The bound, plus a margin for a busy machine.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(wait_gone(pid));
    assert_eq!(pool.call(&faulty(), (3, 0)).unwrap(), 3);
}
