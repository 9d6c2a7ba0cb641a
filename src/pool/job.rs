//! What the pool queues: jobs and where their results go.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::task::Waker;
use std::time::Duration;

use super::entry::FnEntry;
use super::protocol as proto;
use super::singles::{Answers, Singles};
use crate::error::{Error, Result};
use crate::sync::lock;

/// Bytes kept inline when small: an item or an answer at one item per
/// message, with no allocation (and no free on another thread, which cost
/// glibc twice a malloc).
pub(crate) enum Payload {
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    /// Shared: a slot writes a large one straight to its worker's socket
    /// once the job is in flight (see [`Work::encode`]).
    Heap(Arc<Vec<u8>>),
}

/// Items blocks of this many bytes or more are written to the socket from
/// the job ([`Work::encode`]); below it, a copy costs less than a
/// system call of their own.
pub(crate) const ITEMS_APART: usize = 64 << 10;

/// The largest payload kept inline: a `Job` then stays within 128 bytes,
/// which a move copies inline rather than through a `memcpy` call.
const INLINE: usize = 30;

impl Payload {
    pub(crate) fn from_slice(bytes: &[u8]) -> Self {
        if bytes.len() > INLINE {
            return Payload::Heap(Arc::new(bytes.to_vec()));
        }
        let mut inline = [0; INLINE];
        inline[..bytes.len()].copy_from_slice(bytes);
        Payload::Inline {
            len: bytes.len() as u8,
            bytes: inline,
        }
    }

    /// Takes `buf`'s bytes: copied inline when small (`buf` kept for reuse), else moved.
    pub(crate) fn take(buf: &mut Vec<u8>) -> Self {
        if buf.len() > INLINE {
            return Payload::Heap(Arc::new(std::mem::take(buf)));
        }
        let payload = Payload::from_slice(buf);
        buf.clear();
        payload
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Payload::Heap(bytes) => bytes.as_slice(),
        }
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        Payload::Heap(Arc::new(bytes))
    }
}

/// The frame a job becomes.
pub(crate) enum Work {
    /// Call `function` once per item (an items block of `count` items).
    Batch {
        function: Arc<FnEntry>,
        items: Payload,
        count: u32,
    },
    /// Call a function once per item, each item in a frame of its own:
    /// a map at one item per message ([`singles`](super::singles)).
    Singles(Box<Singles>),
    /// Call a function once, consuming it; `items` holds one item.
    Once {
        name: &'static str,
        function: Vec<u8>,
        items: Vec<u8>,
    },
    /// Fetch a fold's state from one worker.
    Take { function: Arc<FnEntry> },
}

impl Work {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Work::Batch { function, .. } | Work::Take { function } => function.name,
            Work::Singles(singles) => singles.function.name,
            Work::Once { name, .. } => name,
        }
    }

    /// Items a worker is sent for it: a group's unanswered ones.
    pub(crate) fn count(&self) -> u32 {
        match self {
            Work::Batch { count, .. } => *count,
            Work::Singles(singles) => singles.left(),
            Work::Once { .. } => 1,
            Work::Take { .. } => 0,
        }
    }

    /// The function this job needs loaded first, if any.
    pub(crate) fn needs(&self) -> Option<&Arc<FnEntry>> {
        match self {
            Work::Batch { function, .. } | Work::Take { function } => Some(function),
            Work::Singles(singles) => Some(&singles.function),
            Work::Once { .. } => None,
        }
    }

    /// Appends its frames, the first with task id `task`: one, or a
    /// group's one per item, each with the next id. `async_fields`: an async
    /// chunk's per-item timeout and concurrency.
    ///
    /// A batch's items block of [`ITEMS_APART`] bytes or more is left out
    /// and returned: the caller writes it right after `out` (the frame's
    /// length counts it), rather than copy it into its buffer (a copy per
    /// chunk, and a buffer kept as large as the largest chunk for the
    /// worker's life).
    #[must_use = "a block left out must be written right after the frame"]
    pub(crate) fn encode(
        &self,
        task: u64,
        async_fields: Option<(u64, u32)>,
        out: &mut Vec<u8>,
    ) -> Option<Arc<Vec<u8>>> {
        let (tag, id) = match self {
            Work::Singles(singles) => {
                singles.write_frames(task, out);
                return None;
            }
            Work::Batch { function, .. } if async_fields.is_some() => {
                (proto::ASYNC_BATCH, function.id)
            }
            Work::Batch { function, .. } if function.mutable => (proto::BATCH_MUT, function.id),
            Work::Batch { function, .. } if function.batches => (proto::BATCH_SEQ, function.id),
            Work::Batch { function, .. } => (proto::BATCH, function.id),
            Work::Once { .. } => (proto::ONCE, 0),
            Work::Take { function } => (proto::TAKE, function.id),
        };
        let frame = proto::start_frame(out, tag);
        out.extend_from_slice(&task.to_le_bytes());
        match self {
            Work::Batch { items, .. } => {
                out.extend_from_slice(&id.to_le_bytes());
                if let Some((timeout, concurrency)) = async_fields {
                    out.extend_from_slice(&timeout.to_le_bytes());
                    out.extend_from_slice(&concurrency.to_le_bytes());
                }
                if let Payload::Heap(block) = items {
                    if block.len() >= ITEMS_APART {
                        proto::finish_frame_before(out, frame, block.len());
                        return Some(Arc::clone(block));
                    }
                }
                out.extend_from_slice(items.as_slice());
            }
            Work::Once {
                function, items, ..
            } => {
                out.extend_from_slice(&(function.len() as u32).to_le_bytes());
                out.extend_from_slice(function);
                out.extend_from_slice(items);
            }
            Work::Take { .. } => out.extend_from_slice(&id.to_le_bytes()),
            Work::Singles(_) => {} // its frames are written above
        }
        proto::finish_frame(out, frame);
        None
    }

    /// Whether running it twice could differ from running it once.
    pub(crate) fn retryable(&self) -> bool {
        match self {
            Work::Batch { function, .. } => !function.mutable,
            Work::Singles(singles) => !singles.function.mutable,
            Work::Once { .. } => true,
            Work::Take { .. } => false,
        }
    }
}

