//! What an operator does to a Redis fleet, against a real server and real
//! worker processes: stop workers with SIGTERM (warm shutdown), watch them
//! through their heartbeat keys, read and clear the queue from Rust.
//!
//! Run with `cargo test --features redis --test test_redis_ops`; the server
//! is `SERFN_REDIS_URL` (see `tests/support/redis.rs`).

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::Commands;
use redis_support::{prefix, Server, Worker, WorkerSetup};
use serfn::redis::{Fleet, RedisExecutor, GRACE_EXIT_CODE};
use serfn::SerFn;
use support::eventually;

/// The worker's side of this binary: see `Worker::start`.
#[test]
fn redis_worker_entry() {
    redis_support::serve_from_env();
}

fn executor(server: &Server, prefix: &str) -> RedisExecutor {
    RedisExecutor::builder(&server.url)
        .prefix(prefix)
        .build()
        .unwrap()
}

fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("serfn-ops-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sleeps `ms`, noting in `log` when each run starts and when it ends.
fn slow(log: &Path, ms: u64) -> SerFn<u32, u32> {
    let log = log.to_str().unwrap().to_owned();
    serfn::closure!("ops_tests::slow", [log: String, ms: u64], move |x: u32| -> u32 {
        use std::io::Write;
        let note = |what: &str| {
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
            writeln!(file, "{what} {x}").unwrap();
        };
        note("start");
        std::thread::sleep(std::time::Duration::from_millis(*ms));
        note("end");
        x + 1
    })
}

fn lines(log: &Path, what: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.starts_with(what))
        .count()
}

#[test]
fn sigterm_mid_task_finishes_it_once_takes_no_other_and_exits_0() {
    let server = Server::shared();
    let prefix = prefix("warm");
    let dir = scratch("warm");
    let log = dir.join("log");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        grace_ms: Some(20_000),
        ..Default::default()
    };
    let mut worker = Worker::start(&server.url, &setup);
    let fleet = executor(&server, &prefix);
    let f = slow(&log, 1_500);
    let first = fleet.submit(&f, 1);
    assert!(
        eventually(|| lines(&log, "start") == 1),
        "the task never started"
    );
    // Sent while the first runs: it waits in the stream, as a stopping worker takes no new task.
    let second = fleet.submit(&f, 2);
    let operator = Fleet::new(&server.url).unwrap().prefix(&prefix);
    assert!(eventually(|| operator.status().unwrap().queue.waiting == 1));

    worker.signal("TERM");
    assert!(eventually(|| operator
        .workers()
        .unwrap()
        .first()
        .is_some_and(|w| w.stopping)));
    let status = worker.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(first.wait().unwrap(), 2);
    assert_eq!((lines(&log, "start"), lines(&log, "end")), (1, 1));
    // It said goodbye: no heartbeat key left, and the second task still waits.
    let after = operator.status().unwrap();
    assert!(after.workers.is_empty(), "{:?}", after.workers);
    assert_eq!((after.queue.waiting, after.queue.pending), (1, 0));

    let _next = Worker::start(&server.url, &setup);
    assert_eq!(second.wait().unwrap(), 3);
    assert_eq!((lines(&log, "start"), lines(&log, "end")), (2, 2));
    assert_eq!(fleet.stats().duplicates, 0);
}

#[test]
fn past_the_grace_period_the_task_is_taken_over_and_completes_once() {
    let server = Server::shared();
    let prefix = prefix("grace");
    let dir = scratch("grace");
    let log = dir.join("log");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        grace_ms: Some(300),
        claim_idle_ms: Some(1_000),
        ..Default::default()
    };
    let mut first_worker = Worker::start(&server.url, &setup);
    let fleet = executor(&server, &prefix);
    let task = fleet.submit(&slow(&log, 2_500), 7);
    assert!(
        eventually(|| lines(&log, "start") == 1),
        "the task never started"
    );
    let _second_worker = Worker::start(&server.url, &setup);

    first_worker.signal("TERM");
    let status = first_worker.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(GRACE_EXIT_CODE), "{status:?}");
    assert_eq!(lines(&log, "end"), 0, "it exited before the task ended");

    assert_eq!(task.wait().unwrap(), 8);
    // Started twice (the first run cut short), completed and answered once.
    assert_eq!((lines(&log, "start"), lines(&log, "end")), (2, 1));
    assert_eq!(fleet.stats().duplicates, 0);
}

#[test]
fn a_second_signal_ends_the_worker_at_once_and_the_task_is_taken_over() {
    let server = Server::shared();
    let prefix = prefix("twice");
    let dir = scratch("twice");
    let log = dir.join("log");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        grace_ms: Some(60_000),
        claim_idle_ms: Some(1_000),
        ..Default::default()
    };
    let mut first_worker = Worker::start(&server.url, &setup);
    let fleet = executor(&server, &prefix);
    let task = fleet.submit(&slow(&log, 2_000), 9);
    assert!(
        eventually(|| lines(&log, "start") == 1),
        "the task never started"
    );
    let _second_worker = Worker::start(&server.url, &setup);
    let operator = Fleet::new(&server.url).unwrap().prefix(&prefix);

    first_worker.signal("INT");
    assert!(eventually(|| operator
        .workers()
        .unwrap()
        .iter()
        .any(|w| w.stopping)));
    first_worker.signal("INT");
    // Long before its 60 s grace period, and before the task's end.
    let status = first_worker.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(GRACE_EXIT_CODE), "{status:?}");
    assert_eq!(lines(&log, "end"), 0);
    assert_eq!(task.wait().unwrap(), 10);
    assert_eq!((lines(&log, "start"), lines(&log, "end")), (2, 1));
}

