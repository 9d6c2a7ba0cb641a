//! The Redis fleet against a writer with Redis access but no key, and
//! against tasks that vanish: every genuine answer exact or a typed error
//! in bounded time, forgeries counted and parked apart, key mismatches
//! named, the streams bounded through a flood.
//!
//! Run with `cargo test --features redis --test test_redis_hostile`; the
//! server is `SERFN_REDIS_URL` (see `tests/support/redis.rs`).

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Commands;
use redis_support::{prefix, Server, Worker, WorkerSetup};
use serfn::codec::Key;
use serfn::redis::RedisExecutor;
use serfn::Error;

/// The worker's side of this binary: see `Worker::start`.
#[test]
fn redis_worker_entry() {
    redis_support::serve_from_env();
}

/// The task entries in the stream, in order: id and bytes.
fn task_entries(connection: &mut redis::Connection, tasks: &str) -> Vec<(String, Vec<u8>)> {
    let reply: redis::streams::StreamRangeReply = connection.xrange_all(tasks).unwrap();
    reply
        .ids
        .into_iter()
        .map(|id| {
            let bytes: Vec<u8> = id.get("e").unwrap();
            (id.id, bytes)
        })
        .collect()
}

#[test]
fn nothing_a_keyless_writer_adds_changes_a_genuine_answer() {
    const TASKS: u64 = 12;
    let server = Server::shared();
    let prefix = prefix("keyless");
    let secret = "the fleet's key, which the writer lacks";
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .key(Key::new(secret))
        .chunk_size(1)
        .in_flight(TASKS as usize)
        .build()
        .unwrap();
    let triple = serfn::closure!("faults::triple", [], move |x: u64| -> u64 { 3 * x + 1 });
    let job = format!("{prefix}-job");
    let tasks = format!("{prefix}:tasks");
    // The writer acts once every task is queued, and before any worker runs.
    let attack = {
        let (url, prefix, job, tasks) = (
            server.url.clone(),
            prefix.clone(),
            job.clone(),
            tasks.clone(),
        );
        std::thread::spawn(move || {
            let mut connection = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while connection.xlen::<_, u64>(&tasks).unwrap() < TASKS {
                assert!(Instant::now() < deadline, "the tasks were not sent");
                std::thread::sleep(Duration::from_millis(5));
            }
            let entries = task_entries(&mut connection, &tasks);
            let add = |connection: &mut redis::Connection, bytes: &[u8]| {
                let _: String = connection.xadd(&tasks, "*", &[("e", bytes)]).unwrap();
            };
            let del = |connection: &mut redis::Connection, id: &str| {
                let _: usize = connection.xdel(&tasks, &[id]).unwrap();
            };
            // The corrupted copy: the genuine entry deleted, a copy with
            // one byte flipped, then the genuine bytes again.
            let (id, bytes) = &entries[0];
            del(&mut connection, id);
            let mut flipped = bytes.clone();
            flipped[bytes.len() / 2] ^= 1;
            add(&mut connection, &flipped);
            add(&mut connection, bytes);
            // Copies.
            add(&mut connection, &entries[1].1);
            add(&mut connection, &entries[1].1);
            // Reordered: deleted and added back last first.
            for (id, _) in &entries[2..6] {
                del(&mut connection, id);
            }
            for (_, bytes) in entries[2..6].iter().rev() {
                add(&mut connection, bytes);
            }
            // Deleted.
            del(&mut connection, &entries[6].0);
            // A forged dead-letter report, with the genuine bytes.
            let report: [(&str, &[u8]); 4] = [
                ("e", &entries[7].1),
                ("reason", b"forged report"),
                ("job", job.as_bytes()),
                ("task", b"7"),
            ];
            let _: String = connection
                .xadd(format!("{prefix}:dead"), "*", &report)
                .unwrap();
            let _: String = connection
                .xadd(format!("{prefix}:forged"), "*", &report)
                .unwrap();
            // The genuine bytes without their tag: not signed.
            let unsigned = &entries[8].1[..entries[8].1.len() - serfn::codec::TAG_LEN];
            add(&mut connection, unsigned);
            // Garbage, and an entry without the field.
            add(&mut connection, b"garbage");
            let _: String = connection.xadd(&tasks, "*", &[("x", "y")]).unwrap();
            // The stored function replaced by garbage: workers refuse it,
            // and its driver stores it again.
            let functions: Vec<String> = connection.keys(format!("{prefix}:fn:*")).unwrap();
            assert_eq!(functions.len(), 1);
            let _: () = connection.set(&functions[0], b"not the function").unwrap();
            // Forged results: garbage, no field, and a task entry's bytes.
            let results = format!("{prefix}:job:{job}:results");
            let _: String = connection.xadd(&results, "*", &[("e", b"forged")]).unwrap();
            let _: String = connection.xadd(&results, "*", &[("x", "y")]).unwrap();
            let _: String = connection
                .xadd(&results, "*", &[("e", &entries[9].1)])
                .unwrap();
        })
    };
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        key: Some(secret.into()),
        ..Default::default()
    };
    let starting = {
        let (url, attack) = (server.url.clone(), attack);
        std::thread::spawn(move || {
            attack.join().unwrap();
            (0..2)
                .map(|_| Worker::start(&url, &setup))
                .collect::<Vec<_>>()
        })
    };
    let got: Vec<serfn::Result<u64>> = fleet.map(&triple, 0..TASKS).job(&job).collect();
    let _workers = starting.join().unwrap();
    for (x, result) in got.into_iter().enumerate() {
        match result {
            Ok(y) => assert_eq!(y, 3 * x as u64 + 1),
            Err(error) => panic!("item {x}: {error}"),
        }
    }
    let stats = fleet.stats();
    assert_eq!(stats.forged, 3, "{stats:?}");
    // The function was stored again over the garbage.
    let mut connection = server.connection();
    let functions: Vec<String> = connection.keys(format!("{prefix}:fn:*")).unwrap();
    let stored: Vec<u8> = connection.get(&functions[0]).unwrap();
    assert_ne!(stored, b"not the function");
    // The entries workers refused are parked apart and counted, naming no job.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let parked: Option<u64> = connection.get(format!("{prefix}:forged:count")).unwrap();
        if parked == Some(4) {
            break;
        }
        assert!(Instant::now() < deadline, "{parked:?} parked");
        std::thread::sleep(Duration::from_millis(20));
    }
    let forged: redis::streams::StreamRangeReply =
        connection.xrange_all(format!("{prefix}:forged")).unwrap();
    let reasons: Vec<String> = forged
        .ids
        .iter()
        .filter(|entry| !entry.map.contains_key("job"))
        .map(|entry| entry.get("reason").unwrap())
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons
        .iter()
        .any(|r| r.ends_with("this entry is not signed, but a key is set")));
    assert!(reasons.iter().any(|r| r.contains("altered")));
    // Only the writer's own report is in the dead-letter stream.
    assert_eq!(
        connection
            .xlen::<_, usize>(format!("{prefix}:dead"))
            .unwrap(),
        1
    );
}

