//! The `serfn` binary against a real Redis server and real worker processes
//! (this test binary re-executed, as in the library's Redis tests).
//!
//! The server is `SERFN_REDIS_URL` (CI starts one with `.ci/redis-up.sh`);
//! without it, the tests fail under `CI=true` and start their own otherwise.

#[path = "../../tests/support/redis.rs"]
mod redis_support;

/// What `redis_support` needs of the library tests' support module.
mod support {
    use std::time::{Duration, Instant};

    /// Cargo flags for the wire format: this package's is serfn's default.
    pub fn format_flags() -> Vec<&'static str> {
        Vec::new()
    }

    /// Polls until `done()` holds; a bounded wait, not a timing assertion.
    pub fn eventually(done: impl Fn() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis_support::{prefix, Server, Worker, WorkerSetup};
use serde_json::Value;
use serfn::redis::RedisExecutor;
use serfn::{Error, SerFn};
use support::eventually;

/// The worker's side of this binary: see `Worker::start`.
#[test]
fn redis_worker_entry() {
    redis_support::serve_from_env();
}

/// Runs `serfn ARGS`.
fn serfn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_serfn"))
        .args(args)
        .env_remove("SERFN_REDIS_URL")
        .env_remove("SERFN_PREFIX")
        .output()
        .unwrap()
}

