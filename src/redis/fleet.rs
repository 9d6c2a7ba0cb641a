//! The operator's handle on a fleet: see who works on what, what died and
//! why, put it back, and clear what should go. The `serfn` command-line tool
//! is a thin shell around it.

use std::sync::Mutex;
use std::time::Duration;

use redis::streams::{StreamInfoGroupsReply, StreamRangeReply};
use redis::Commands;
use serde::Serialize;

use super::dead::{self, DeadLetter, Parked, BATCH};
use super::entry::{Keys, FIELD};
use super::presence::WorkerStatus;
use super::status::{self, FleetStatus};
use super::{broker, DEFAULT_PREFIX};
use crate::codec::{Key, Limits};
use crate::error::Result;
use crate::sync::lock;

/// How long a purged job stays marked cancelled: as long as a job is kept
/// by default, past which no driver waits for it.
const CANCEL_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long connecting, or one command, may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A fleet as an operator sees it: its workers, queue, dead letters and
/// jobs, under one key prefix of one Redis server.
///
/// Each method is a few Redis commands on one connection, made when the
/// fleet is built; workers and drivers go on meanwhile, so figures read at
/// once may differ by a task in flight.
///
/// # Example
/// ```no_run
/// use serfn::redis::Fleet;
///
/// let fleet = Fleet::new("redis://127.0.0.1:6379")?.prefix("staging");
/// let status = fleet.status()?;
/// for worker in &status.workers {
///     println!("{} on {} (pid {}): {} done, {} failed", worker.name, worker.host, worker.pid, worker.done, worker.failed);
/// }
/// // Put back what was dead-lettered, after fixing its cause.
/// let requeued = fleet.requeue_all()?.requeued;
/// println!("{} tasks requeued", requeued.len());
/// # Ok::<(), serfn::Error>(())
/// ```
pub struct Fleet {
    connection: Mutex<redis::Connection>,
    keys: Keys,
    key: Option<Key>,
    limits: Limits,
}

/// What [`Fleet::requeue`] did with the ids it was given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Requeued {
    /// Ids put back on the task stream.
    pub requeued: Vec<String>,
    /// Ids not in the dead-letter stream (never, or no longer).
    pub missing: Vec<String>,
}

/// What [`Fleet::purge_job`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PurgedJob {
    /// Its tasks deleted from the task stream, taken or not.
    pub tasks: u64,
    /// Its keys deleted: its description and its results.
    pub keys: u64,
}

impl Fleet {
    /// The fleet under the default prefix (`serfn`) of the Redis server at `url`.
    ///
    /// # Errors
    /// [`Error::Broker`](crate::Error::Broker) if the URL is invalid or the
    /// server does not answer (within 10 s; so for each command after).
    ///
    /// # Example
    /// ```no_run
    /// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?;
    /// println!("{} tasks waiting", fleet.status()?.queue.waiting);
    /// assert!(serfn::redis::Fleet::new("not a url").is_err());
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn new(url: &str) -> Result<Fleet> {
        let client = redis::Client::open(url).map_err(broker("connect"))?;
        Fleet::from_client(&client, Keys::new(DEFAULT_PREFIX), None, Limits::default())
    }

    pub(super) fn from_client(
        client: &redis::Client,
        keys: Keys,
        key: Option<Key>,
        limits: Limits,
    ) -> Result<Fleet> {
        let connection = client
            .get_connection_with_timeout(IO_TIMEOUT)
            .map_err(broker("connect"))?;
        // No wait unbounded: a server that stops answering is an error.
        connection
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| connection.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(broker("connect"))?;
        Ok(Fleet {
            connection: Mutex::new(connection),
            keys,
            key,
            limits,
        })
    }

    /// The fleet under another prefix, as its workers' and drivers'.
    ///
    /// # Example
    /// ```no_run
    /// let staging = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?.prefix("staging");
    /// assert_eq!(staging.status()?.prefix, "staging");
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn prefix(mut self, prefix: &str) -> Fleet {
        self.keys = Keys::new(prefix);
        self
    }

