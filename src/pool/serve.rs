//! The worker's end of a pool: a process that a [`Pool`](crate::Pool)
//! started serves its frames here, from [`worker::init`](crate::worker::init)
//! until the pool goes away.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::codec::{self, Limits};
use crate::error::{Error, WireError};
use crate::event::event;
use crate::handle::DynFn;
use crate::pool::protocol::{self as proto, Fields, FrameReader, Next};
use crate::pool::run_async;
use crate::pool::shm;
use crate::sync::lock;

mod group;

pub(crate) const ENV_SOCKET: &str = "SERFN_WORKER_SOCKET";
pub(crate) const ENV_TOKEN: &str = "SERFN_WORKER_TOKEN";
pub(crate) const ENV_LIMITS: &str = "SERFN_WORKER_LIMITS";

/// The name of the test that [`test_support!`](crate::test_support) defines,
/// which a pool passes as the test filter.
pub const TEST_ENTRY: &str = "__serfn_worker_entry";

static SERVING: AtomicBool = AtomicBool::new(false);

pub(crate) fn serve_and_exit(socket: OsString) -> ! {
    SERVING.store(true, Ordering::SeqCst);
    // Panics then carry their location (and backtrace) to the pool.
    crate::error::install_hook();
    let code = match serve(socket) {
        Ok(()) => 0,
        Err(_error) => {
            event!(error, pid = std::process::id(), "worker ends: {_error}");
            101
        }
    };
    std::process::exit(code);
}

/// Whether this process is a worker serving a pool (inside [`init`](crate::worker::init)).
pub fn is_worker() -> bool {
    SERVING.load(Ordering::SeqCst)
}

/// Whether a pool started this process as a worker that did not call [`init`](crate::worker::init):
/// starting a pool from there would start workers without end.
pub(crate) fn is_stray_worker() -> bool {
    std::env::var_os(ENV_SOCKET).is_some() && !is_worker()
}

fn serve(socket: OsString) -> io::Result<()> {
    let token: u64 = env_number(ENV_TOKEN)?;
    let limits = std::env::var(ENV_LIMITS)
        .ok()
        .and_then(|text| {
            let (bytes, depth) = text.split_once(',')?;
            Some(
                Limits::new()
                    .max_bytes(bytes.parse().ok()?)
                    .max_depth(depth.parse().ok()?),
            )
        })
        .unwrap_or_default();
    let stream = UnixStream::connect(socket)?;
    let mut hello = Vec::new();
    let frame = proto::start_frame(&mut hello, proto::HELLO);
    hello.extend_from_slice(&token.to_le_bytes());
    hello.extend_from_slice(&std::process::id().to_le_bytes());
    proto::finish_frame(&mut hello, frame);
    let outbox = Arc::new(Outbox {
        state: Mutex::new(Pending {
            bytes: hello,
            since: None,
            flusher_idle: false,
        }),
        added: Condvar::new(),
        stream: Mutex::new(stream.try_clone()?),
    });
    outbox.flush()?;
    watch_parent();
    let flusher = Arc::clone(&outbox);
    std::thread::Builder::new()
        .name("serfn-flush".into())
        .spawn(move || flusher.flush_stale())?;

    crate::registry::trace_all(); // layouts traced now, not by the first task (the flusher beats meanwhile)
    let mut worker = Worker::new(limits);
    let mut reader = FrameReader::new(shm::Receiver::new(stream), frame_limit(&limits));
    let mut out = Vec::with_capacity(64 << 10);
    loop {
        // Results go out in batches, but never wait behind a read that blocks.
        if !reader.has_frame() {
            outbox.add_quietly(&mut out); // nothing is held across a wait
            outbox.flush()?;
            worker.last_end = None; // the next frame starts after the wait
        }
        match reader.next_frame()? {
            Next::Closed => return Ok(()),
            Next::Frame(tag, body) => {
                // A descriptor comes with its frame's first byte: it is here.
                while let Some(fd) = reader.get_ref().take_fd() {
                    worker.fds.push_back(fd);
                }
                worker.handle(tag, reader.body(body), &mut out)?;
                // Written by this thread when asked to or a chunk's worth,
                // and at the loop's top when the next read may block; the
                // flusher is woken only for answers behind frames already
                // read, which it writes once they are stale.
                if tag == proto::FLUSH || out.len() >= WRITE_NOW {
                    outbox.add_quietly(&mut out);
                    outbox.flush()?;
                } else if reader.has_frame() {
                    outbox.add(&mut out);
                }
            }
        }
    }
}

