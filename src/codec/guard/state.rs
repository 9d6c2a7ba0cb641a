//! The state of the decodes running on one thread: depth, budget, credit.

use std::cell::Cell;
use std::mem::size_of;

use serde::de;

use super::{stash, Limits, LEVEL_COST};
use crate::error::Error;

thread_local! {
    /// The state of the decodes running on this thread. A thread-local only so
    /// that nested decodes find the outer one; the wrappers carry a reference.
    pub(super) static STATE: State = const { State::new() };
}

/// What the decodes running on one thread have used so far.
pub(super) struct State {
    /// Whether a decode is running.
    pub(super) active: Cell<bool>,
    /// The current nesting level.
    pub(super) depth: Cell<usize>,
    /// Bytes charged since the outermost decode began.
    pub(super) used: Cell<usize>,
    /// Storage already paid for the value about to be visited.
    pub(super) credit: Cell<Credit>,
    /// The bound on `depth`.
    depth_bound: Cell<Bound>,
    /// The bound on `used`.
    budget_bound: Cell<Bound>,
}

/// Storage already paid for the next value visited: that value costs
/// nothing if it fits. Set by whoever hands a deserializer to a seed or a
/// `Deserialize` impl; taken by the first visit.
#[derive(Clone, Copy)]
pub(super) struct Credit {
    bytes: usize,
    /// Whether the storage is part of a value already visited (a field, an
    /// `Option`'s or a newtype's content) rather than a slot charged for it.
    inline: bool,
}

impl Credit {
    pub(super) const NONE: Credit = Credit::paid(0);

    pub(super) const fn paid(bytes: usize) -> Self {
        Credit {
            bytes,
            inline: false,
        }
    }

    pub(super) const fn inline(bytes: usize) -> Self {
        Credit {
            bytes,
            inline: true,
        }
    }
}

/// A bound of `limit` counted from `base`: the counter may reach
/// `base + limit`, not more.
#[derive(Clone, Copy)]
struct Bound {
    base: usize,
    limit: usize,
}

impl Bound {
    fn cap(self) -> usize {
        self.base.saturating_add(self.limit)
    }

    /// The tighter of `self` and `outer`.
    fn within(self, outer: Bound) -> Bound {
        if outer.cap() < self.cap() {
            outer
        } else {
            self
        }
    }
}

impl State {
    const fn new() -> Self {
        let none = Bound { base: 0, limit: 0 };
        State {
            active: Cell::new(false),
            depth: Cell::new(0),
            used: Cell::new(0),
            credit: Cell::new(Credit::NONE),
            depth_bound: Cell::new(none),
            budget_bound: Cell::new(none),
        }
    }