    /// The fleet's key: dead letters are then checked
    /// ([`DeadLetter::authentic`]). Requeueing needs none: a task goes back
    /// as it was signed, and workers check it again.
    ///
    /// # Example
    /// ```no_run
    /// let key = serfn::codec::Key::new([7u8; 32]);
    /// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?.key(key);
    /// let forged = fleet.dead_letters(1000)?.iter().filter(|d| d.authentic == Some(false)).count();
    /// println!("{forged} forged entries");
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn key(mut self, key: Key) -> Fleet {
        self.key = Some(key);
        self
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, redis::Connection> {
        lock(&self.connection)
    }

    /// Everything at once: workers, queue, pending tasks by worker, dead
    /// letters, jobs in flight. Lists stop at 10,000 workers or jobs.
    ///
    /// # Errors
    /// [`Error::Broker`](crate::Error::Broker) if Redis fails.
    ///
    /// # Example
    /// ```no_run
    /// let status = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?.status()?;
    /// for consumer in &status.pending {
    ///     println!("{}: {} pending, idle {} ms", consumer.name, consumer.pending, consumer.idle_ms);
    /// }
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn status(&self) -> Result<FleetStatus> {
        let mut connection = self.connection();
        let workers = status::workers(&mut connection, &self.keys)?;
        let (queue, pending) = status::queue(&mut connection, &self.keys)?;
        let (dead_letters, forged, forged_total): (u64, u64, Option<u64>) = redis::pipe()
            .xlen(self.keys.dead())
            .xlen(self.keys.forged())
            .get(self.keys.forged_count())
            .query(&mut *connection)
            .map_err(broker("count dead letters"))?;
        let (jobs, finished): (Vec<_>, Vec<_>) = status::jobs(&mut connection, &self.keys)?
            .into_iter()
            .partition(|job| job.answered < job.tasks || job.tasks == 0);
        Ok(FleetStatus {
            prefix: self.keys.prefix().to_owned(),
            workers,
            queue,
            pending,
            dead_letters,
            forged,
            forged_total: forged_total.unwrap_or(0).max(forged),
            jobs,
            finished_jobs: finished.len() as u64,
        })
    }

    /// The live workers, by name: those whose heartbeat key has not expired.
    ///
    /// # Errors
    /// [`Error::Broker`](crate::Error::Broker) if Redis fails.
    ///
    /// # Example
    /// ```no_run
    /// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?;
    /// let busy = fleet.workers()?.iter().filter(|w| w.current.is_some()).count();
    /// println!("{busy} workers are running a task");
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn workers(&self) -> Result<Vec<WorkerStatus>> {
        status::workers(&mut self.connection(), &self.keys)
    }

    /// The oldest `count` dead letters, each with its reason.
    ///
    /// # Errors
    /// [`Error::Broker`](crate::Error::Broker) if Redis fails.
    ///
    /// # Example
    /// ```no_run
    /// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?;
    /// for dead in fleet.dead_letters(10)? {
    ///     println!("{}: {}", dead.id, dead.reason);
    /// }
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn dead_letters(&self, count: usize) -> Result<Vec<DeadLetter>> {
        let mut connection = self.connection();
        dead::list(
            &mut connection,
            &self.keys,
            Parked::Dead,
            self.key.as_ref(),
            &self.limits,
            count,
        )
    }

    /// The oldest `count` entries workers could not open (failed
    /// authentication, a key mismatch, or not a task at all), parked in
    /// `{prefix}:forged` with the reason and never attributed to the job
    /// they name. Not requeued: a worker would refuse them again.
    ///
    /// # Errors
    /// [`Error::Broker`](crate::Error::Broker) if Redis fails.
    ///
    /// # Example
    /// ```no_run
    /// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?;
    /// for refused in fleet.forged(10)? {
    ///     println!("{} from {}: {}", refused.id, refused.worker, refused.reason);
    /// }
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn forged(&self, count: usize) -> Result<Vec<DeadLetter>> {
        let mut connection = self.connection();
        let key = self.key.as_ref();
        dead::list(
            &mut connection,
            &self.keys,
            Parked::Forged,
            key,
            &self.limits,
            count,
        )
    }

    /// Puts these dead letters back on the task stream, their bytes exactly
    /// as they were: a genuine task runs again (its deliveries counted
    /// afresh), a forged one is refused again by every worker with a key.
    /// The answer goes to the task's job, which its driver may have
    /// finished with: read it with [`reattach`](super::RedisExecutor::reattach)
    /// only if that driver had not received the dead letter's error.
    ///
    /// # Errors
    /// [`Error::Broker`](crate::Error::Broker) if Redis fails; the ids moved
    /// by then stay moved.
    ///
    /// # Example
    /// ```no_run
    /// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?;
    /// let outcome = fleet.requeue(&["1733475200000-0"])?;
    /// println!("requeued {:?}, not found {:?}", outcome.requeued, outcome.missing);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn requeue<S: AsRef<str>>(&self, ids: &[S]) -> Result<Requeued> {
        let mut connection = self.connection();
        let mut outcome = Requeued::default();
        for id in ids {
            let id = id.as_ref().to_owned();
            match dead::requeue(&mut connection, &self.keys, &id)? {
                true => outcome.requeued.push(id),
                false => outcome.missing.push(id),
            }
        }
        Ok(outcome)
    }

    /// Puts every dead letter there now back on the task stream, as
    /// [`requeue`](Self::requeue); not those added meanwhile (a task
    /// refused again, say).
    ///
    /// # Errors
    /// [`Error::Broker`](crate::Error::Broker) if Redis fails.
    ///
    /// # Example
    /// ```no_run
    /// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?;
    /// println!("{:?} requeued", fleet.requeue_all()?.requeued);
    /// assert_eq!(fleet.status()?.dead_letters, 0); // unless one failed again meanwhile
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn requeue_all(&self) -> Result<Requeued> {
        Ok(Requeued {
            requeued: dead::requeue_all(&mut self.connection(), &self.keys)?,
            missing: Vec::new(),
        })
    }

