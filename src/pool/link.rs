//! One worker process as its slot sees it: the jobs sent to it and not yet
//! answered, and the reader thread that takes its answers, watches its
//! deadlines and its heartbeat, and settles what was in flight when it dies.
//!
//! Jobs wait in `in_flight`, oldest first. The worker runs frames in order,
//! so when it dies only the oldest job can have been running: that one
//! fails (or is retried), and the others go back to the front of the pool's
//! queue untouched.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::builder::Config;
use super::job::{Job, Runner, Work};
use super::process;
use super::protocol::{self as proto, Fields, FrameReader, Next};
use super::singles::read_answers;
use super::Shared;
use crate::codec;
use crate::error::{Error, WireError};
use crate::event::event;
use crate::sync::lock;

/// Estimated work a worker is given ahead: enough to hide a round trip.
const WINDOW_NS: u64 = 2_000_000;
/// Jobs a worker is given ahead, at most.
const MAX_IN_FLIGHT: usize = 1024;
/// The longest the reader blocks before it looks at the clocks again.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// A job sent to the worker and not yet answered.
pub(super) struct Sent {
    pub(super) job: Job,
    pub(super) task: u64,
    pub(super) estimate_ns: u64,
    /// When it became the oldest: when the worker started it, at the latest.
    pub(super) started: Option<Instant>,
    pub(super) killed: Option<Killed>,
    /// Its task was cancelled before the worker started it.
    pub(super) cancelled: bool,
}

/// Why the reader killed the worker while this job was the oldest.
#[derive(Clone, Copy)]
pub(super) enum Killed {
    /// It ran past the pool's timeout.
    Timeout,
    /// The worker sent nothing, not even a heartbeat, for the liveness timeout.
    Silent,
    /// Its task was cancelled.
    Cancelled,
}

/// The state one worker process's writer and reader share.
pub(super) struct Link {
    pub(super) state: Mutex<LinkState>,
    pub(super) space: Condvar,
    pub(super) child: Mutex<Child>,
    pub(super) pid: u32,
}

pub(super) struct LinkState {
    pub(super) in_flight: VecDeque<Sent>,
    pub(super) estimate_ns: u64,
    pub(super) dead: bool,
    pub(super) writer_waiting: bool,
}

impl LinkState {
    pub(super) fn has_space(&self) -> bool {
        self.in_flight.len() < 2
            || (self.in_flight.len() < MAX_IN_FLIGHT && self.estimate_ns < WINDOW_NS)
    }

    /// Whether a waiting writer is worth waking: half the window is free
    /// (or it waits for the last answers), so that it is not woken for
    /// each answer to send one job.
    fn has_half_space(&self) -> bool {
        self.in_flight.len() < 2
            || (self.in_flight.len() <= MAX_IN_FLIGHT / 2 && self.estimate_ns <= WINDOW_NS / 2)
    }
}

impl Runner for Link {
    /// The oldest job is running: the worker is killed. A later one is
    /// marked, and the worker killed when the pool sees it start (it may
    /// have started, or even finished, just before).
    fn cancel(&self, task: u64) -> bool {
        let mut state = lock(&self.state);
        let Some(at) = state.in_flight.iter().position(|sent| sent.task == task) else {
            return false;
        };
        let sent = &mut state.in_flight[at];
        if at > 0 || sent.started.is_none() {
            sent.cancelled = true;
            return true;
        }
        sent.killed.get_or_insert(Killed::Cancelled);
        event!(
            info,
            pid = self.pid,
            task,
            "task cancelled while running: killing its worker"
        );
        drop(state);
        let _ = lock(&self.child).kill();
        true
    }
}