/// Where a map's chunk answers go. Its implementation decodes an answer
/// where it lands, on the worker's reader thread, so that the iterating
/// thread only hands out values.
pub(crate) trait Sink: Send + Sync {
    /// Chunk `seq` of `count` items answered: its payload, or its error.
    fn send(&self, seq: u64, count: u32, answer: Result<&[u8]>);

    /// A chunk's items block, sent and answered: its memory, for the next chunk's.
    fn recycle(&self, block: Vec<u8>);

    /// Chunk `seq`, sent item by item, answered: each item's answer.
    fn send_each(&self, seq: u64, answers: Answers);

    /// The map is gone: its chunks not yet in a worker are dropped, never run.
    fn is_closed(&self) -> bool;
}

/// Where a job's result goes: its payload (an items block, or a state envelope) or its error.
pub(crate) enum Reply {
    /// One chunk of a map, by sequence number.
    Chunk { inbox: Arc<dyn Sink>, seq: u64 },
    /// A submitted task.
    Task(Arc<TaskCell>),
}

impl Reply {
    /// Hands over the answer to `count` items.
    pub(crate) fn send(self, count: u32, result: Result<&[u8]>) {
        match self {
            // The receiver is gone when a map was dropped early: nothing waits.
            Reply::Chunk { inbox, seq } => inbox.send(seq, count, result),
            Reply::Task(cell) => cell.complete(result.map(<[u8]>::to_vec)),
        }
    }

    /// Hands over a group's answers, item by item.
    pub(crate) fn send_each(self, answers: Answers) {
        match self {
            Reply::Chunk { inbox, seq } => inbox.send_each(seq, answers),
            // Groups are made by maps only, whose replies are chunks.
            Reply::Task(cell) => cell.complete(Err(Error::decode(
                "a task was answered item by item, as a map's chunk",
            ))),
        }
    }
}

/// A unit of work and where its result goes.
pub(crate) struct Job {
    pub(crate) work: Work,
    pub(crate) reply: Reply,
    /// Times the job was started on a worker that then died.
    pub(crate) attempts: u32,
    /// The worker slot that must run it (a fold's `Take`).
    pub(crate) pin: Option<usize>,
    /// Its own timeout, instead of the pool's.
    pub(crate) timeout: Option<Duration>,
}

impl Job {
    pub(crate) fn new(work: Work, reply: Reply) -> Self {
        Job {
            work,
            reply,
            attempts: 0,
            pin: None,
            timeout: None,
        }
    }

    /// The cell of a submitted task, which may be cancelled.
    pub(crate) fn cell(&self) -> Option<&Arc<TaskCell>> {
        match &self.reply {
            Reply::Task(cell) => Some(cell),
            Reply::Chunk { .. } => None,
        }
    }

    /// Forgets the worker it was sent to, which died; `false` if its task
    /// was cancelled (then it is dropped, not sent again).
    pub(crate) fn detach(&self) -> bool {
        let Some(cell) = self.cell() else {
            return true;
        };
        let mut state = lock(&cell.state);
        state.running = None;
        !state.cancelled
    }

    /// Whether its task was cancelled, or its map dropped: then it is
    /// dropped, never run.
    pub(crate) fn is_cancelled(&self) -> bool {
        match &self.reply {
            Reply::Task(cell) => lock(&cell.state).cancelled,
            Reply::Chunk { inbox, .. } => inbox.is_closed(),
        }
    }

