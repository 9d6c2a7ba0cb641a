//! `serfn`: watch and steer a serfn fleet on Redis.
//!
//! A thin shell around [`serfn::redis::Fleet`]: every figure it prints is
//! one that a Rust program reads the same way.

mod table;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serfn::redis::{DeadLetter, Fleet, FleetStatus};

use crate::table::{ago, duration, Table};

/// Exit code: Redis failed, or the command could not do what it was asked.
const FAILED: u8 = 1;
/// Exit code: the command line is wrong (clap's own code for usage errors).
const USAGE: u8 = 2;
/// Exit code: `requeue` found some of the ids it was given, not all.
const NOT_FOUND: u8 = 3;

const AFTER_HELP: &str = "\
Exit codes:
  0  done
  1  Redis failed or refused (the cause is on stderr)
  2  the command line is wrong, or a purge lacks --yes
  3  requeue: some of the ids given are not in the dead-letter stream

URL is a Redis URL, redis://[user:password@]host:port[/db], also read from
SERFN_REDIS_URL; --prefix (or SERFN_PREFIX) is the key
prefix the workers and drivers use, `serfn` unless they set another.";

/// Watch and steer a serfn fleet on Redis: who works on what, what died and
/// why, put it back, clear what should go.
#[derive(Parser, Debug)]
#[command(name = "serfn", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Workers, queue, pending tasks, dead letters and jobs in flight.
    ///
    /// Shows the live workers (name, host, pid, last seen, tasks done and
    /// failed, current task), the queue, the tasks pending on each worker
    /// with their idle times, the dead letters, and the jobs in flight.
    ///
    /// A worker is live while its heartbeat key lasts: a killed worker drops
    /// out after its TTL (15 s by default). A task pending on a name that is
    /// no live worker is taken over once idle past the workers' claim_idle.
    Status(Common),
    /// The dead-lettered tasks, each with its reason.
    ///
    /// Lists the dead-lettered tasks, oldest first, each with its reason, job,
    /// task, deliveries, the worker that gave up on it, and when.
    ///
    /// With --forged, lists instead the entries workers could not open (not
    /// signed with the fleet's key, altered, or not tasks at all), which
    /// name no job: a writer to Redis without the key, or a driver or worker
    /// with another key.
    #[command(name = "dead-letters")]
    DeadLetters {
        #[command(flatten)]
        common: Common,
        /// List at most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// List the entries workers refused as forged instead.
        #[arg(long)]
        forged: bool,
    },
    /// Put dead-lettered tasks back on the queue, as they were signed.
    ///
    /// Puts dead-lettered tasks back on the queue, their bytes exactly as they
    /// were signed: a genuine task runs again, a forged one is refused again.
    ///
    /// Fix what made them fail first. A requeued task's answer goes to its
    /// job, which its driver may have finished with.
    Requeue {
        #[command(flatten)]
        common: Common,
        /// The ids to requeue, as `serfn dead-letters` shows them.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        /// Requeue every dead letter there now.
        #[arg(long)]
        all: bool,
    },
    /// Delete the waiting tasks, the dead letters, or one job (with --yes).
    ///
    /// Deletes the waiting tasks (--queue), the dead letters (--dead), the
    /// entries refused as forged (--forged), or one job's tasks and results
    /// (--job NAME, also marked cancelled for the workers); nothing without
    /// --yes.
    ///
    /// --queue deletes only tasks no worker has taken: running tasks finish.
    /// Drivers waiting on deleted tasks get no answer for them: purge what
    /// no driver waits for.
    Purge {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        what: PurgeWhat,
        /// Really delete: without it, nothing is done and the exit code is 2.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct PurgeWhat {
    /// The tasks no worker has taken yet.
    #[arg(long)]
    queue: bool,
    /// The dead-letter stream.
    #[arg(long)]
    dead: bool,
    /// The stream of entries workers refused as forged.
    #[arg(long)]
    forged: bool,
    /// One job: its tasks still in the queue, its description, its results.
    #[arg(long, value_name = "NAME")]
    job: Option<String>,
}