#[test]
fn tasks_whose_entries_vanish_fail_typed_within_the_deadline() {
    let server = Server::shared();
    let prefix = prefix("vanish");
    let tasks = format!("{prefix}:tasks");
    // No worker: a writer deletes every task entry as it comes.
    let stop = Arc::new(AtomicBool::new(false));
    let deleting = {
        let (url, tasks, stop) = (server.url.clone(), tasks.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut connection = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            while !stop.load(Ordering::SeqCst) {
                let _: usize = redis::cmd("XTRIM")
                    .arg(&tasks)
                    .arg("MAXLEN")
                    .arg(0)
                    .query(&mut connection)
                    .unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let slack = Duration::from_secs(8);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .chunk_size(1)
        .task_slack(slack)
        .build()
        .unwrap();
    let double = serfn::closure!("faults::double", [], move |x: u64| -> u64 { 2 * x });
    let started = Instant::now();
    let results: Vec<serfn::Result<u64>> = fleet.map(&double, 0..3u64).collect();
    let vanished = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    deleting.join().unwrap();
    for result in results {
        match result {
            Err(Error::Broker { reason }) => assert!(reason.contains("vanished"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    // Sent three times each, then failed: well within the task deadline.
    assert_eq!(fleet.stats().tasks, 3);
    assert!(vanished < slack, "{vanished:?}");

    // Queued with no worker to take them: failed at the deadline.
    let slack = Duration::from_secs(2);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .chunk_size(1)
        .task_slack(slack)
        .build()
        .unwrap();
    let started = Instant::now();
    let results: Vec<serfn::Result<u64>> = fleet.map(&double, 0..3u64).collect();
    let waited = started.elapsed();
    for result in results {
        match result {
            Err(Error::Broker { reason }) => assert!(reason.contains("deadline"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    eprintln!("vanished tasks failed after {vanished:?}; unanswered ones after {waited:?} (slack {slack:?})");
    // Not before the deadline; after it, at the next check (once a second;
    // the bound is loose for a loaded machine).
    assert!(
        waited >= slack && waited < slack + Duration::from_secs(5),
        "{waited:?}"
    );
}

#[test]
fn a_key_mismatch_names_its_cause() {
    let server = Server::shared();
    let key = "a key only one side has";
    let square = serfn::closure!("faults::square", [], move |x: u64| -> u64 { x * x });
    for (signed_driver, expected) in [
        (true, "this entry is signed, but this worker has no key"),
        (false, "this entry is not signed, but a key is set"),
    ] {
        let prefix = prefix(if signed_driver {
            "mismatch-d"
        } else {
            "mismatch-w"
        });
        let setup = WorkerSetup {
            prefix: prefix.clone(),
            key: (!signed_driver).then(|| key.to_owned()),
            ..Default::default()
        };
        let _worker = Worker::start(&server.url, &setup);
        let mut builder = RedisExecutor::builder(&server.url).prefix(&prefix);
        if signed_driver {
            builder = builder.key(Key::new(key));
        }
        let fleet = builder.build().unwrap();
        match fleet.call(&square, 3) {
            Err(Error::DeadLetter { reason, .. }) => {
                assert!(reason.contains(expected), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn the_forged_stream_stays_under_its_cap_through_a_flood() {
    const FLOOD: usize = 100_000;
    const CAP: usize = 1_000;
    let server = Server::shared();
    let prefix = prefix("flood");
    let tasks = format!("{prefix}:tasks");
    let mut connection = server.connection();
    let started = Instant::now();
    for chunk in 0..FLOOD / 10_000 {
        let mut pipe = redis::pipe();
        for i in 0..10_000 {
            pipe.xadd(&tasks, "*", &[("e", format!("forged {chunk}/{i}"))])
                .ignore();
        }
        let _: () = pipe.query(&mut connection).unwrap();
    }
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        dead_letter_cap: Some(CAP),
        ..Default::default()
    };
    let _workers: Vec<Worker> = (0..4).map(|_| Worker::start(&server.url, &setup)).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let parked: Option<usize> = connection.get(format!("{prefix}:forged:count")).unwrap();
        if parked == Some(FLOOD) {
            break;
        }
        assert!(Instant::now() < deadline, "{parked:?} parked");
        std::thread::sleep(Duration::from_millis(50));
    }
    let kept: usize = connection.xlen(format!("{prefix}:forged")).unwrap();
    let dead: usize = connection.xlen(format!("{prefix}:dead")).unwrap();
    let queued: usize = connection.xlen(&tasks).unwrap();
    eprintln!(
        "{FLOOD} forged entries parked in {:?}; {kept} kept",
        started.elapsed()
    );
    // `MAXLEN ~` trims whole nodes (100 entries by default): near the cap.
    assert!(kept <= CAP + 100, "{kept} kept");
    assert_eq!((dead, queued), (0, 0));
}