    /// Runs `f` one level of nesting deeper, and caps the message of the
    /// error it returns (see [`bounded`]).
    pub(super) fn nested<T, E: de::Error>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let depth = self.depth.get();
        let bound = self.depth_bound.get();
        if depth >= bound.cap() {
            return Err(stash(Error::TooDeep { limit: bound.limit }));
        }
        self.depth.set(depth + 1);
        let _level = Level(self);
        // The depth limit bounds the work; this bounds the stack, whatever the
        // frame sizes (debug builds, erased-serde between levels) or the
        // thread's stack size: a level runs on a fresh heap-allocated segment
        // when less than RED_ZONE is left.
        const RED_ZONE: usize = 256 * 1024;
        const SEGMENT: usize = 4 * 1024 * 1024;
        stacker::maybe_grow(RED_ZONE, SEGMENT, f).map_err(bounded)
    }

    /// Spends `bytes` of the budget.
    /// [`nested`](Self::nested) for a level whose frame is small and not
    /// recursive (an envelope's header): counted, without probing the stack.
    pub(super) fn level<T, E: de::Error>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let depth = self.depth.get();
        let bound = self.depth_bound.get();
        if depth >= bound.cap() {
            return Err(stash(Error::TooDeep { limit: bound.limit }));
        }
        self.depth.set(depth + 1);
        let _level = Level(self);
        f()
    }

    #[inline]
    pub(super) fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        self.charge_within(bytes, self.cap())
    }

    /// The most `used` may reach. Constant while a value is visited: a
    /// nested decode puts it back when it ends.
    #[inline]
    pub(super) fn cap(&self) -> usize {
        self.budget_bound.get().cap()
    }

    /// [`charge`](Self::charge) against `cap`, read before by [`cap`](Self::cap).
    #[inline]
    pub(super) fn charge_within<E: de::Error>(&self, bytes: usize, cap: usize) -> Result<(), E> {
        match self.used.get().checked_add(bytes) {
            Some(next) if next <= cap => {
                self.used.set(next);
                Ok(())
            }
            _ => Err(self.too_large(bytes, 1)),
        }
    }

    /// Fails at once, spending nothing, if `count` items of at least `each`
    /// bytes cannot be paid for: a forged length is refused before its first
    /// element, however little that element reads.
    pub(super) fn afford<E: de::Error>(&self, count: Option<usize>, each: usize) -> Result<(), E> {
        let Some(count) = count else { return Ok(()) };
        let need = count.saturating_mul(each);
        if self.used.get().saturating_add(need) <= self.budget_bound.get().cap() {
            return Ok(());
        }
        Err(self.too_large(count, each))
    }

    /// [`Error::TooLarge`]: the budget needed with `count` more items of
    /// `each` bytes, against the limit.
    // Out of line: keeps the callers' hot paths short.
    #[cold]
    #[inline(never)]
    fn too_large<E: de::Error>(&self, count: usize, each: usize) -> E {
        let bound = self.budget_bound.get();
        let len = (count as u128 * each as u128 + (self.used.get() - bound.base) as u128)
            .min(u64::MAX as u128) as u64;
        stash(Error::TooLarge {
            len,
            limit: bound.limit,
        })
    }

    /// Pays for a visited value of type `T`: nothing if the credit covers
    /// it, its size if not (its storage is new: a `Box`'s, say). A compound
    /// value (`compound`) in inline storage also pays [`LEVEL_COST`].
    pub(super) fn pay<T, E: de::Error>(&self, compound: bool) -> Result<(), E> {
        let credit = self.credit.replace(Credit::NONE);
        if size_of::<T>() > credit.bytes {
            self.charge(size_of::<T>())
        } else if compound && credit.inline {
            self.charge(LEVEL_COST)
        } else {
            Ok(())
        }
    }

    pub(super) fn grant(&self, credit: Credit) {
        self.credit.set(credit);
    }
}

/// One level of nesting; leaves it on drop, also when unwinding.
struct Level<'s>(&'s State);

impl Drop for Level<'_> {
    fn drop(&mut self) {
        self.0.depth.set(self.0.depth.get() - 1);
    }
}

/// The longest error message passed up a level as it is.
pub(super) const MAX_MESSAGE_LEN: usize = 1024;

/// Cuts an error message longer than [`MAX_MESSAGE_LEN`].
///
/// bincode's `Display` of an error is its `Debug`, which quotes and escapes
/// the message; so each `erased_serde` boundary an error crosses on its way
/// up (erased-serde converts errors through `Display`) doubles the
/// backslashes in it. Unchecked, an error from 40 levels down grows to 2^40
/// bytes.
fn bounded<E: de::Error>(error: E) -> E {
    let message = error.to_string();
    if message.len() <= MAX_MESSAGE_LEN {
        return error;
    }
    let mut end = MAX_MESSAGE_LEN;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    E::custom(format_args!("{}...", &message[..end]))
}

/// One call of [`deserialize_seed`](super::deserialize_seed): puts the outer bounds back on drop, also
/// when unwinding. The depth is back by then (see [`Level`]); the budget used
/// stays used.
pub(super) struct Session<'s> {
    state: &'s State,
    pub(super) active: bool,
    depth_bound: Bound,
    budget_bound: Bound,
}

impl<'s> Session<'s> {
    pub(super) fn begin(state: &'s State, limits: &Limits) -> Self {
        let outer = Session {
            state,
            active: state.active.get(),
            depth_bound: state.depth_bound.get(),
            budget_bound: state.budget_bound.get(),
        };
        if !outer.active {
            state.depth.set(0);
            state.used.set(0);
        }
        let mut depth_bound = Bound {
            base: state.depth.get(),
            limit: limits.max_depth,
        };
        let mut budget_bound = Bound {
            base: state.used.get(),
            limit: limits.budget(),
        };
        if outer.active {
            depth_bound = depth_bound.within(outer.depth_bound);
            budget_bound = budget_bound.within(outer.budget_bound);
        }
        state.active.set(true);
        state.depth_bound.set(depth_bound);
        state.budget_bound.set(budget_bound);
        outer
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.state.active.set(self.active);
        self.state.depth_bound.set(self.depth_bound);
        self.state.budget_bound.set(self.budget_bound);
    }
}
