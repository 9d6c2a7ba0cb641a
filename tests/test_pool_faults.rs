//! Faults, really provoked: workers that abort, exit, are killed with
//! SIGKILL mid-map or run past their timeout; a worker program that lacks
//! the function; pools dropped and parents killed. Each gives a typed error
//! and loses nothing, and no worker process outlives its pool.

serfn::test_support!();

#[path = "../examples/shared/functions.rs"]
mod functions;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serfn::{Error, Pool, SerFn};

/// What a test function does to its worker for one item.
fn faulty() -> SerFn<(u32, u32), u32> {
    serfn::closure!("faults::faulty", [], move |x: u32, fault: u32| -> u32 {
        match fault {
            1 => std::process::abort(),
            2 => std::process::exit(3),
            3 => std::thread::sleep(Duration::from_secs(60)),
            4 => std::thread::sleep(Duration::from_millis(5)),
            _ => {}
        }
        x
    })
}

fn alive(pid: u32) -> bool {
    // A zombie is dead too: only a running process counts.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Polls until `done()` holds; a bounded wait, not a timing assertion.
fn eventually(done: impl Fn() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
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
        if let Some(list) = line.strip_prefix("PIDS ") {
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