#[derive(Args, Debug)]
struct Common {
    /// The Redis server: redis://host:port[/db].
    #[arg(env = "SERFN_REDIS_URL")]
    url: String,
    /// The key prefix of the fleet's workers and drivers.
    #[arg(long, env = "SERFN_PREFIX", default_value = "serfn")]
    prefix: String,
    /// Print one JSON object instead of tables, for scripts.
    #[arg(long)]
    json: bool,
}

impl Common {
    fn fleet(&self) -> serfn::Result<Fleet> {
        Ok(Fleet::new(&self.url)?.prefix(&self.prefix))
    }
}

/// What a command ends with: its output is printed by then.
enum Outcome {
    Done,
    Exit(u8),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Exit(code)) => ExitCode::from(code),
        Err(error) => {
            eprintln!("serfn: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::from(FAILED)
        }
    }
}

fn run(command: Command) -> serfn::Result<Outcome> {
    match command {
        Command::Status(common) => {
            let status = common.fleet()?.status()?;
            match common.json {
                true => json(&status),
                false => print!("{}", status_tables(&status)),
            }
            Ok(Outcome::Done)
        }
        Command::DeadLetters {
            common,
            limit,
            forged,
        } => {
            let fleet = common.fleet()?;
            let status = fleet.status()?;
            let (total, dead) = match forged {
                true => (status.forged, fleet.forged(limit)?),
                false => (status.dead_letters, fleet.dead_letters(limit)?),
            };
            match common.json {
                true => json(&DeadList {
                    prefix: &common.prefix,
                    total,
                    dead_letters: &dead,
                }),
                false => print!("{}", dead_table(&dead, total, forged)),
            }
            Ok(Outcome::Done)
        }
        Command::Requeue { common, ids, all } => requeue(&common, &ids, all),
        Command::Purge { common, what, yes } => purge(&common, &what, yes),
    }
}

fn json<T: Serialize>(value: &T) {
    let text = serde_json::to_string(value).expect("plain data serializes");
    println!("{text}");
}

#[derive(Serialize)]
struct DeadList<'a> {
    prefix: &'a str,
    total: u64,
    dead_letters: &'a [DeadLetter],
}

fn requeue(common: &Common, ids: &[String], all: bool) -> serfn::Result<Outcome> {
    let fleet = common.fleet()?;
    let outcome = match all {
        true => fleet.requeue_all()?,
        false => fleet.requeue(ids)?,
    };
    match common.json {
        true => json(&outcome),
        false => {
            for id in &outcome.requeued {
                println!("requeued {id}");
            }
            for id in &outcome.missing {
                eprintln!("serfn: {id} is not in the dead-letter stream");
            }
        }
    }
    Ok(match outcome.missing.is_empty() {
        true => Outcome::Done,
        false => Outcome::Exit(NOT_FOUND),
    })
}

fn purge(common: &Common, what: &PurgeWhat, yes: bool) -> serfn::Result<Outcome> {
    let target = match &what.job {
        Some(job) => format!("job `{job}`"),
        None if what.queue => "the waiting tasks".to_owned(),
        None if what.forged => "the entries refused as forged".to_owned(),
        None => "the dead letters".to_owned(),
    };
    if !yes {
        eprintln!(
            "serfn: this deletes {target} under prefix `{}`; nothing done: add --yes to do it",
            common.prefix
        );
        return Ok(Outcome::Exit(USAGE));
    }
    let fleet = common.fleet()?;
    let report = if let Some(job) = &what.job {
        let purged = fleet.purge_job(job)?;
        serde_json::json!({ "purged": "job", "job": job, "tasks": purged.tasks, "keys": purged.keys })
    } else if what.queue {
        serde_json::json!({ "purged": "queue", "tasks": fleet.purge_queue()? })
    } else if what.forged {
        serde_json::json!({ "purged": "forged", "entries": fleet.purge_forged()? })
    } else {
        serde_json::json!({ "purged": "dead", "dead_letters": fleet.purge_dead()? })
    };
    match common.json {
        true => json(&report),
        false => match &what.job {
            Some(job) => println!(
                "deleted job `{job}`: {} queued tasks, {} keys",
                report["tasks"], report["keys"]
            ),
            None if what.queue => println!("deleted {} waiting tasks", report["tasks"]),
            None if what.forged => println!("deleted {} refused entries", report["entries"]),
            None => println!("deleted {} dead letters", report["dead_letters"]),
        },
    }
    Ok(Outcome::Done)
}