/// Takes the worker's answers until its socket closes, then settles what was in flight.
pub(super) fn read(shared: &Shared, link: &Link, stream: UnixStream) {
    let config = &shared.config;
    let mut reader = FrameReader::new(stream, super::serve::frame_limit(&config.limits));
    let (mut heard, mut seen) = (Instant::now(), 0);
    // The read timeout set last: set again only when it changes (a system
    // call before each blocking read, at one item per message).
    let mut timeout = None;
    // The link's state, locked across the answers of one read.
    let mut held = None;
    let end = loop {
        if reader.bytes_read() != seen {
            heard = Instant::now();
            seen = received(shared, &reader, seen);
        }
        if !reader.has_frame() {
            held = None; // never held across a read that may block
            let wait = next_check(link, config, heard);
            // Whole milliseconds: a deadline a little late is checked again.
            let wait = Duration::from_millis(wait.as_millis() as u64)
                .clamp(Duration::from_millis(1), MAX_WAIT);
            if timeout != Some(wait) {
                let _ = reader.get_ref().set_read_timeout(Some(wait));
                timeout = Some(wait);
            }
        }
        match reader.next_frame() {
            Ok(Next::Frame(proto::HEARTBEAT, _)) => {}
            Ok(Next::Frame(tag, body)) => {
                if let Err(error) = answer(shared, link, &mut held, heard, tag, reader.body(body)) {
                    break Err(error);
                }
            }
            Ok(Next::Closed) => break Ok(()),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if reader.bytes_read() != seen {
                    heard = Instant::now();
                    seen = received(shared, &reader, seen);
                }
                check(link, config, heard);
            }
            Err(error) => break Err(error),
        }
    };
    drop(held);
    received(shared, &reader, seen);
    die(shared, link, end);
}

/// Counts the bytes read since `seen` in the pool's stats, once a read, not
/// once a frame; returns the bytes read so far.
fn received(shared: &Shared, reader: &FrameReader<UnixStream>, seen: u64) -> u64 {
    let read = reader.bytes_read();
    shared
        .stats
        .bytes_received
        .fetch_add(read - seen, Ordering::Relaxed);
    read
}

/// How long until the oldest job's deadline or the worker's silence bound.
fn next_check(link: &Link, config: &Config, heard: Instant) -> Duration {
    let liveness = config.liveness;
    let state = lock(&link.state);
    let Some(head) = state.in_flight.front() else {
        return MAX_WAIT;
    };
    let (Some(started), timeout) = (head.started, kill_after(&head.job, config)) else {
        return MAX_WAIT;
    };
    let silent_since = heard.max(started);
    let mut wait = liveness.saturating_sub(silent_since.elapsed());
    if let Some(timeout) = timeout {
        wait = wait.min(timeout.saturating_sub(started.elapsed()));
    }
    wait
}

/// Kills the worker if its oldest job ran past `timeout`, or if it owes an
/// answer and has sent nothing, not even a heartbeat, for `liveness`.
fn check(link: &Link, config: &Config, heard: Instant) {
    let liveness = config.liveness;
    let mut state = lock(&link.state);
    let Some(head) = state.in_flight.front_mut() else {
        return;
    };
    let (Some(started), None) = (head.started, head.killed) else {
        return;
    };
    let timeout = kill_after(&head.job, config);
    if timeout.is_some_and(|timeout| started.elapsed() >= timeout) {
        head.killed = Some(Killed::Timeout);
        event!(
            warn,
            pid = link.pid,
            function = head.job.work.name(),
            "task past its timeout: killing its worker"
        );
    } else if heard.max(started).elapsed() >= liveness {
        head.killed = Some(Killed::Silent);
        event!(
            warn,
            pid = link.pid,
            "worker silent past the liveness timeout: killing it"
        );
    } else {
        return;
    }
    drop(state);
    let _ = lock(&link.child).kill();
}

/// How long a job may run before its worker is killed: its timeout. An
/// async chunk's worker drops each late item itself, so its worker is
/// killed only past a timeout per round of `max_concurrent` items, and a
/// grace: when the worker itself is stuck (a body that never yields).
fn kill_after(job: &Job, config: &Config) -> Option<Duration> {
    let timeout = job.timeout.or(config.timeout)?;
    match &job.work {
        Work::Batch {
            function, count, ..
        } if function.is_async => Some(super::run_async::chunk_bound(
            timeout,
            *count as usize,
            config.max_concurrent,
        )),
        _ => Some(timeout),
    }
}