    /// Fails the job: each of a group's items not answered gets a copy of
    /// `error`, those answered keep their answers.
    pub(crate) fn fail(mut self, error: Error) {
        if let Work::Singles(singles) = &mut self.work {
            singles.fail_rest(&error);
            self.finish_group();
            return;
        }
        self.reply.send(self.work.count(), Err(error));
    }

    /// Whether this is a group not [`suspect`](Singles::suspect): a death
    /// while it is the oldest in flight leaves open which item ran.
    pub(crate) fn is_clear_group(&self) -> bool {
        matches!(&self.work, Work::Singles(singles) if !singles.suspect)
    }

    /// Makes a group [`suspect`](Singles::suspect); other jobs are left as they are.
    pub(crate) fn suspect(&mut self) {
        if let Work::Singles(singles) = &mut self.work {
            singles.suspect = true;
        }
    }

    /// Fails what a worker was running when it died: the whole job, or a
    /// group's next item. A group with items left comes back, to be sent
    /// again from the item after it; its retries start over with that item.
    pub(crate) fn fail_running(mut self, error: Error) -> Option<Job> {
        let Work::Singles(singles) = &mut self.work else {
            self.fail(error);
            return None;
        };
        singles.fail_next(error);
        // The item a suspect group looked for: the ones after it go as before.
        singles.suspect = false;
        if singles.left() > 0 {
            self.attempts = 0;
            return Some(self);
        }
        self.finish_group();
        None
    }

    /// Whether this is a group of items sent one per message.
    pub(crate) fn is_group(&self) -> bool {
        matches!(self.work, Work::Singles(_))
    }

    /// A group's `DONE` answers not yet counted, now counted: 0 for another job.
    pub(crate) fn take_uncounted(&mut self) -> u32 {
        match &mut self.work {
            Work::Singles(singles) => std::mem::take(&mut singles.uncounted),
            _ => 0,
        }
    }

    /// Hands over a group's answers (a group whose items are all answered)
    /// and folds their measurements into the function's estimates; any
    /// other job fails: only a group is answered so.
    pub(crate) fn finish_group(self) {
        match self.work {
            Work::Singles(singles) => {
                let (elapsed, items, bytes) = singles.measured();
                if items > 0 {
                    singles.function.record(elapsed, items, bytes);
                }
                self.reply.send_each(singles.into_answers());
            }
            work => Job { work, ..self }.fail(Error::decode("a job answered as a group")),
        }
    }

    /// Hands over the worker's answer, or the job's error. A group's
    /// answers come item by item instead ([`finish_group`](Self::finish_group)).
    pub(crate) fn finish(self, result: Result<&[u8]>) {
        match result {
            Ok(_) if self.is_group() => self.fail(Error::decode("a group answered as a whole")),
            Ok(payload) => {
                let count = self.work.count();
                // A fresh block for each chunk was memory the allocator had
                // given back: a page fault per 4 KiB as the map wrote it.
                if let (
                    Reply::Chunk { inbox, .. },
                    Work::Batch {
                        items: Payload::Heap(block),
                        ..
                    },
                ) = (&self.reply, self.work)
                {
                    // Unless the slot that wrote it still holds it.
                    if let Ok(block) = Arc::try_unwrap(block) {
                        inbox.recycle(block);
                    }
                }
                self.reply.send(count, Ok(payload));
            }
            Err(error) => self.fail(error),
        }
    }
}

/// Where a worker's answer to one task lands.
pub(crate) struct TaskCell {
    pub(crate) state: Mutex<CellState>,
    pub(crate) done: Condvar,
}

pub(crate) struct CellState {
    pub(crate) result: Option<Result<Vec<u8>>>,
    pub(crate) waker: Option<Waker>,
    /// [`Task::cancel`](super::Task::cancel) was called.
    pub(crate) cancelled: bool,
    /// The worker it was sent to, and its task id there.
    pub(crate) running: Option<(Weak<dyn Runner>, u64)>,
}

/// A worker that can stop a task it was sent: the link, seen from a task.
pub(crate) trait Runner: Send + Sync {
    /// Stops task `task` if this worker has it; returns whether it had.
    fn cancel(&self, task: u64) -> bool;

    /// Cancels `task` and says exactly what that did, for a runner that
    /// knows (a fleet's, which cannot stop a task a worker took); `None`:
    /// [`cancel`](Self::cancel) says.
    fn cancel_exactly(&self, _task: u64) -> Option<super::Cancelled> {
        None
    }
}

impl TaskCell {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(TaskCell {
            state: Mutex::new(CellState {
                result: None,
                waker: None,
                cancelled: false,
                running: None,
            }),
            done: Condvar::new(),
        })
    }

    pub(crate) fn complete(&self, result: Result<Vec<u8>>) {
        let mut state = lock(&self.state);
        state.result = Some(result);
        let waker = state.waker.take();
        drop(state);
        self.done.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}