fn status_tables(status: &FleetStatus) -> String {
    let mut out = format!(
        "prefix `{}`: {}, {} waiting, {} pending, {}, {} refused as forged, {} in flight ({} finished, kept)\n",
        status.prefix,
        count(status.workers.len() as u64, "worker"),
        count(status.queue.waiting, "task"),
        status.queue.pending,
        count(status.dead_letters, "dead letter"),
        status.forged,
        count(status.jobs.len() as u64, "job"),
        status.finished_jobs,
    );
    let mut workers = Table::new(&[
        "WORKER", "HOST", "PID", "VERSION", "UP", "SEEN", "DONE", "FAILED", "STATE", "TASK",
    ]);
    for worker in &status.workers {
        let task = match &worker.current {
            Some(task) => format!(
                "{} (job {}, task {}) for {}",
                task.function,
                task.job,
                task.task,
                ago(task.since_unix_ms)
            ),
            None => "-".to_owned(),
        };
        workers.row(vec![
            worker.name.clone(),
            worker.host.clone(),
            worker.pid.to_string(),
            worker.version.clone(),
            ago(worker.started_unix_ms),
            format!("{} ago", ago(worker.seen_unix_ms)),
            worker.done.to_string(),
            worker.failed.to_string(),
            if worker.stopping {
                "stopping"
            } else {
                "running"
            }
            .to_owned(),
            task,
        ]);
    }
    if !workers.is_empty() {
        out.push('\n');
        out.push_str(&workers.render());
    }
    let mut pending = Table::new(&[
        "PENDING ON",
        "TASKS",
        "IDLE",
        "OLDEST TASK",
        "ITS IDLE",
        "DELIVERIES",
    ]);
    for consumer in &status.pending {
        let oldest = consumer.tasks.first();
        pending.row(vec![
            consumer.name.clone(),
            consumer.pending.to_string(),
            duration(consumer.idle_ms),
            oldest.map_or("-".into(), |task| task.id.clone()),
            oldest.map_or("-".into(), |task| duration(task.idle_ms)),
            oldest.map_or("-".into(), |task| task.deliveries.to_string()),
        ]);
    }
    if !pending.is_empty() {
        out.push('\n');
        out.push_str(&pending.render());
    }
    let mut jobs = Table::new(&["JOB", "ANSWERED", "TASKS", "ITEMS", "FUNCTION"]);
    for job in &status.jobs {
        jobs.row(vec![
            job.name.clone(),
            job.answered.to_string(),
            job.tasks.to_string(),
            job.items.to_string(),
            job.function.clone(),
        ]);
    }
    if !jobs.is_empty() {
        out.push('\n');
        out.push_str(&jobs.render());
    }
    out
}

/// `1 worker`, `2 workers`, `3 entries`.
fn count(n: u64, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {noun}s"),
    }
}

fn dead_table(dead: &[DeadLetter], total: u64, forged: bool) -> String {
    let mut table = Table::new(&[
        "ID",
        "AGE",
        "JOB",
        "TASK",
        "FUNCTION",
        "DELIVERIES",
        "WORKER",
        "REASON",
    ]);
    for entry in dead {
        let unknown = || "?".to_owned();
        table.row(vec![
            entry.id.clone(),
            ago(entry.when_unix_ms),
            entry.job.clone().unwrap_or_else(unknown),
            entry.task.map_or_else(unknown, |task| task.to_string()),
            entry.function.clone().unwrap_or_else(unknown),
            entry.deliveries.to_string(),
            entry.worker.clone(),
            entry.reason.clone(),
        ]);
    }
    let mut out = match forged {
        true => format!("{}, refused as forged\n", count(total, "entry")),
        false => format!("{}\n", count(total, "dead letter")),
    };
    if !table.is_empty() {
        out.push('\n');
        out.push_str(&table.render());
    }
    if (dead.len() as u64) < total {
        out.push_str(&format!(
            "\n{} more not shown (--limit)\n",
            total - dead.len() as u64
        ));
    }
    out
}
