//! The Redis fleet through outages: Redis restarted with and without
//! persistence while workers are killed, loading its data, held by a
//! script; and a driver that gives up.
//!
//! Run with `cargo test --features redis --test test_redis_faults`; the
//! shared server is `SERFN_REDIS_URL` (see `tests/support/redis.rs`); the
//! tests that restart Redis start their own.

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Commands;
use redis_support::{prefix, Server, Worker, WorkerSetup};
use serfn::redis::RedisExecutor;
use serfn::Error;

/// The worker's side of this binary: see `Worker::start`.
#[test]
fn redis_worker_entry() {
    redis_support::serve_from_env();
}

/// A small xorshift, seeded and printed, for "random moments".
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("rng seed {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Workers kept running: one that exits is started again, as systemd would.
struct Supervised {
    workers: Arc<Mutex<Vec<Worker>>>,
    stop: Arc<AtomicBool>,
    watching: Option<std::thread::JoinHandle<()>>,
}

impl Supervised {
    fn start(url: &str, setup: &WorkerSetup, n: usize) -> Supervised {
        let workers: Vec<Worker> = (0..n).map(|_| Worker::start(url, setup)).collect();
        let workers = Arc::new(Mutex::new(workers));
        let stop = Arc::new(AtomicBool::new(false));
        let watching = {
            let (workers, stop) = (Arc::clone(&workers), Arc::clone(&stop));
            let (url, setup) = (url.to_owned(), setup.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    for worker in workers.lock().unwrap().iter_mut() {
                        if worker.exited().is_some() {
                            *worker = Worker::start(&url, &setup);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Supervised {
            workers,
            stop,
            watching: Some(watching),
        }
    }

    /// `kill -9` of worker `i`, which the supervisor starts again.
    fn kill(&self, i: usize) {
        let mut workers = self.workers.lock().unwrap();
        let n = workers.len();
        workers[i % n].kill();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(watching) = self.watching.take() {
            let _ = watching.join();
        }
    }
}

fn mix(x: u64) -> u64 {
    (x ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 7
}

#[test]
fn twenty_thousand_items_through_ten_restarts_and_twenty_kills_each_exactly_once() {
    const ITEMS: u64 = 20_000;
    let server = Server::own_persistent();
    let prefix = prefix("outages");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        claim_idle_ms: Some(300),
        ..Default::default()
    };
    let supervised = Arc::new(Supervised::start(&server.url, &setup, 3));
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .chunk_size(10)
        .in_flight(32)
        .reconnect(Duration::from_secs(10))
        .build()
        .unwrap();
    let f = serfn::closure!("faults::mixed", [], move |x: u64| -> u64 {
        std::thread::sleep(Duration::from_micros(300));
        mix(x)
    });
    let mut rng = Rng::seeded();
    // Outages and kills at random points of the map's progress.
    let mut restart_at: Vec<u64> = (0..10)
        .map(|i| 1_000 + i * 1_800 + rng.below(900))
        .collect();
    restart_at.sort();
    let kill_at: Vec<u64> = (0..20).map(|i| 300 + i * 950 + rng.below(600)).collect();
    let done = Arc::new(AtomicU64::new(0));
    let outages: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::default();
    let server = Arc::new(server);
    let restarting = {
        let (done, outages, server) = (done.clone(), outages.clone(), server.clone());
        let pauses: Vec<u64> = (0..10).map(|_| rng.below(300)).collect();
        std::thread::spawn(move || {
            for (at, pause) in restart_at.into_iter().zip(pauses) {
                while done.load(Ordering::SeqCst) < at {
                    std::thread::sleep(Duration::from_millis(2));
                }
                let down = Instant::now();
                server.stop();
                let stopped = down.elapsed();
                std::thread::sleep(Duration::from_millis(pause));
                server.restart();
                let up = Instant::now();
                eprintln!("outage: stopped in {stopped:?}, down {:?}", up - down);
                outages.lock().unwrap().push((up, up - down));
            }
        })
    };
    let killing = {
        let (done, supervised) = (done.clone(), supervised.clone());
        std::thread::spawn(move || {
            for (i, at) in kill_at.into_iter().enumerate() {
                while done.load(Ordering::SeqCst) < at {
                    std::thread::sleep(Duration::from_millis(2));
                }
                supervised.kill(i);
            }
        })
    };
    let started = Instant::now();
    let mut seen = HashSet::new();
    let mut arrivals = Vec::with_capacity(ITEMS as usize);
    for (index, result) in fleet.map_unordered(&f, 0..ITEMS) {
        let x = index as u64;
        match result {
            Ok(y) => assert_eq!(y, mix(x), "item {x}"),
            Err(error) => panic!("item {x} failed: {error}"),
        }
        assert!(seen.insert(x), "item {x} twice");
        arrivals.push(Instant::now());
        done.fetch_add(1, Ordering::SeqCst);
    }
    let took = started.elapsed();
    assert_eq!(seen.len() as u64, ITEMS);
    restarting.join().unwrap();
    killing.join().unwrap();
    let outages = outages.lock().unwrap();
    assert_eq!(outages.len(), 10);
    // The closing figures: each outage's length, and the time from its end
    // to the first result after it.
    let mut recoveries: Vec<Duration> = outages
        .iter()
        .filter_map(|(up, _)| arrivals.iter().find(|at| *at > up).map(|at| *at - *up))
        .collect();
    recoveries.sort();
    let longest = outages.iter().map(|(_, down)| *down).max().unwrap();
    eprintln!(
        "{ITEMS} items in {took:?} through 10 restarts (longest down {longest:?}) and 20 kills; \
         outage end to first result: median {:?}, max {:?}; stats {:?}",
        recoveries[recoveries.len() / 2],
        recoveries.last().unwrap(),
        fleet.stats()
    );
    let stats = fleet.stats();
    assert_eq!(stats.items, ITEMS);
    assert_eq!(stats.forged, 0);
}

#[test]
fn a_lazy_map_rides_out_a_restart_while_sending_and_a_busy_script() {
    let server = Arc::new(Server::own_persistent());
    let prefix = prefix("lazy");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        claim_idle_ms: Some(300),
        ..Default::default()
    };
    let _worker = Worker::start(&server.url, &setup);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .chunk_size(1)
        .build()
        .unwrap();
    let plus = serfn::closure!("faults::plus", [], move |x: u64| -> u64 { x + 100 });
    // One item every 300 ms: the driver is sending when Redis goes away.
    let items = (0..8u64).inspect(|_| std::thread::sleep(Duration::from_millis(300)));
    let faults = {
        let server = Arc::clone(&server);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            server.stop();
            server.restart();
            std::thread::sleep(Duration::from_millis(600));
            // A script that holds Redis: other clients get `BUSY` meanwhile.
            let mut connection = server.connection();
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("lua-time-limit")
                .arg(20)
                .query(&mut connection)
                .unwrap();
            let started = Instant::now();
            let _: i64 = redis::cmd("EVAL")
                .arg("local i = 0 while i < tonumber(ARGV[1]) do i = i + 1 end return 1")
                .arg(0)
                .arg(3_000_000)
                .query(&mut connection)
                .unwrap();
            started.elapsed()
        })
    };
    let got: Vec<serfn::Result<u64>> = fleet.map(&plus, items).collect();
    let busy = faults.join().unwrap();
    eprintln!("Redis held by a script for {busy:?}");
    for (x, result) in got.into_iter().enumerate() {
        assert_eq!(result.unwrap(), x as u64 + 100);
    }
}

#[test]
fn a_map_waits_out_redis_loading_its_data() {
    let server = Arc::new(Server::own_persistent());
    let prefix = prefix("loading");
    // Data for Redis to load when it restarts: 3,000 keys, each loaded
    // 0.5 ms late (`key-load-delay`), answering `LOADING` meanwhile.
    let mut connection = server.connection();
    let mut pipe = redis::pipe();
    for i in 0..3_000 {
        pipe.set(format!("{prefix}:ballast:{i}"), "x".repeat(50))
            .ignore();
    }
    let _: () = pipe.query(&mut connection).unwrap();
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        claim_idle_ms: Some(300),
        ..Default::default()
    };
    let _worker = Worker::start(&server.url, &setup);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .chunk_size(1)
        .build()
        .unwrap();
    let plus = serfn::closure!("faults::plus_loading", [], move |x: u64| -> u64 { x + 7 });
    let items = (0..20u64).inspect(|_| std::thread::sleep(Duration::from_millis(100)));
    let restarting = {
        let server = Arc::clone(&server);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            // The keys into the append-only file's base, which is what
            // `key-load-delay` slows.
            let mut connection = server.connection();
            let _: () = redis::cmd("BGREWRITEAOF").query(&mut connection).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let info: String = redis::cmd("INFO")
                    .arg("persistence")
                    .query(&mut connection)
                    .unwrap();
                if info.contains("aof_rewrite_in_progress:0")
                    && info.contains("aof_rewrite_scheduled:0")
                {
                    break;
                }
                assert!(Instant::now() < deadline, "the rewrite did not end");
                std::thread::sleep(Duration::from_millis(10));
            }
            server.stop();
            server
                .restart_with("--key-load-delay 500 --loading-process-events-interval-bytes 1024");
            let mut loading = Duration::ZERO;
            let started = Instant::now();
            while let Err(error) = redis::cmd("PING").query::<String>(&mut server.connection()) {
                assert_eq!(error.code(), Some("LOADING"), "{error}");
                loading = started.elapsed();
                std::thread::sleep(Duration::from_millis(10));
            }
            loading
        })
    };
    let got: Vec<serfn::Result<u64>> = fleet.map(&plus, items).collect();
    let loading = restarting.join().unwrap();
    eprintln!("Redis answered LOADING for {loading:?}");
    assert!(loading > Duration::ZERO, "Redis was never seen loading");
    for (x, result) in got.into_iter().enumerate() {
        assert_eq!(result.unwrap(), x as u64 + 7);
    }
}

