//! The pool's queue: the jobs no worker has taken yet, shared or pinned
//! to one slot.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, PoisonError};

use super::job::Job;
use crate::error::Error;
use crate::sync::lock;

/// The jobs no worker has taken yet.
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

struct QueueState {
    shared: VecDeque<Job>,
    pinned: Vec<VecDeque<Job>>,
    closed: bool,
    /// Closed to new jobs; those queued still run ([`Pool::close`](super::Pool::close)).
    sealed: bool,
    sleepers: usize,
}

impl QueueState {
    /// The next job for `slot`: its own first, then any.
    fn next_for(&mut self, slot: usize) -> Option<Job> {
        self.pinned[slot]
            .pop_front()
            .or_else(|| self.shared.pop_front())
    }
}

impl Queue {
    pub(crate) fn new(slots: usize) -> Self {
        Queue {
            state: Mutex::new(QueueState {
                shared: VecDeque::new(),
                pinned: (0..slots).map(|_| VecDeque::new()).collect(),
                closed: false,
                sealed: false,
                sleepers: 0,
            }),
            ready: Condvar::new(),
        }
    }

    /// Queues jobs at the back, or fails them once the pool is closed.
    pub(crate) fn push(&self, jobs: impl IntoIterator<Item = Job>) {
        self.insert(jobs, false);
    }

    /// Queues jobs that were sent to a worker that died without starting
    /// them, ahead of the rest, in their order.
    pub(crate) fn push_front(&self, jobs: Vec<Job>) {
        self.insert(jobs, true);
    }

    fn insert(&self, jobs: impl IntoIterator<Item = Job>, front: bool) {
        let mut state = lock(&self.state);
        // Sealed, it still takes back jobs a dead worker never started.
        if state.closed || (state.sealed && !front) {
            drop(state);
            jobs.into_iter().for_each(|job| job.fail(Error::PoolClosed));
            return;
        }
        let mut front_jobs = Vec::new();
        for job in jobs {
            match job.pin {
                Some(slot) => state.pinned[slot].push_back(job),
                None if front => front_jobs.push(job),
                None => state.shared.push_back(job),
            }
        }
        for job in front_jobs.into_iter().rev() {
            state.shared.push_front(job);
        }
        if state.sleepers > 0 {
            self.ready.notify_all();
        }
    }

    /// Up to `max` jobs for `slot` into `into`, without waiting: one lock
    /// for a run of jobs, not one each.
    pub(crate) fn try_pop_many(&self, slot: usize, max: usize, into: &mut VecDeque<Job>) {
        let mut state = lock(&self.state);
        while into.len() < max {
            match state.next_for(slot) {
                Some(job) => into.push_back(job),
                None => break,
            }
        }
    }

    /// The next job for `slot`, waiting for one; `None` once the pool is
    /// closed, or sealed with nothing left for `slot`, or `stop()` holds.
    pub(crate) fn pop(&self, slot: usize, stop: impl Fn() -> bool) -> Option<Job> {
        let mut state = lock(&self.state);
        loop {
            if state.closed || stop() {
                return None;
            }
            if let Some(job) = state.next_for(slot) {
                return Some(job);
            }
            if state.sealed {
                return None;
            }
            state.sleepers += 1;
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.sleepers -= 1;
        }
    }

    /// Wakes every waiting worker slot, to look at its `stop` condition.
    pub(crate) fn wake_all(&self) {
        let _state = lock(&self.state);
        self.ready.notify_all();
    }

    /// Fails the jobs that wait only for `slot` (its state is gone), and
    /// with `all`, every job waiting.
    pub(crate) fn fail_waiting(&self, slot: usize, all: bool, error: &Error) {
        let mut state = lock(&self.state);
        let mut failed: Vec<Job> = state.pinned[slot].drain(..).collect();
        if all {
            failed.extend(state.shared.drain(..));
        }
        drop(state);
        failed
            .into_iter()
            .for_each(|job| job.fail(error.duplicate()));
    }

    /// Refuses new jobs and fails the waiting ones with [`Error::PoolClosed`].
    pub(crate) fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        let mut failed: Vec<Job> = state.shared.drain(..).collect();
        for pinned in &mut state.pinned {
            failed.extend(pinned.drain(..));
        }
        self.ready.notify_all();
        drop(state);
        failed
            .into_iter()
            .for_each(|job| job.fail(Error::PoolClosed));
    }

    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Refuses new jobs; those queued still run.
    pub(crate) fn seal(&self) {
        let mut state = lock(&self.state);
        state.sealed = true;
        self.ready.notify_all();
    }

    pub(crate) fn is_sealed(&self) -> bool {
        lock(&self.state).sealed
    }
}