/// Hands one answer to the job it answers: always the oldest in flight.
/// An answer that does not fit that job breaks the protocol: the worker is
/// then treated as dead, and the job is settled by [`die`].
///
/// `held`: the link's state, locked by an earlier answer of the same read
/// and kept while the answers are a group's items (one lock for the lot,
/// not one each); released before a job is handed over.
fn answer<'l>(
    shared: &Shared,
    link: &'l Link,
    held: &mut Option<MutexGuard<'l, LinkState>>,
    heard: Instant,
    tag: u8,
    body: &[u8],
) -> io::Result<()> {
    let mut fields = Fields(body);
    let task = fields.u64().map_err(proto::invalid)?;
    let (elapsed, answers) = match tag {
        proto::DONE => (Some(fields.u64().map_err(proto::invalid)?), None),
        proto::ANSWERS => (
            None,
            Some(read_answers(Fields(fields.0)).map_err(proto::invalid)?),
        ),
        proto::STATE | proto::FAILED => (None, None),
        other => return Err(proto::invalid(format!("unknown frame tag {other:#04x}"))),
    };
    let state = held.get_or_insert_with(|| lock(&link.state));
    let Some(head) = state.in_flight.front() else {
        return Err(proto::invalid(format!(
            "an answer to task {task}, which nothing waits for"
        )));
    };
    if head.task != task {
        return Err(proto::invalid(format!(
            "an answer to task {task} out of order"
        )));
    }
    let fits = match (&head.job.work, tag) {
        (_, proto::FAILED) => true,
        (Work::Singles(_), proto::ANSWERS) => true,
        (Work::Take { .. }, kind) => kind == proto::STATE,
        (_, kind) => kind == proto::DONE,
    };
    if !fits {
        return Err(proto::invalid(format!(
            "an answer of kind {tag:#04x} to task {task}, which expects another"
        )));
    }
    let payload = fields.rest();
    let head = &mut state.in_flight[0];
    if let Work::Singles(singles) = &mut head.job.work {
        // An item of a group: recorded; the next one, if any, is running now.
        if head.job.attempts > 0 {
            // The item a suspect group looked for, retried and answered.
            singles.suspect = false;
        }
        let answered = match (answers, elapsed) {
            (Some((elapsed, count, answers)), _) => {
                if count > singles.left() {
                    return Err(proto::invalid(format!(
                        "answers to {count} items of a group with {} left",
                        singles.left()
                    )));
                }
                singles.answer_run(elapsed, count, answers);
                count
            }
            (None, Some(elapsed)) => {
                singles.answer(payload, elapsed);
                1
            }
            (None, None) => {
                let error = failed_error(payload, &shared.config.limits, link.pid);
                if let Error::TooLarge { len, .. } = &error {
                    singles.function.record_answer(*len, 1);
                }
                singles.fail_next(error);
                1
            }
        };
        if singles.left() > 0 {
            head.task += u64::from(answered);
            head.started = Some(heard);
            // Its retries were the answered item's; so was a kill on its way.
            head.job.attempts = 0;
            head.killed = None;
            return Ok(());
        }
    }
    let mut state = held.take().expect("locked above");
    let sent = state.in_flight.pop_front().expect("looked at above");
    state.estimate_ns -= sent.estimate_ns;
    let mut cancel = false;
    if let Some(next) = state.in_flight.front_mut() {
        // The time of the read that brought the answer: no clock read per answer.
        next.started.get_or_insert(heard);
        // A cancelled task the worker is about to start: stop the worker.
        if next.cancelled && next.killed.is_none() {
            next.killed = Some(Killed::Cancelled);
            cancel = true;
        }
    }
    let wake = state.writer_waiting && state.has_half_space();
    drop(state);
    if cancel {
        event!(
            info,
            pid = link.pid,
            "a cancelled task is next: killing its worker"
        );
        let _ = lock(&link.child).kill();
    }
    if wake {
        link.space.notify_one();
    }

    let mut job = sent.job;
    if job.is_group() {
        count_tasks(shared, &mut job);
        job.finish_group();
        return Ok(());
    }
    match elapsed {
        Some(elapsed) => {
            let count = job.work.count();
            if let Some(function) = job.work.needs() {
                function.record(elapsed, count, payload.len());
            }
            shared
                .stats
                .tasks
                .fetch_add(u64::from(count), Ordering::Relaxed);
            job.finish(Ok(payload));
        }
        None if tag == proto::STATE => job.finish(Ok(payload)),
        None => {
            let error = failed_error(payload, &shared.config.limits, link.pid);
            // An answer refused as too large: later chunks are made smaller.
            if let (
                Error::TooLarge { len, .. },
                Work::Batch {
                    function, count, ..
                },
            ) = (&error, &job.work)
            {
                function.record_answer(*len, *count);
            }
            job.fail(error);
        }
    }
    Ok(())
}

