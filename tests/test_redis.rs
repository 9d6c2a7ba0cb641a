//! The Redis backend against a real server and real worker processes.
//!
//! Run with `cargo test --features redis --test test_redis`; the server is
//! `SERFN_REDIS_URL` (see `tests/support/redis.rs`).

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redis::Commands;
use redis_support::{prefix, Server, Worker, WorkerSetup};
use serde::{Deserialize, Serialize};
use serfn::pool::Cancelled;
use serfn::redis::{RedisExecutor, RedisWorker};
use serfn::{Error, Executor, SerFn};

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

fn workers(server: &Server, setup: &WorkerSetup, n: usize) -> Vec<Worker> {
    (0..n).map(|_| Worker::start(&server.url, setup)).collect()
}

/// `n` workers of this binary with the defaults, on `prefix`.
fn plain_workers(server: &Server, prefix: &str, n: usize) -> Vec<Worker> {
    let setup = WorkerSetup {
        prefix: prefix.to_owned(),
        ..Default::default()
    };
    workers(server, &setup, n)
}

fn weighted(data: Vec<f64>) -> SerFn<f64, f64> {
    serfn::closure!("redis_tests::weighted", [data: Vec<f64>], move |w: f64| -> f64 {
        data.iter().map(|x| (w * x - 1.0).powi(2)).sum()
    })
}

#[test]
fn map_call_and_submit_equal_the_sequential_results() {
    let server = Server::shared();
    let prefix = prefix("basic");
    let _workers = plain_workers(&server, &prefix, 2);
    let fleet = executor(&server, &prefix);
    let f = weighted((0..100).map(f64::from).collect());
    let items: Vec<f64> = (0..2_000).map(|i| f64::from(i) / 1e4).collect();
    let expected: Vec<f64> = items.iter().map(|&x| f.call(x)).collect();

    let got: Vec<f64> = fleet
        .map(&f, items.clone())
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(got, expected);

    let mut unordered: Vec<(usize, f64)> = fleet
        .map_unordered(&f, items.clone())
        .map(|(i, r)| (i, r.unwrap()))
        .collect();
    unordered.sort_by_key(|(i, _)| *i);
    assert_eq!(unordered.len(), items.len());
    assert!(unordered.iter().all(|&(i, r)| r == expected[i]));

    assert_eq!(Executor::call(&fleet, &f, 0.5).unwrap(), f.call(0.5));
    let task = fleet.submit(&f, 0.25);
    assert_eq!(task.wait().unwrap(), f.call(0.25));

    // Pipelines run item by item on the workers.
    let shift =
        serfn::closure!("redis_tests::shift", [by: f64 = 1.0], move |x: f64| -> f64 { x + by });
    let pipeline = f.clone().then(shift);
    let got: Vec<f64> = fleet
        .map(&pipeline, items[..50].to_vec())
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(
        got,
        expected[..50].iter().map(|x| x + 1.0).collect::<Vec<_>>()
    );
}

#[test]
fn panics_and_unknown_functions_are_typed_errors_per_item() {
    let server = Server::shared();
    let prefix = prefix("faults");
    let _workers = plain_workers(&server, &prefix, 1);
    let fleet = executor(&server, &prefix);
    let picky = serfn::closure!("redis_tests::picky", [], move |x: u32| -> u32 {
        assert!(x != 3, "three is refused");
        x * 2
    });
    let results: Vec<serfn::Result<u32>> = fleet.map(&picky, 0..6).collect();
    for (i, result) in results.into_iter().enumerate() {
        match (i, result) {
            (
                3,
                Err(Error::Panicked {
                    message, location, ..
                }),
            ) => {
                assert_eq!(message, "three is refused");
                // The worker's hook noted where, and the result entry kept it.
                let location = location.expect("a location");
                assert!(location.contains("test_redis.rs:"), "{location}");
            }
            (i, Ok(doubled)) if i != 3 => assert_eq!(doubled, 2 * i as u32),
            (i, other) => panic!("{i}: {other:?}"),
        }
    }
}