/// Answers waiting to be written. The main thread writes them before it
/// blocks on a read; a flusher thread writes them once they are a
/// millisecond old, so that a long task does not hold back the answers
/// before it (and a worker killed during it loses none of them), and
/// sends a heartbeat when nothing was written for a while.
struct Outbox {
    state: Mutex<Pending>,
    added: Condvar,
    stream: Mutex<UnixStream>,
}

struct Pending {
    bytes: Vec<u8>,
    since: Option<Instant>,
    flusher_idle: bool,
}

const STALE: Duration = Duration::from_millis(1);

/// Answer bytes past which the main thread writes them at once, rather
/// than after the frames already read: a chunk's answers reach the parent
/// while the worker runs the next chunk.
const WRITE_NOW: usize = 32 << 10;

impl Outbox {
    /// Adds `out` for the flusher to write once it is [`STALE`], waking it.
    fn add(&self, out: &mut Vec<u8>) {
        let Some(mut state) = self.append(out) else {
            return;
        };
        if state.since.is_none() {
            state.since = Some(Instant::now());
            if state.flusher_idle {
                self.added.notify_one();
            }
        }
    }

    /// Adds `out` for a [`flush`](Self::flush) that follows at once: the
    /// flusher is not woken for it.
    fn add_quietly(&self, out: &mut Vec<u8>) {
        self.append(out);
    }

    /// Moves `out` to the pending bytes; `None` if it was empty.
    fn append(&self, out: &mut Vec<u8>) -> Option<std::sync::MutexGuard<'_, Pending>> {
        if out.is_empty() {
            return None;
        }
        let mut state = lock(&self.state);
        state.bytes.extend_from_slice(out);
        out.clear();
        Some(state)
    }

    fn flush(&self) -> io::Result<()> {
        // The stream lock is taken first and held while writing, so that
        // batches reach the socket in the order they were taken.
        let mut stream = lock(&self.stream);
        let mut bytes = {
            let mut state = lock(&self.state);
            state.since = None;
            std::mem::take(&mut state.bytes)
        };
        let written = proto::flush(&mut *stream, &mut bytes);
        let mut state = lock(&self.state);
        if state.bytes.is_empty() {
            state.bytes = bytes; // keep the allocation
        }
        written
    }

    fn flush_stale(&self) {
        let mut state = lock(&self.state);
        loop {
            match state.since {
                None => {
                    state.flusher_idle = true;
                    let (next, waited) = self
                        .added
                        .wait_timeout(state, proto::HEARTBEAT_EVERY)
                        .unwrap_or_else(PoisonError::into_inner);
                    state = next;
                    state.flusher_idle = false;
                    // Nothing to send for a while: say this process is alive,
                    // also while the main thread runs a long function.
                    if waited.timed_out() && state.since.is_none() {
                        let beat = proto::start_frame(&mut state.bytes, proto::HEARTBEAT);
                        proto::finish_frame(&mut state.bytes, beat);
                        state.since = Instant::now().checked_sub(STALE);
                    }
                }
                Some(since) if since.elapsed() < STALE => {
                    // `elapsed` again: it may have passed STALE since the check.
                    let wait = STALE.saturating_sub(since.elapsed());
                    state = self
                        .added
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                Some(_) => {
                    drop(state);
                    if self.flush().is_err() {
                        return; // the main thread sees the broken socket too
                    }
                    state = lock(&self.state);
                }
            }
        }
    }
}

/// The largest frame either side accepts: the decode limit plus headers.
pub(crate) fn frame_limit(limits: &Limits) -> usize {
    limits.get_max_bytes().saturating_add(1 << 10)
}

fn env_number(name: &str) -> io::Result<u64> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| io::Error::other(format!("{name} is missing or not a number")))
}

/// Exits when the parent process goes away, even while a function runs:
/// the socket's end-of-file is only seen between tasks.
fn watch_parent() {
    let parent = std::os::unix::process::parent_id();
    let spawned = std::thread::Builder::new()
        .name("serfn-parent-watch".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(100));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(0);
            }
        });
    if let Err(_error) = spawned {
        event!(error, "worker cannot watch its parent process: {_error}");
    }
}