    /// Deletes the tasks no worker has taken yet; how many. Running tasks
    /// finish. Their drivers get no answer for the deleted ones: purge the
    /// queue of jobs whose drivers are gone.
    ///
    /// # Errors
    /// [`Error::Broker`](crate::Error::Broker) if Redis fails.
    ///
    /// # Example
    /// ```no_run
    /// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?;
    /// println!("{} waiting tasks deleted", fleet.purge_queue()?);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn purge_queue(&self) -> Result<u64> {
        let mut connection = self.connection();
        let tasks = self.keys.tasks();
        let groups: redis::RedisResult<StreamInfoGroupsReply> = connection.xinfo_groups(&tasks);
        let group = self.keys.group();
        // Entries past the group's last delivered id are those not taken.
        let mut from = match groups {
            Ok(groups) => match groups.groups.into_iter().find(|g| g.name == group) {
                Some(group) => format!("({}", group.last_delivered_id),
                None => "-".to_owned(),
            },
            Err(_) => return Ok(0), // no stream: nothing waits
        };
        let mut deleted = 0;
        loop {
            let range: StreamRangeReply = connection
                .xrange_count(&tasks, &from, "+", BATCH)
                .map_err(broker("read the queue"))?;
            let Some(last) = range.ids.last() else {
                return Ok(deleted);
            };
            from = format!("({}", last.id);
            let ids: Vec<&str> = range.ids.iter().map(|entry| entry.id.as_str()).collect();
            let removed: u64 = connection
                .xdel(&tasks, &ids)
                .map_err(broker("delete tasks"))?;
            deleted += removed;
        }
    }

    /// Deletes the stream of entries workers could not open; how many it had.
    /// Their count ever (`forged_total` in [`status`](Self::status)) stays.
    ///
    /// # Errors
    /// [`Error::Broker`](crate::Error::Broker) if Redis fails.
    ///
    /// # Example
    /// ```no_run
    /// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?;
    /// println!("{} refused entries deleted", fleet.purge_forged()?);
    /// assert_eq!(fleet.status()?.forged, 0);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn purge_forged(&self) -> Result<u64> {
        self.delete_stream(&self.keys.forged())
    }

    fn delete_stream(&self, stream: &str) -> Result<u64> {
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .xlen(stream)
            .del(stream)
            .ignore()
            .query(&mut *self.connection())
            .map_err(broker("delete a stream"))?;
        Ok(count)
    }

    /// Deletes the dead-letter stream; how many entries it had.
    ///
    /// # Errors
    /// [`Error::Broker`](crate::Error::Broker) if Redis fails.
    ///
    /// # Example
    /// ```no_run
    /// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?;
    /// println!("{} dead letters deleted", fleet.purge_dead()?);
    /// assert_eq!(fleet.status()?.dead_letters, 0);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn purge_dead(&self) -> Result<u64> {
        self.delete_stream(&self.keys.dead())
    }

    /// Deletes a job: its tasks in the task stream (found by the job they
    /// name), its description and its results; and marks it cancelled
    /// (`{prefix}:job:{job}:cancelled`, for a day), so that workers that
    /// check the mark skip any of its tasks still pending. For a job whose
    /// driver is gone; a worker running one of its tasks finishes it.
    ///
    /// # Errors
    /// [`Error::Broker`](crate::Error::Broker) if Redis fails.
    ///
    /// # Example
    /// ```no_run
    /// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?;
    /// let purged = fleet.purge_job("nightly-2026-12-01")?;
    /// println!("{} tasks and {} keys deleted", purged.tasks, purged.keys);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn purge_job(&self, job: &str) -> Result<PurgedJob> {
        let mut connection = self.connection();
        let tasks = self.keys.tasks();
        let mut purged = PurgedJob::default();
        let mut from = "-".to_owned();
        loop {
            let range: StreamRangeReply = connection
                .xrange_count(&tasks, &from, "+", BATCH)
                .map_err(broker("read the queue"))?;
            let Some(last) = range.ids.last() else {
                break;
            };
            from = format!("({}", last.id);
            let ids: Vec<&str> = range
                .ids
                .iter()
                .filter(|entry| self.names_job(entry.get::<Vec<u8>>(FIELD), job))
                .map(|entry| entry.id.as_str())
                .collect();
            if !ids.is_empty() {
                let removed: u64 = connection
                    .xdel(&tasks, &ids)
                    .map_err(broker("delete tasks"))?;
                purged.tasks += removed;
            }
        }
        let cancelled = self.keys.cancelled(job);
        let (keys,): (u64,) = redis::pipe()
            .atomic()
            .del(&[self.keys.job(job), self.keys.results(job)])
            .set_ex(&cancelled, 1, CANCEL_TTL.as_secs())
            .ignore()
            .query(&mut *connection)
            .map_err(broker("delete the job"))?;
        purged.keys = keys;
        Ok(purged)
    }

    /// Whether a task entry names `job` (as it claims: deleting what a
    /// writer to Redis could delete anyway).
    fn names_job(&self, bytes: Option<Vec<u8>>, job: &str) -> bool {
        let Some(bytes) = bytes else {
            return false;
        };
        dead::claimed(&bytes, &self.limits).is_some_and(|task| task.job == job)
    }
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("prefix", &self.keys.prefix())
            .field("key", &self.key.is_some())
            .finish()
    }
}