/// 1 MiB of data in a capture.
#[derive(Serialize, Deserialize)]
struct Big {
    data: Vec<u8>,
}

#[serfn::register(name = "redis_tests::Big")]
impl serfn::Call<u32> for Big {
    type Output = u32;
    fn call(&self, i: u32) -> u32 {
        u32::from(self.data[i as usize % self.data.len()])
    }
}

fn net_bytes(server: &Server) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut server.connection())
        .unwrap();
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (
        field("total_net_input_bytes"),
        field("total_net_output_bytes"),
    )
}

#[test]
fn a_one_mib_capture_moves_once_per_worker() {
    let server = Server::own(); // its byte counters are this test's alone
    let prefix = prefix("capture");
    let _workers = plain_workers(&server, &prefix, 2);
    let fleet = executor(&server, &prefix);
    let big = SerFn::new(Big {
        data: (0..1 << 20).map(|i| (i % 251) as u8).collect(),
    });
    let before = net_bytes(&server);
    let started = Instant::now();
    let results: Vec<u32> = fleet
        .map(&big, 0..10_000)
        .collect::<serfn::Result<_>>()
        .unwrap();
    let elapsed = started.elapsed();
    let (input, output) = net_bytes(&server);
    assert_eq!(results[260], 260 % 251);
    let stats = fleet.stats();
    assert_eq!(stats.functions_stored, 1);
    assert!(stats.function_bytes > 1 << 20 && stats.function_bytes < (1 << 20) + 4096);
    // Into Redis: the function once and the tasks; out: the function once per worker, and results.
    let (into, out_of) = (input - before.0, output - before.1);
    println!("1 MiB capture over 10,000 items: {elapsed:?}, {into} bytes into Redis, {out_of} out, {stats:?}");
    assert!(into < 2 << 20, "{into} bytes into Redis");
    assert!(out_of < 4 << 20, "{out_of} bytes out of Redis");
}

#[test]
fn a_worker_killed_with_tasks_loses_none_and_each_result_counts_once() {
    let server = Server::shared();
    let prefix = prefix("kill");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        claim_idle_ms: Some(300),
        ..Default::default()
    };
    let mut fleet_workers = workers(&server, &setup, 2);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .chunk_size(1)
        .in_flight(16)
        .build()
        .unwrap();
    let slow = serfn::closure!("redis_tests::slow", [], move |x: u64| -> u64 {
        std::thread::sleep(Duration::from_millis(5));
        x * 3
    });
    let mut seen = HashSet::new();
    let mut results = fleet.map_unordered(&slow, 0..400u64);
    for (count, (index, result)) in results.by_ref().enumerate() {
        assert_eq!(result.unwrap(), 3 * index as u64);
        assert!(seen.insert(index), "item {index} twice");
        if count == 50 {
            // kill -9, holding tasks it read but did not answer.
            fleet_workers[0].kill();
        }
    }
    assert_eq!(seen.len(), 400);
    drop(results);
    let mut connection = server.connection();
    let pending: redis::streams::StreamPendingReply = connection
        .xpending(format!("{prefix}:tasks"), format!("{prefix}:workers"))
        .unwrap();
    assert_eq!(pending.count(), 0, "tasks left pending");
    drop(fleet_workers);
}