/// Appends a task's `FAILED` frame.
fn failed(task: u64, error: &WireError, out: &mut Vec<u8>) -> io::Result<()> {
    let frame = proto::start_frame(out, proto::FAILED);
    out.extend_from_slice(&task.to_le_bytes());
    codec::encode_value_into(error, out).map_err(io::Error::other)?;
    proto::finish_frame(out, frame);
    Ok(())
}

/// Hashes the ids the parent gives functions (its own counter, not input
/// from elsewhere) with a multiply: SipHash took ~140 of a worker's ~1,500
/// instructions an item at one item per message.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, id: u64) {
        // Fibonacci hashing: consecutive ids spread over the table's top bits too.
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A loaded function, or the error its bytes gave, reported to each task that uses it.
type Loaded = std::result::Result<DynFn, WireError>;

/// The error of a task whose function is `found`: one that failed to
/// load, or none.
#[cold]
#[inline(never)]
fn not_loaded(id: u64, found: Option<&Loaded>) -> WireError {
    match found {
        Some(Err(error)) => error.clone(),
        _ => Error::decode(format!("function {id} was never loaded")).into(),
    }
}

/// The frame loop's state; `pub(crate)` for `__private::fuzz`, which drives it in process.
pub(crate) struct Worker {
    limits: Limits,
    functions: HashMap<u64, Loaded, BuildHasherDefault<IdHasher>>,
    runner: run_async::Runner,
    /// Descriptors received for `LOAD_SHARED` frames, oldest first.
    fds: VecDeque<OwnedFd>,
    /// When the last frame's call ended, while frames follow without a wait.
    last_end: Option<Instant>,
}

impl Worker {
    pub(crate) fn new(limits: Limits) -> Self {
        Worker {
            limits,
            functions: HashMap::default(),
            runner: run_async::Runner::default(),
            fds: VecDeque::new(),
            last_end: None,
        }
    }

    /// Answers one frame into `out`; an error breaks the protocol and ends the worker.
    pub(crate) fn handle(&mut self, tag: u8, body: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut fields = Fields(body);
        if !matches!(tag, proto::BATCH | proto::BATCH_SEQ | proto::GROUP) {
            self.last_end = None; // a load or a flush is no task's time
        }
        match tag {
            proto::LOAD => {
                let id = fields.u64().map_err(proto::invalid)?;
                let loaded = self.limits.from_bytes::<DynFn>(fields.rest());
                self.functions.insert(id, loaded.map_err(WireError::from));
                return Ok(());
            }
            proto::LOAD_SHARED => {
                let id = fields.u64().map_err(proto::invalid)?;
                let skip = fields.u64().map_err(proto::invalid)?;
                let len = fields.u64().map_err(proto::invalid)?;
                let fd = self
                    .fds
                    .pop_front()
                    .ok_or_else(|| proto::invalid("a shared-memory LOAD without its descriptor"))?;
                let loaded = self.load_shared(fd, skip, len);
                self.functions.insert(id, loaded.map_err(WireError::from));
                return Ok(());
            }
            // The frame loop writes the answers so far.
            proto::FLUSH => return Ok(()),
            proto::GROUP => return self.group(fields, out),
            proto::FORGET => {
                self.functions
                    .remove(&fields.u64().map_err(proto::invalid)?);
                return Ok(());
            }
            proto::BATCH
            | proto::BATCH_SEQ
            | proto::BATCH_MUT
            | proto::ASYNC_BATCH
            | proto::ONCE
            | proto::TAKE => {}
            other => return Err(proto::invalid(format!("unknown frame tag {other:#04x}"))),
        }
        let task = fields.u64().map_err(proto::invalid)?;
        // Frames run back to back start when the one before ended: one
        // clock read a frame, not two (~50 of a small item's instructions).
        let started = self.last_end.take().unwrap_or_else(Instant::now);
        // A state goes back as it is; results carry the time they took.
        let frame = proto::start_frame(
            out,
            if tag == proto::TAKE {
                proto::STATE
            } else {
                proto::DONE
            },
        );
        out.extend_from_slice(&task.to_le_bytes());
        let elapsed_at = (tag != proto::TAKE).then(|| {
            out.extend_from_slice(&[0; 8]);
            out.len() - 8
        });
        let result = match tag {
            proto::TAKE => self.take(fields, out),
            proto::ONCE => self.once(fields, out),
            proto::BATCH_SEQ => self.batch_seq(fields, out),
            proto::ASYNC_BATCH => self.batch_async(fields, out),
            _ => self.batch(tag == proto::BATCH_MUT, fields, out),
        };
        if let Err(error) = result {
            out.truncate(frame);
            return failed(task, &error, out);
        }
        // The parent could not read an answer past the limits: refuse it
        // here, as this task's error, rather than break the connection.
        let payload =
            out.len() - frame - proto::LEN_BYTES - 9 - 8 * usize::from(elapsed_at.is_some());
        if payload > self.limits.get_max_bytes() {
            out.truncate(frame);
            let error = WireError::from(&Error::TooLarge {
                len: payload as u64,
                limit: self.limits.get_max_bytes(),
            });
            return failed(task, &error, out);
        }
        if let Some(at) = elapsed_at {
            let ended = Instant::now();
            let elapsed = ended.saturating_duration_since(started).as_nanos() as u64;
            out[at..at + 8].copy_from_slice(&elapsed.to_le_bytes());
            self.last_end = Some(ended);
        }
        proto::finish_frame(out, frame);
        Ok(())
    }

