//! Where a map's answers land, decoded, for its iterating thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use serde::de::DeserializeOwned;

use super::super::answer::{decode_chunk_bytes, decode_each, ChunkResults};
use super::super::job::Sink;
use super::super::singles::Answers;
use super::block::SpareBlocks;
use crate::codec::Limits;
use crate::error::Result;
use crate::sync::lock;

/// A chunk answered: its sequence number and its results, decoded.
pub(super) type Answered<R> = (u64, ChunkResults<R>);

/// A map's answers, decoded by the reader thread that took them, so that
/// the iterating thread only hands out values. Not an mpsc channel: at one
/// item per message, it allocated and zeroed a block every 31 answers and
/// spun before sleeping.
pub(super) struct Inbox<R> {
    state: Mutex<State<R>>,
    ready: Condvar,
    /// The map is gone: its chunks not yet in a worker are dropped, never
    /// run. Apart from `state`: each chunk a slot takes reads it.
    closed: AtomicBool,
    limits: Limits,
    /// The function runs chunks in one typed pass: its answers are decoded so.
    batched: bool,
    /// Where answered chunks' items blocks go, for the pool's next chunks.
    spare: Arc<SpareBlocks>,
}

struct State<R> {
    answers: VecDeque<Answered<R>>,
    /// What the iterating thread sleeps for: the answer to this chunk
    /// ([`ANY`]: any answer). Others land without waking it.
    waiting: Option<u64>,
    /// The task of an async map, woken by the next answer.
    waker: Option<Waker>,
}

/// Waiting for whichever chunk is answered first.
pub(super) const ANY: u64 = u64::MAX;

impl<R> Inbox<R> {
    pub(super) fn new(limits: Limits, batched: bool, spare: Arc<SpareBlocks>) -> Arc<Self> {
        Arc::new(Inbox {
            state: Mutex::new(State {
                answers: VecDeque::new(),
                waiting: None,
                waker: None,
            }),
            ready: Condvar::new(),
            closed: AtomicBool::new(false),
            limits,
            batched,
            spare,
        })
    }

    /// The map was dropped: what it has queued is not to run.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Waits for the answer to chunk `seq` (or any, with [`ANY`]) unless
    /// answers are in already, then swaps them all into `into` (empty): one
    /// lock for as many answers as arrived meanwhile.
    pub(super) fn recv_all(&self, seq: u64, into: &mut VecDeque<Answered<R>>) {
        let mut state = lock(&self.state);
        if state.answers.is_empty() {
            state.waiting = Some(seq);
            while !state.answers.iter().any(|(at, _)| seq == ANY || *at == seq) {
                state = self
                    .ready
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.waiting = None;
        }
        std::mem::swap(&mut state.answers, into);
    }

    /// [`recv_all`](Self::recv_all) for async code: `Pending` until
    /// answers are in, and `cx`'s task is woken when they come.
    pub(super) fn poll_recv_all(
        &self,
        into: &mut VecDeque<Answered<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let mut state = lock(&self.state);
        if state.answers.is_empty() {
            state.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        std::mem::swap(&mut state.answers, into);
        Poll::Ready(())
    }
}

impl<R: DeserializeOwned + Send + 'static> Sink for Inbox<R> {
    fn send(&self, seq: u64, count: u32, answer: Result<&[u8]>) {
        // Decoded here, before the lock: the reader thread does the work.
        let results = match answer {
            Ok(bytes) => decode_chunk_bytes(count, bytes, &self.limits, self.batched),
            Err(error) => ChunkResults::failed(error, count),
        };
        self.land(seq, results);
    }

    fn send_each(&self, seq: u64, answers: Answers) {
        let results = decode_each(answers, &self.limits, self.batched);
        self.land(seq, results);
    }

    fn recycle(&self, block: Vec<u8>) {
        self.spare.put(block);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

impl<R> Inbox<R> {
    /// Adds a chunk's decoded results, and wakes the map if it waits for them.
    fn land(&self, seq: u64, results: ChunkResults<R>) {
        let mut state = lock(&self.state);
        state.answers.push_back((seq, results));
        let wake = state.waiting.is_some_and(|at| at == seq || at == ANY);
        let waker = state.waker.take();
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}