#[test]
fn an_outage_without_persistence_fails_every_item_left_naming_the_job() {
    let server = Server::own();
    let prefix = prefix("lost");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        ..Default::default()
    };
    let _workers: Vec<Worker> = (0..2).map(|_| Worker::start(&server.url, &setup)).collect();
    let window = Duration::from_secs(3);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .chunk_size(1)
        .in_flight(8)
        .reconnect(window)
        .build()
        .unwrap();
    let slow = serfn::closure!("faults::slow", [], move |x: u64| -> u64 {
        std::thread::sleep(Duration::from_millis(20));
        x + 1
    });
    let job = format!("{prefix}-job");
    let mut results = fleet.map(&slow, 0..300u64).job(&job);
    for i in 0..20 {
        assert_eq!(results.next().unwrap().unwrap(), i + 1);
    }
    server.kill();
    server.restart();
    let restarted = Instant::now();
    let rest: Vec<serfn::Result<u64>> = results.collect();
    let took = restarted.elapsed();
    assert_eq!(rest.len(), 280);
    let first_error = rest.iter().position(|r| r.is_err()).expect("an error");
    for (i, result) in rest.iter().enumerate() {
        match result {
            Ok(y) => assert!(i < first_error && *y == i as u64 + 21),
            Err(Error::Broker { reason }) => {
                assert!(reason.contains(&format!("lost job `{job}`")), "{reason}")
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    eprintln!("without persistence: every item left failed {took:?} after the restart");
    assert!(took < window, "{took:?}");
    // The lost job's name is free: run again under it, every item comes
    // (the driver that gave up marked it cancelled; the new one is not).
    let again: Vec<u64> = fleet
        .map(&slow, 0..20u64)
        .job(&job)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(again, (1..21).collect::<Vec<_>>());
}

#[test]
fn workers_skip_the_tasks_of_a_driver_that_gave_up() {
    let server = Server::shared();
    let prefix = prefix("cancelled");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        ..Default::default()
    };
    let _worker = Worker::start(&server.url, &setup);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .chunk_size(1)
        .in_flight(40)
        .map_deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    // Each body run leaves a mark, so that bodies can be counted.
    let marks = format!("{prefix}:marks");
    let (url, counted) = (server.url.clone(), marks.clone());
    let marked = serfn::closure!("faults::marked", [url: String, counted: String], move |x: u64| -> u64 {
        let mut connection = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
        let _: () = connection.incr(&counted, 1).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        x
    });
    let results: Vec<serfn::Result<u64>> = fleet.map(&marked, 0..40u64).collect();
    let answered = results.iter().filter(|r| r.is_ok()).count();
    assert!(answered < 40, "{answered}");
    for result in &results {
        match result {
            Ok(_) => {}
            Err(Error::Broker { reason }) => assert!(reason.contains("map deadline"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    // The tasks left are taken and dropped, not run.
    let mut connection = server.connection();
    let deadline = Instant::now() + Duration::from_secs(20);
    while connection
        .xlen::<_, usize>(format!("{prefix}:tasks"))
        .unwrap()
        > 0
    {
        assert!(Instant::now() < deadline, "tasks left in the stream");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let bodies: usize = connection
        .get::<_, Option<usize>>(&marks)
        .unwrap()
        .unwrap_or(0);
    eprintln!("{answered} answered, {bodies} bodies run of 40 tasks");
    // Beyond the answers read: one answered but not read when the driver
    // gave up, the one running then, and one started within 100 ms of it
    // (a worker checks a job at most that often). Never the 40.
    assert!(
        bodies <= answered + 3,
        "{bodies} bodies for {answered} answers"
    );
}

#[test]
fn a_worker_backs_off_growing_while_redis_is_away() {
    // A port that accepts connections and closes them at once: each try
    // of the worker is one connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let setup = WorkerSetup {
        prefix: prefix("backoff"),
        ..Default::default()
    };
    let _worker = Worker::start(&url, &setup);
    let mut tries = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        match listener.accept() {
            Ok((stream, _)) => {
                drop(stream);
                tries.push(started.elapsed());
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    let gaps: Vec<Duration> = tries.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("{} tries in 5 s, gaps {gaps:?}", tries.len());
    // Pauses of 50 ms doubling to 2 s (±25 %) fit 5 to 8 tries in 5 s; a
    // fixed 200 ms pause would make 25.
    assert!((3..=10).contains(&tries.len()), "{} tries", tries.len());
    // Growing: the last pause is several times the first.
    assert!(gaps.last().unwrap() > &(gaps[0] * 4), "{gaps:?}");
}