/// Runs `serfn ARGS --json`, which must succeed, and parses its one object.
fn serfn_json(args: &[&str]) -> Value {
    let output = serfn(&[args, &["--json"]].concat());
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one object, one line: {text}");
    serde_json::from_str(&text).unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn executor(server: &Server, prefix: &str) -> RedisExecutor {
    RedisExecutor::builder(&server.url)
        .prefix(prefix)
        .chunk_size(1)
        .build()
        .unwrap()
}

fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("serfn-cli-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn status_json_shows_both_workers_their_task_counts_and_the_queue() {
    let server = Server::shared();
    let prefix = prefix("cli-status");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        ..Default::default()
    };
    let workers: Vec<Worker> = (0..2).map(|_| Worker::start(&server.url, &setup)).collect();
    let fleet = executor(&server, &prefix);
    let triple = serfn::closure!("cli_tests::triple", [], move |x: u64| -> u64 { 3 * x });
    let got: Vec<u64> = fleet
        .map(&triple, 0..20)
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(got[19], 57);
    // Two tasks running, three waiting.
    let hold = serfn::closure!("cli_tests::hold", [], move |x: u64| -> u64 {
        std::thread::sleep(std::time::Duration::from_secs(3));
        x
    });
    let _held: Vec<_> = (0..5).map(|i| fleet.submit(&hold, i)).collect();

    let args = ["status", server.url.as_str(), "--prefix", prefix.as_str()];
    let settled = eventually(|| {
        let status = serfn_json(&args);
        let done: u64 = status["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["done"].as_u64().unwrap())
            .sum();
        let running = status["workers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| !w["current"].is_null())
            .count();
        let queue = (&status["queue"]["waiting"], &status["queue"]["pending"]);
        done == 20 && running == 2 && queue == (&Value::from(3), &Value::from(2))
    });
    let status = serfn_json(&args);
    assert!(settled, "{status:#}");
    let listed = status["workers"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let pids: Vec<u64> = workers.iter().map(|w| u64::from(w.child.id())).collect();
    for worker in listed {
        assert!(
            pids.contains(&worker["pid"].as_u64().unwrap()),
            "{worker:#}"
        );
        assert_eq!(worker["version"], env!("CARGO_PKG_VERSION"));
        assert!(worker["current"]["function"]
            .as_str()
            .unwrap()
            .ends_with("cli_tests::hold"));
    }
    assert_eq!(status["prefix"], prefix.as_str());
    assert_eq!(status["pending"].as_array().unwrap().len(), 2);
    assert_eq!(status["dead_letters"], 0);
    // The 20-task map is finished (its keys kept, or deleted once its driver
    // read every result); the five one-task jobs are in flight.
    let jobs = status["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 5, "{status:#}");
    assert!(
        jobs.iter()
            .all(|job| job["answered"] == 0 && job["tasks"] == 1),
        "{status:#}"
    );
    assert!(status["finished_jobs"].as_u64().unwrap() <= 1);

    // The human form names both workers, in a table.
    let human = serfn(&args);
    assert!(human.status.success());
    let text = stdout(&human);
    assert!(
        text.contains("2 workers, 3 tasks waiting, 2 pending, 0 dead letters"),
        "{text}"
    );
    for worker in listed {
        assert!(text.contains(worker["name"].as_str().unwrap()), "{text}");
    }
    assert!(
        text.contains("WORKER") && text.contains("PENDING ON"),
        "{text}"
    );
}

/// Aborts its worker while `{dir}/poison` exists; otherwise notes `{dir}/ran-{x}`.
fn poison(dir: &Path) -> SerFn<u32, u32> {
    let dir = dir.to_str().unwrap().to_owned();
    serfn::closure!("cli_tests::poison", [dir: String], move |x: u32| -> u32 {
        let dir = std::path::Path::new(dir);
        if dir.join("poison").exists() {
            std::process::abort();
        }
        std::fs::write(dir.join(format!("ran-{x}")), b"").unwrap();
        x * 10
    })
}

/// Keeps `n` workers alive, as a supervisor (systemd) would.
struct Supervisor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervisor {
    fn start(url: &str, setup: &WorkerSetup, n: usize) -> Supervisor {
        let stop = Arc::new(AtomicBool::new(false));
        let (url, setup, stopping) = (url.to_owned(), setup.clone(), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut workers: Vec<Worker> = (0..n).map(|_| Worker::start(&url, &setup)).collect();
            while !stopping.load(Ordering::SeqCst) {
                for worker in &mut workers {
                    if worker.exited().is_some() {
                        *worker = Worker::start(&url, &setup);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Supervisor {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_poisoned_task_is_listed_with_its_reason_requeued_run_again_and_purged() {
    let server = Server::shared();
    let prefix = prefix("cli-dead");
    let dir = scratch("dead");
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        claim_idle_ms: Some(200),
        max_deliveries: Some(1),
        ..Default::default()
    };
    let _supervisor = Supervisor::start(&server.url, &setup, 2);
    let fleet = executor(&server, &prefix);
    let f = poison(&dir);
    std::fs::write(dir.join("poison"), b"").unwrap();
    let job = format!("poisoned-{}", std::process::id());
    let results: Vec<serfn::Result<u32>> = fleet.map(&f, [4]).job(&job).collect();
    assert!(
        matches!(results[0], Err(Error::DeadLetter { .. })),
        "{results:?}"
    );

    let (url, prefix) = (server.url.as_str(), prefix.as_str());
    // The worker that gave up on it counts it as failed.
    let failed = || {
        let status = serfn_json(&["status", url, "--prefix", prefix]);
        let workers = status["workers"].as_array().unwrap().clone();
        workers
            .iter()
            .map(|w| w["failed"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert!(eventually(|| failed() == 1), "{} failed", failed());
    let listed = serfn_json(&["dead-letters", url, "--prefix", prefix]);
    assert_eq!(listed["total"], 1, "{listed:#}");
    let dead = &listed["dead_letters"][0];
    let reason = dead["reason"].as_str().unwrap();
    assert!(
        reason.contains("delivered 2 times, more than the 1 allowed"),
        "{reason}"
    );
    assert_eq!(dead["job"], job.as_str());
    assert_eq!(dead["task"], 0);
    assert_eq!(dead["deliveries"], 2);
    assert!(dead["function"]
        .as_str()
        .unwrap()
        .ends_with("cli_tests::poison"));
    let id = dead["id"].as_str().unwrap().to_owned();
    let human = stdout(&serfn(&["dead-letters", url, "--prefix", prefix]));
    assert!(
        human.starts_with("1 dead letter\n") && human.contains(reason),
        "{human}"
    );
    assert!(human.contains(&id) && human.contains(&job), "{human}");

    // An unknown id: the others are requeued, the exit code says so.
    let unknown = serfn(&["requeue", url, "--prefix", prefix, "1-1"]);
    assert_eq!(unknown.status.code(), Some(3), "{unknown:?}");
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("1-1 is not in the dead-letter stream")
    );

    // The cause fixed, the task requeued as it was: it runs again.
    std::fs::remove_file(dir.join("poison")).unwrap();
    let requeued = serfn(&["requeue", url, "--prefix", prefix, &id]);
    assert!(requeued.status.success(), "{requeued:?}");
    assert_eq!(stdout(&requeued), format!("requeued {id}\n"));
    assert!(
        eventually(|| dir.join("ran-4").exists()),
        "the requeued task did not run"
    );
    assert_eq!(
        serfn_json(&["status", url, "--prefix", prefix])["dead_letters"],
        0
    );

    // Two more dead letters; purge asks for --yes, then empties the stream.
    std::fs::write(dir.join("poison"), b"").unwrap();
    let results: Vec<serfn::Result<u32>> = fleet.map(&f, [5, 6]).collect();
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(Error::DeadLetter { .. }))),
        "{results:?}"
    );
    let refused = serfn(&["purge", url, "--prefix", prefix, "--dead"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("add --yes"));
    assert_eq!(
        serfn_json(&["status", url, "--prefix", prefix])["dead_letters"],
        2
    );
    let purged = serfn_json(&["purge", url, "--prefix", prefix, "--dead", "--yes"]);
    assert_eq!(
        purged,
        serde_json::json!({ "purged": "dead", "dead_letters": 2 })
    );
    assert_eq!(
        serfn_json(&["status", url, "--prefix", prefix])["dead_letters"],
        0
    );
    assert_eq!(
        serfn_json(&["dead-letters", url, "--prefix", prefix])["total"],
        0
    );
}

#[test]
fn errors_name_their_cause_and_usage_errors_exit_2() {
    // Nothing listens on port 1.
    let down = serfn(&["status", "redis://127.0.0.1:1"]);
    assert_eq!(down.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(
        stderr.starts_with("serfn: ") && stderr.contains("connect"),
        "{stderr}"
    );
    assert!(down.stdout.is_empty());

    let bad_url = serfn(&["status", "not a url"]);
    assert_eq!(bad_url.status.code(), Some(1));
    // Two things to purge at once, and no URL.
    assert_eq!(
        serfn(&["purge", "redis://x", "--dead", "--queue", "--yes"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(serfn(&["status"]).status.code(), Some(2));
    assert_eq!(serfn(&["requeue", "redis://x"]).status.code(), Some(2));
    let help = stdout(&serfn(&["--help"]));
    assert!(
        help.contains("Exit codes:") && help.contains("dead-letters"),
        "{help}"
    );
}

#[test]
fn entries_in_the_documented_layout_are_read_and_forged_ones_kept_apart() {
    use redis::Commands;
    let server = Server::shared();
    let prefix = prefix("cli-layout");
    let mut connection = server.connection();
    // A dead letter as workers write it: the task's bytes and what they read in it.
    let _: String = connection
        .xadd(
            format!("{prefix}:dead"),
            "*",
            &[
                ("e", "not a task"),
                ("reason", "delivered 3 times, more than the 2 allowed"),
                ("job", "nightly"),
                ("task", "41"),
                ("name", "etl::load"),
                ("deliveries", "3"),
                ("worker", "box-7"),
                ("at", "1700000000000"),
                ("id", "1699999999000-0"),
            ],
        )
        .unwrap();
    // Two refused entries, and the count of every one ever refused.
    for reason in [
        "this entry is not signed, but a key is set",
        "signed with another key, or altered: the tag does not match",
    ] {
        let _: String = connection
            .xadd(
                format!("{prefix}:forged"),
                "*",
                &[
                    ("e", "x"),
                    ("reason", reason),
                    ("worker", "box-7"),
                    ("at", "1700000000001"),
                    ("id", "1-1"),
                ],
            )
            .unwrap();
    }
    let _: () = connection.set(format!("{prefix}:forged:count"), 5).unwrap();

    let (url, prefix) = (server.url.as_str(), prefix.as_str());
    let dead = serfn_json(&["dead-letters", url, "--prefix", prefix]);
    let entry = &dead["dead_letters"][0];
    assert_eq!(
        (&entry["job"], &entry["task"], &entry["function"]),
        (
            &Value::from("nightly"),
            &Value::from(41),
            &Value::from("etl::load")
        )
    );
    assert_eq!(
        (&entry["when_unix_ms"], &entry["task_id"]),
        (
            &Value::from(1_700_000_000_000u64),
            &Value::from("1699999999000-0")
        )
    );
    let forged = serfn_json(&["dead-letters", url, "--prefix", prefix, "--forged"]);
    assert_eq!(forged["total"], 2, "{forged:#}");
    for entry in forged["dead_letters"].as_array().unwrap() {
        // Never attributed to a job: what such an entry says of itself is unauthenticated.
        assert!(
            entry["job"].is_null() && entry["task"].is_null(),
            "{entry:#}"
        );
    }
    assert_eq!(
        forged["dead_letters"][1]["reason"],
        "signed with another key, or altered: the tag does not match"
    );
    let status = serfn_json(&["status", url, "--prefix", prefix]);
    assert_eq!(
        (
            &status["dead_letters"],
            &status["forged"],
            &status["forged_total"]
        ),
        (&Value::from(1), &Value::from(2), &Value::from(5))
    );
    let human = stdout(&serfn(&["status", url, "--prefix", prefix]));
    assert!(
        human.contains("1 dead letter, 2 refused as forged"),
        "{human}"
    );

    let purged = serfn_json(&["purge", url, "--prefix", prefix, "--forged", "--yes"]);
    assert_eq!(
        purged,
        serde_json::json!({ "purged": "forged", "entries": 2 })
    );
    let status = serfn_json(&["status", url, "--prefix", prefix]);
    assert_eq!(
        (
            &status["dead_letters"],
            &status["forged"],
            &status["forged_total"]
        ),
        (&Value::from(1), &Value::from(0), &Value::from(5))
    );
}

/// The `serfn` commands of OPERATIONS.md, each run against a live server
/// (under a prefix of this test's own): every one is a valid command line
/// that succeeds. The page shows no output, so none is to check.
#[test]
fn every_command_in_operations_md_runs() {
    let server = Server::shared();
    let prefix = prefix("cli-docs");
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../OPERATIONS.md")).unwrap();
    let mut in_sh = false;
    let mut ran = Vec::new();
    for line in page.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        let Some(command) = line.strip_prefix("serfn ").filter(|_| in_sh) else {
            continue;
        };
        // What a shell would run: no comment, no pipe into jq, the URL expanded.
        let command = command
            .split(" #")
            .next()
            .unwrap()
            .split(" | ")
            .next()
            .unwrap();
        let mut args: Vec<String> = command
            .split_whitespace()
            .map(|arg| arg.replace("\"$SERFN_REDIS_URL\"", &server.url))
            .collect();
        match args.iter().position(|arg| arg == "--prefix") {
            Some(at) => args[at + 1] = prefix.clone(),
            None => args.extend(["--prefix".to_owned(), prefix.clone()]),
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = serfn(&args);
        // Requeueing an id that is no dead letter here is exit code 3, as documented.
        let expected = if args.contains(&"requeue") && !args.contains(&"--all") {
            3
        } else {
            0
        };
        assert_eq!(
            output.status.code(),
            Some(expected),
            "serfn {command}: {output:?}"
        );
        ran.push(args[0].to_owned());
    }
    for subcommand in ["status", "dead-letters", "requeue", "purge"] {
        assert!(
            ran.iter().any(|r| r == subcommand),
            "no `serfn {subcommand}` in OPERATIONS.md: {ran:?}"
        );
    }
    // The worker's exit codes it states are the library's.
    for (code, name) in [
        (serfn::redis::TIMEOUT_EXIT_CODE, "TIMEOUT_EXIT_CODE"),
        (serfn::redis::GRACE_EXIT_CODE, "GRACE_EXIT_CODE"),
    ] {
        let row = page.lines().find(|line| line.contains(name)).unwrap();
        assert!(row.starts_with(&format!("| `{code}` |")), "{row}");
    }
}

/// Appends a line to `{dir}/runs` per run; aborts its worker while `{dir}/poison` exists.
fn counted(dir: &Path) -> SerFn<u32, u32> {
    let dir = dir.to_str().unwrap().to_owned();
    serfn::closure!("cli_tests::counted", [dir: String], move |x: u32| -> u32 {
        use std::io::Write;
        let dir = std::path::Path::new(dir);
        if dir.join("poison").exists() {
            std::process::abort();
        }
        let mut runs = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("runs")).unwrap();
        writeln!(runs, "{x}").unwrap();
        x
    })
}

#[test]
fn a_forged_dead_letter_requeued_is_refused_again_and_never_runs() {
    use redis::Commands;
    let server = Server::shared();
    let prefix = prefix("cli-forged-requeue");
    let dir = scratch("forged-requeue");
    let secret = "cli tests: the fleet's key";
    let setup = WorkerSetup {
        prefix: prefix.clone(),
        key: Some(secret.to_owned()),
        claim_idle_ms: Some(200),
        max_deliveries: Some(1),
        ..Default::default()
    };
    let _supervisor = Supervisor::start(&server.url, &setup, 2);
    let fleet = RedisExecutor::builder(&server.url)
        .prefix(&prefix)
        .key(serfn::codec::Key::new(secret))
        .build()
        .unwrap();
    std::fs::write(dir.join("poison"), b"").unwrap();
    let results: Vec<serfn::Result<u32>> = fleet.map(&counted(&dir), [8]).collect();
    assert!(
        matches!(results[0], Err(Error::DeadLetter { .. })),
        "{results:?}"
    );

    // A writer without the key adds an altered copy of the genuine dead letter,
    // hoping that an operator requeues it.
    let mut connection = server.connection();
    let dead = format!("{prefix}:dead");
    let genuine: redis::streams::StreamRangeReply = connection.xrange_all(&dead).unwrap();
    let mut bytes: Vec<u8> = genuine.ids[0].get("e").unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    let _: String = connection
        .xadd(
            &dead,
            "*",
            &[
                ("e", bytes.as_slice()),
                ("reason", b"please requeue me".as_slice()),
            ],
        )
        .unwrap();

    std::fs::remove_file(dir.join("poison")).unwrap();
    let (url, prefix) = (server.url.as_str(), prefix.as_str());
    let requeued = serfn_json(&["requeue", url, "--prefix", prefix, "--all"]);
    assert_eq!(
        requeued["requeued"].as_array().unwrap().len(),
        2,
        "{requeued}"
    );
    assert_eq!(requeued["missing"], serde_json::json!([]));
    // The genuine task ran once; the copy was refused again and parked (with
    // the dead letters or apart from them), never run.
    let runs = || std::fs::read_to_string(dir.join("runs")).unwrap_or_default();
    let parked = || {
        let status = serfn_json(&["status", url, "--prefix", prefix]);
        status["dead_letters"].as_u64().unwrap() + status["forged"].as_u64().unwrap()
    };
    assert!(
        eventually(|| runs() == "8\n" && parked() == 1),
        "runs {:?}, parked {}",
        runs(),
        parked()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!((runs().as_str(), parked()), ("8\n", 1));
}