/// The worker is gone: fails or retries the job it was running, and puts
/// the jobs it never started back in the queue.
pub(super) fn die(shared: &Shared, link: &Link, end: io::Result<()>) {
    let mut state = lock(&link.state);
    state.dead = true;
    let mut in_flight: Vec<Sent> = state.in_flight.drain(..).collect();
    for sent in &mut in_flight {
        count_tasks(shared, &mut sent.job);
    }
    state.estimate_ns = 0;
    drop(state);
    link.space.notify_all();
    shared.queue.wake_all();
    if shared.queue.is_closed() {
        in_flight
            .into_iter()
            .for_each(|sent| sent.job.fail(Error::PoolClosed));
        return;
    }
    let status = {
        let mut child = lock(&link.child);
        // Closed cleanly with nothing owed (recycled, joined): it is exiting.
        let grace = match end {
            Ok(()) if in_flight.is_empty() => Duration::from_secs(5),
            Ok(()) => Duration::from_millis(100),
            Err(_) => Duration::ZERO,
        };
        process::reap(&mut child, grace)
    };
    let status = match end {
        Err(error) if error.kind() != ErrorKind::UnexpectedEof => {
            format!("{status}, after a broken frame: {error}")
        }
        _ => status,
    };
    // A group is answered item by item, and a worker holds answers back:
    // the item it died in may be any sent after the last answer, in this
    // group or a later one. Each of them then runs again, item by item
    // between flushes, so that the next death is charged to the right one.
    let unclear = in_flight
        .first()
        .is_some_and(|head| head.killed.is_none() && head.job.is_clear_group());
    let mut requeue = Vec::new();
    for (position, sent) in in_flight.into_iter().enumerate() {
        let Sent {
            mut job,
            killed,
            cancelled,
            ..
        } = sent;
        // Cancelled: its `Task` is gone, nothing waits for an answer.
        if cancelled || matches!(killed, Some(Killed::Cancelled)) || !job.detach() {
            continue;
        }
        let name = job.work.name().to_owned();
        let status = match killed {
            Some(Killed::Silent) => format!(
                "{status}: it owed an answer and sent nothing, not even a heartbeat, \
                 for {:?} (stopped, or stuck as a whole)",
                shared.config.liveness
            ),
            _ => status.clone(),
        };
        if unclear {
            job.suspect();
        }
        if (position > 0 || unclear) && job.pin.is_none() {
            requeue.push(job); // never started, or not known to have
        } else if job.pin.is_none()
            && job.work.retryable()
            && job.attempts < shared.config.retries
            && !matches!(killed, Some(Killed::Timeout))
        {
            job.attempts += 1;
            shared.stats.retries.fetch_add(1, Ordering::Relaxed);
            requeue.push(job);
        } else {
            let error = if matches!(killed, Some(Killed::Timeout)) {
                let timeout = job.timeout.or(shared.config.timeout).unwrap_or_default();
                Error::Timeout { name, timeout }
            } else {
                Error::WorkerDied {
                    name,
                    pid: link.pid,
                    status,
                }
            };
            // A group's items after the one running go to another worker.
            requeue.extend(job.fail_running(error));
        }
    }
    shared.queue.push_front(requeue);
}

/// Adds a group's answered items to the pool's count of tasks, before the
/// group leaves the link: finished, or to go elsewhere.
fn count_tasks(shared: &Shared, job: &mut Job) {
    let answered = job.take_uncounted();
    if answered > 0 {
        shared
            .stats
            .tasks
            .fetch_add(u64::from(answered), Ordering::Relaxed);
    }
}

/// The error a FAILED frame from worker `pid` carries, or why it cannot be read.
pub(crate) fn failed_error(bytes: &[u8], limits: &codec::Limits, pid: u32) -> Error {
    match codec::decode_value::<WireError>(bytes, limits) {
        Ok(error) => error.into_error(Some(pid)),
        Err(error) => error,
    }
}