#[test]
fn a_task_that_kills_every_worker_goes_to_the_dead_letter_stream() {
    let server = Server::shared();
    let prefix = prefix("dead");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        claim_idle_ms: Some(200),
        max_deliveries: Some(2),
        ..Default::default()
    };
    let fleet = executor(&server, &prefix);
    let deadly = serfn::closure!("redis_tests::deadly", [], move |x: u32| -> u32 {
        if x == 1 {
            std::process::abort();
        }
        x
    });
    // Workers are restarted as they die, as a supervisor would.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let supervisor = {
        let (url, setup, stop) = (server.url.clone(), setup.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut worker = Worker::start(&url, &setup);
            let mut restarts = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if worker.exited().is_some() {
                    restarts += 1;
                    worker = Worker::start(&url, &setup);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            restarts
        })
    };
    let job = format!("{prefix}-job");
    let results: Vec<serfn::Result<u32>> = fleet.map(&deadly, vec![0, 1, 2]).job(&job).collect();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let restarts = supervisor.join().unwrap();
    assert!(matches!(results[0], Ok(0)), "{:?}", results[0]);
    assert!(matches!(results[2], Ok(2)), "{:?}", results[2]);
    match &results[1] {
        Err(Error::DeadLetter {
            name, deliveries, ..
        }) => {
            assert!(name.ends_with("redis_tests::deadly"), "{name}");
            assert_eq!(*deliveries, 3);
        }
        other => panic!("{other:?}"),
    }
    assert!(restarts >= 2, "{restarts} restarts");
    // The dead letter: the task's bytes as sent, with what and why.
    let dead: redis::streams::StreamRangeReply = server
        .connection()
        .xrange_all(format!("{prefix}:dead"))
        .unwrap();
    assert_eq!(dead.ids.len(), 1);
    let entry = &dead.ids[0];
    let field = |name: &str| {
        entry
            .get::<String>(name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(field("job"), job);
    assert_eq!(field("task"), "1");
    assert_eq!(field("deliveries"), "3");
    assert!(field("name").ends_with("redis_tests::deadly"));
    assert!(field("reason").contains("delivered 3 times"));
    assert!(field("at").parse::<u64>().unwrap() > 1_600_000_000_000);
    assert!(!field("worker").is_empty() && !field("id").is_empty());
    assert!(!entry.get::<Vec<u8>>("e").unwrap().is_empty());
}

#[test]
fn with_a_key_forged_entries_are_refused_and_never_run() {
    let server = Server::shared();
    let prefix = prefix("signed");
    let key = "a shared secret of the fleet, 32+";
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        key: Some(key.into()),
        ..Default::default()
    };
    let _workers = workers(&server, &setup, 1);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .key(serfn::codec::Key::new(key))
        .build()
        .unwrap();
    let double = serfn::closure!("redis_tests::double", [], move |x: u64| -> u64 { 2 * x });
    let got: Vec<u64> = fleet
        .map(&double, 0..100u64)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(got, (0..100).map(|x| 2 * x).collect::<Vec<_>>());

    // Unsigned and altered task entries, written straight to the stream.
    let mut connection = server.connection();
    let tasks = format!("{prefix}:tasks");
    let _: String = connection
        .xadd(&tasks, "*", &[("e", b"not signed".to_vec())])
        .unwrap();
    let _: String = connection
        .xadd(&tasks, "*", &[("e", vec![0u8; 64])])
        .unwrap();
    // The same map still works, and both forgeries are parked apart from the dead letters.
    let got: Vec<u64> = fleet
        .map(&double, 0..10u64)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(got[9], 18);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let forged: usize = connection.xlen(format!("{prefix}:forged")).unwrap();
        if forged == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{forged} forged entries");
        std::thread::sleep(Duration::from_millis(20));
    }

    assert_eq!(
        connection
            .xlen::<_, usize>(format!("{prefix}:dead"))
            .unwrap(),
        0
    );
    // A driver with another key gets nothing it accepts: its task, refused
    // each time it is sent, fails with the cause.
    let stranger = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .key(serfn::codec::Key::new("another key"))
        .build()
        .unwrap();
    let refused: Vec<serfn::Result<u64>> = stranger.map(&double, 0..1u64).collect();
    match &refused[0] {
        Err(Error::DeadLetter { reason, .. }) => {
            assert!(reason.contains("signed with another key"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

/// Registered in this binary only: the example worker cannot decode it.
#[derive(Serialize, Deserialize)]
struct OnlyHere;

#[serfn::register(name = "redis_tests::OnlyHere")]
impl serfn::Call<f64> for OnlyHere {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x
    }
}

/// The example worker registers this name with the capture `{scale: f32,
/// shift: f32}`: the same name and version, another layout.
#[derive(Serialize, Deserialize)]
struct LayoutProbe {
    scale: f64,
}

#[serfn::register(name = "examples::layout_probe")]
impl serfn::Call<f64> for LayoutProbe {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.scale
    }
}

/// A worker whose stderr goes to a pipe or a file writes plain text, not
/// colour codes. Needs no server: it logs its start before connecting.
#[test]
fn worker_logs_to_a_pipe_have_no_colour_codes() {
    use std::io::Read;
    use std::process::{Command, Stdio};

    let mut child = Command::new(redis_support::example("redis_worker"))
        // Nothing listens on port 1: the worker logs, then retries.
        .arg("redis://127.0.0.1:1")
        .env("RUST_LOG", "serfn=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
            if sender.send(seen.clone()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("serfn redis worker starting") {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(more) => seen = more,
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("serfn redis worker starting"), "{text}");
    assert!(!seen.contains(&0x1b), "colour codes in a pipe: {text:?}");
}

#[test]
fn a_worker_of_another_build_gives_typed_errors_never_garbage() {
    let server = Server::shared();
    let prefix = prefix("another-build");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        program: Some(redis_support::example("redis_worker")),
        ..Default::default()
    };
    let _workers = workers(&server, &setup, 1);
    let fleet = executor(&server, &prefix);
    for result in fleet.map(&SerFn::new(OnlyHere), vec![1.0, 2.0]) {
        match result {
            Err(Error::UnknownFunction { name }) => assert_eq!(name, "redis_tests::OnlyHere"),
            other => panic!("{other:?}"),
        }
    }
    // 2.25 encoded as an f64 reads as two f32s: 2.46875 and 0 in the worker.
    for result in fleet.map(&SerFn::new(LayoutProbe { scale: 2.25 }), vec![1.0]) {
        match result {
            Err(Error::LayoutChanged { name, version: 1 }) => {
                assert_eq!(name, "examples::layout_probe")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn redis_restarted_mid_job_is_a_typed_error_not_a_hang() {
    let server = Server::own();
    let prefix = prefix("restart");
    let _workers = plain_workers(&server, &prefix, 1);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .chunk_size(1)
        .in_flight(4)
        .reconnect(Duration::from_secs(5))
        .build()
        .unwrap();
    let slow = serfn::closure!("redis_tests::slow_ms", [], move |x: u64| -> u64 {
        std::thread::sleep(Duration::from_millis(20));
        x
    });
    let started = Instant::now();
    let mut results = fleet.map(&slow, 0..200u64);
    for i in 0..5 {
        assert_eq!(results.next().unwrap().unwrap(), i);
    }
    server.kill();
    server.restart();
    let rest: Vec<serfn::Result<u64>> = results.collect();
    assert_eq!(rest.len(), 195);
    let first_error = rest
        .iter()
        .position(|r| r.is_err())
        .expect("an error after the restart");
    assert!(rest[first_error..]
        .iter()
        .all(|r| matches!(r, Err(Error::Broker { .. }))));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_task_past_its_timeout_is_a_timeout_and_its_worker_exits() {
    let server = Server::shared();
    let prefix = prefix("timeout");
    let mut worker = plain_workers(&server, &prefix, 1).remove(0);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let sleepy = serfn::closure!("redis_tests::sleepy", [], move |ms: u64| -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    });
    assert_eq!(Executor::call(&fleet, &sleepy, 1).unwrap(), 1);
    match Executor::call(&fleet, &sleepy, 60_000) {
        Err(Error::Timeout { name, timeout }) => {
            assert!(name.ends_with("redis_tests::sleepy"), "{name}");
            assert_eq!(timeout, Duration::from_millis(300));
        }
        other => panic!("{other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = worker.exited() {
            break status;
        }
        assert!(Instant::now() < deadline, "the worker did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(serfn::redis::TIMEOUT_EXIT_CODE));
}

#[test]
fn a_long_task_keeps_its_claim_and_runs_once() {
    let server = Server::shared();
    let prefix = prefix("renew");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        claim_idle_ms: Some(300),
        ..Default::default()
    };
    let _workers = workers(&server, &setup, 2);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .chunk_size(1)
        .build()
        .unwrap();
    let long = serfn::closure!("redis_tests::long", [], move |x: u64| -> u64 {
        std::thread::sleep(Duration::from_millis(1_500)); // five claim idle times
        x
    });
    let map = fleet.map(&long, 0..3u64).job(&format!("{prefix}-job"));
    let got: Vec<u64> = map.collect::<serfn::Result<_>>().unwrap();
    assert_eq!(got, [0, 1, 2]);
    // One answer per task: none was taken over from a live worker and run
    // again. The job was deleted once read; a late second answer would
    // have made its results stream anew.
    assert_eq!(fleet.stats().duplicates, 0);
    std::thread::sleep(Duration::from_millis(2_000));
    let answers: usize = server
        .connection()
        .xlen(format!("{prefix}:job:{prefix}-job:results"))
        .unwrap();
    assert_eq!(answers, 0);
}

#[test]
fn a_driver_that_restarted_reattaches_to_its_job() {
    let server = Server::shared();
    let prefix = prefix("reattach");
    let _workers = plain_workers(&server, &prefix, 2);
    let square = serfn::closure!("redis_tests::square", [], move |x: u64| -> u64 { x * x });
    let job = format!("{prefix}-nightly");
    {
        // The first driver sends 64 tasks, reads five results and goes away.
        let first = RedisExecutor::builder(&server.url)
            .prefix(&prefix)
            .chunk_size(10)
            .in_flight(64)
            .build()
            .unwrap();
        let mut map = first.map(&square, 0..640u64).job(&job);
        assert_eq!(map.job_name(), Some(job.as_str()));
        for i in 0..5 {
            assert_eq!(map.next().unwrap().unwrap(), i * i);
        }
    }
    let second = executor(&server, &prefix);
    let mut results: Vec<(usize, u64)> = second
        .reattach::<u64>(&job)
        .unwrap()
        .map(|(i, r)| (i, r.unwrap()))
        .collect();
    results.sort();
    assert_eq!(results.len(), 640);
    assert!(results
        .iter()
        .enumerate()
        .all(|(i, &(at, x))| at == i && x == (i * i) as u64));
    assert!(matches!(
        second.reattach::<u64>("no such job"),
        Err(Error::Broker { .. })
    ));
    // A name is taken while its job is kept: a new job under it is refused
    // at once, rather than waiting behind the old one's results.
    let mut again = second.map(&square, 0..3u64).job(&job);
    match again.next() {
        Some(Err(Error::Broker { reason })) => {
            assert!(reason.contains("already exists"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // A job whose every result was read is deleted: its name is free again.
    let done = format!("{prefix}-done");
    for _ in 0..2 {
        let squares: Vec<u64> = second
            .map(&square, 0..3u64)
            .job(&done)
            .collect::<serfn::Result<_>>()
            .unwrap();
        assert_eq!(squares, [0, 1, 4]);
    }
    let left: Vec<String> = server
        .connection()
        .keys(format!("{prefix}:job:{done}*"))
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_worker_stops_when_asked() {
    let server = Server::shared();
    let worker = RedisWorker::new(&server.url).prefix(prefix("stop"));
    let stop = worker.stop_flag();
    let running = std::thread::spawn(move || worker.run());
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    running.join().unwrap().unwrap();
}

#[test]
fn a_result_over_the_drivers_limits_is_too_large_not_a_hang() {
    let server = Server::shared();
    let prefix = prefix("too_large");
    let _workers = plain_workers(&server, &prefix, 1);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .limits(serfn::Limits::default().max_bytes(64 << 10))
        .build()
        .unwrap();
    let big = serfn::closure!("redis_tests::big_answer", [], move |len: u32| -> Vec<u8> {
        vec![7; len as usize]
    });
    let started = Instant::now();
    match fleet.call(&big, 1 << 20) {
        Err(Error::TooLarge { len, limit }) => {
            assert_eq!(limit, 64 << 10);
            assert!(len > 1 << 20, "{len}");
        }
        other => panic!("{:?}", other.map(|v| v.len())),
    }
    // Well before any timeout: the answer came and was refused.
    assert!(started.elapsed() < Duration::from_secs(30));
    // A small answer on the same executor still comes through.
    assert_eq!(fleet.call(&big, 10).unwrap(), vec![7; 10]);
}

/// A worker built without the `tokio` feature refuses an async function's
/// task with a typed error, and serves on.
#[cfg(not(feature = "tokio"))]
#[test]
fn without_the_runtime_an_async_function_is_refused_and_the_worker_serves_on() {
    let server = Server::shared();
    let prefix = prefix("async_refused");
    let workers = plain_workers(&server, &prefix, 1);
    let fleet = executor(&server, &prefix);
    let pid = serfn::closure!("redis_tests::pid", [], move || -> u32 {
        std::process::id()
    });
    let before = fleet.call(&pid, ()).unwrap();
    assert_eq!(before, workers[0].child.id());
    let twice = serfn::closure!("redis_tests::twice", [], async move |x: u64| -> u64 {
        2 * x
    });
    for result in fleet.map(&twice, vec![1, 2]) {
        assert!(
            matches!(&result, Err(Error::SignatureMismatch { expected, .. }) if expected.contains("`tokio` feature")),
            "{result:?}"
        );
    }
    assert_eq!(
        fleet.call(&pid, ()).unwrap(),
        before,
        "the worker serves on"
    );
}

/// Cancelling a submitted task says what it did: one no worker had read
/// never runs; one a worker runs is not stopped (the worker lives) and
/// says so; one answered is finished.
#[test]
fn cancelling_a_submitted_task_says_honestly_whether_it_runs() {
    let server = Server::shared();
    let prefix = prefix("cancel_one");
    let workers = plain_workers(&server, &prefix, 1);
    let fleet = executor(&server, &prefix);
    let dir = std::env::temp_dir().join(format!("serfn-{prefix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    // Waits `ms`, then leaves a file at `path`: the proof that it ran.
    let touch = serfn::closure!("redis_tests::touch", [], move |path: String,
                                                                ms: u64|
          -> u32 {
        std::thread::sleep(Duration::from_millis(ms));
        std::fs::write(&path, b"ran").unwrap();
        std::process::id()
    });
    let pid = workers[0].child.id();
    assert_eq!(fleet.call(&touch, (path("first"), 0)).unwrap(), pid);

    let long = fleet.submit(&touch, (path("long"), 1_500));
    std::thread::sleep(Duration::from_millis(300)); // the worker takes it
    let queued = fleet.submit(&touch, (path("queued"), 0));
    std::thread::sleep(Duration::from_millis(300)); // sent, behind it
    assert_eq!(queued.cancel(), Cancelled::NotStarted);
    assert_eq!(long.cancel(), Cancelled::Running);
    // The one worker takes tasks in order: this one comes after both.
    assert_eq!(fleet.call(&touch, (path("after"), 0)).unwrap(), pid);
    assert!(dir.join("long").exists(), "the running task ran to its end");
    assert!(!dir.join("queued").exists(), "the cancelled task never ran");

    let done = fleet.submit(&touch, (path("done"), 0));
    let waited = Instant::now();
    while !done.is_finished() {
        assert!(waited.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(done.cancel(), Cancelled::Finished);
    let _ = std::fs::remove_dir_all(&dir);
}