#[test]
fn workers_restarted_100_times_leave_no_heartbeat_keys_after_their_ttl() {
    let server = Server::shared();
    let prefix = prefix("restarts");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        heartbeat_ms: Some(1_000),
        ..Default::default()
    };
    let operator = Fleet::new(&server.url).unwrap().prefix(&prefix);
    let mut connection = server.connection();
    let keys = |connection: &mut redis::Connection| -> Vec<String> {
        connection.keys(format!("{prefix}:worker:*")).unwrap()
    };
    // Ten at a time; half killed (their keys expire), half stopped with
    // SIGTERM or SIGINT (they delete theirs).
    for round in 0..10 {
        let mut batch: Vec<Worker> = (0..10)
            .map(|_| Worker::start(&server.url, &setup))
            .collect();
        let pids: Vec<u32> = batch.iter().map(|w| w.child.id()).collect();
        assert!(
            eventually(|| {
                let live = operator.workers().unwrap();
                pids.iter().all(|pid| live.iter().any(|w| w.pid == *pid))
            }),
            "round {round}: not every worker announced itself"
        );
        for (i, worker) in batch.iter_mut().enumerate() {
            match i % 4 {
                0 | 2 => worker.kill(),
                1 => worker.signal("TERM"),
                _ => worker.signal("INT"),
            }
        }
        for worker in batch.iter_mut().skip(1).step_by(2) {
            let status = worker.wait_exit(Duration::from_secs(10));
            assert_eq!(status.code(), Some(0), "{status:?}");
        }
    }
    // Killed workers' keys are still there, until their TTL.
    assert!(!keys(&mut connection).is_empty());
    assert!(eventually(|| keys(&mut server.connection()).is_empty()));
    assert!(operator.workers().unwrap().is_empty());
}

#[test]
fn status_shows_workers_queue_pending_and_jobs_and_purges_clear_them() {
    let server = Server::shared();
    let prefix = prefix("status");
    let dir = scratch("status");
    let log = dir.join("log");
    let operator = Fleet::new(&server.url).unwrap().prefix(&prefix);
    let fleet = executor(&server, &prefix);
    let f = slow(&log, 3_000);
    // No worker yet: everything waits.
    let _tasks: Vec<_> = (0..4).map(|i| fleet.submit(&f, i)).collect();
    assert!(
        eventually(|| operator.status().unwrap().queue.waiting == 4),
        "{:?}",
        operator.status()
    );
    let status = fleet.fleet_status().unwrap();
    assert_eq!(status.prefix, prefix);
    assert!(status.workers.is_empty() && status.pending.is_empty());
    assert_eq!(status.jobs.len(), 4, "{:?}", status.jobs);
    assert!(status
        .jobs
        .iter()
        .all(|job| (job.answered, job.tasks, job.items) == (0, 1, 1)));
    assert!(status
        .jobs
        .iter()
        .all(|job| job.function.ends_with("ops_tests::slow")));

    let setup = WorkerSetup {
        prefix: prefix.clone(),
        ..Default::default()
    };
    let _worker = Worker::start(&server.url, &setup);
    assert!(eventually(|| {
        let status = operator.status().unwrap();
        status.pending.len() == 1 && status.workers.first().is_some_and(|w| w.current.is_some())
    }));
    let status = operator.status().unwrap();
    let (worker, consumer) = (&status.workers[0], &status.pending[0]);
    assert_eq!(worker.name, consumer.name);
    assert_eq!(worker.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(consumer.pending, 1);
    assert_eq!(consumer.tasks.len(), 1);
    assert_eq!(consumer.tasks[0].deliveries, 1);
    let running = worker.current.as_ref().unwrap();
    assert_eq!(running.id, consumer.tasks[0].id);
    assert!(running.function.ends_with("ops_tests::slow"));
    assert_eq!(
        (status.queue.waiting, status.queue.pending),
        (3, 1),
        "{status:#?}"
    );

    // One job purged whole: its waiting task and its keys; then the rest of the queue.
    let waiting_job = status
        .jobs
        .iter()
        .find(|job| job.name != running.job)
        .unwrap()
        .name
        .clone();
    let purged = operator.purge_job(&waiting_job).unwrap();
    assert_eq!((purged.tasks, purged.keys), (1, 1));
    assert_eq!(operator.purge_queue().unwrap(), 2);
    let status = operator.status().unwrap();
    assert_eq!((status.queue.waiting, status.queue.pending), (0, 1));
    assert!(status.jobs.iter().all(|job| job.name != waiting_job));
    // The running task was left alone: it completes.
    assert!(eventually(|| lines(&log, "end") == 1));
    assert!(eventually(
        || operator.status().unwrap().workers[0].done == 1
    ));
}