    /// The function loaded as `id`, or the error each task that uses it gets.
    #[inline]
    fn loaded(&self, id: u64) -> std::result::Result<&DynFn, WireError> {
        match self.functions.get(&id) {
            Some(Ok(function)) => Ok(function),
            other => Err(not_loaded(id, other)),
        }
    }

    /// Decodes a function in place from the memfd `fd`, under the limits
    /// that bound a `LOAD` frame's bytes; it is unmapped right after.
    fn load_shared(&self, fd: OwnedFd, skip: u64, len: u64) -> std::result::Result<DynFn, Error> {
        let limit = self.limits.get_max_bytes();
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= limit)
            .ok_or(Error::TooLarge { len, limit })?;
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        // The checksum of a large function on a thread of its own, beside the decode.
        shm::map_and(fd, skip, len, |bytes| {
            codec::from_bytes_checked_beside::<DynFn>(&self.limits, bytes)
        })
        .map_err(Error::io)?
    }

    // Inlined, its errors out of line: it runs once per frame, and out of
    // line it took a twelfth of a worker's time at one item per message.
    #[inline]
    fn function(&mut self, id: u64) -> std::result::Result<&mut DynFn, WireError> {
        match self.functions.get_mut(&id) {
            Some(Ok(function)) => Ok(function),
            other => Err(not_loaded(id, other.map(|loaded| &*loaded))),
        }
    }

    fn batch(
        &mut self,
        mutable: bool,
        mut fields: Fields<'_>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), WireError> {
        let id = fields.u64()?;
        let items = fields.items()?;
        let limits = self.limits;
        let function = self.function(id)?;
        if mutable {
            function.call_each_mut(&items, &limits, out)?;
        } else {
            function.call_each(&items, &limits, out)?;
        }
        Ok(())
    }

    fn batch_async(
        &mut self,
        mut fields: Fields<'_>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), WireError> {
        let id = fields.u64()?;
        let timeout = match fields.u64()? {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        };
        let concurrency = fields.u32()?.max(1) as usize;
        let items = fields.items()?;
        let limits = self.limits;
        let settings = run_async::Settings {
            timeout,
            concurrency,
        };
        self.function(id)?;
        let Some(Ok(function)) = self.functions.get(&id) else {
            unreachable!("checked above");
        };
        self.runner.run(function, &items, &limits, &settings, out)?;
        Ok(())
    }

    fn batch_seq(
        &mut self,
        mut fields: Fields<'_>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), WireError> {
        let id = fields.u64()?;
        let limits = self.limits;
        self.function(id)?.call_batch(fields.rest(), &limits, out)?;
        Ok(())
    }

    fn once(
        &mut self,
        mut fields: Fields<'_>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), WireError> {
        let len = fields.u32()? as usize;
        let function = self.limits.from_bytes::<DynFn>(fields.take(len)?)?;
        let items = fields.items()?;
        let [args] = items[..] else {
            let message = format!("a call-once task carries {} items, not 1", items.len());
            return Err(Error::decode(message).into());
        };
        codec::encode_len_into(1, out)?;
        function.call_once_into(args, &self.limits, out)?;
        Ok(())
    }

    fn take(
        &mut self,
        mut fields: Fields<'_>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), WireError> {
        let id = fields.u64()?;
        self.function(id)?;
        let function = self.functions.remove(&id).expect("checked above").ok();
        let bytes = function.expect("checked above").to_bytes()?;
        out.extend_from_slice(&bytes);
        Ok(())
    }
}
