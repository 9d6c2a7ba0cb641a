//! A chunk's items encoded as one sequence straight from their iterator:
//! one encode call for the chunk, with no `Vec` of the items first.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;

use serde::ser::{SerializeTuple, Serializer};
use serde::Serialize;

use super::format;
use crate::error::{Error, Result};

/// Room kept for the sequence's length prefix, written last: the widest
/// either format writes for a `usize`.
const LEN_ROOM: usize = 10;

/// What [`encode_seq_from`] did.
pub(crate) struct Encoded<A> {
    /// Items in the sequence.
    pub(crate) count: u32,
    /// The item taken that would have passed `limit`: for the next sequence.
    pub(crate) back: Option<A>,
}

/// Appends to `out` a codec sequence of up to `max_items` items taken from
/// `held` first, then `items`, ending once it holds `target` bytes or more. It never exceeds
/// `limit` bytes: an item that would pass it ends the sequence and comes
/// back in [`Encoded::back`].
///
/// A sequence encodes as its length, then its elements one after the
/// other, as a tuple does its elements: the items are encoded as one tuple
/// as they come, and the length put in front once known.
///
/// # Errors
/// Only for the first item taken, which is then used up: [`Error::Encode`],
/// or [`Error::TooLarge`] if it alone exceeds `limit`.
pub(crate) fn encode_seq_from<A: Serialize>(
    held: &mut VecDeque<A>,
    items: impl Iterator<Item = A>,
    max_items: usize,
    target: usize,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<Encoded<A>> {
    let start = out.len();
    let len = Cell::new(start);
    let pull = Pull {
        held: RefCell::new(held),
        items: RefCell::new(items),
        len: &len,
        start,
        max_items,
        target,
        limit: limit.saturating_sub(LEN_ROOM),
        count: Cell::new(0),
        cut: Cell::new(None),
        back: Cell::new(None),
        too_large: Cell::new(None),
    };
    let encoded = format::encode_to(&pull, Watched { out, len: &len });
    if let Some(bytes) = pull.too_large.get() {
        return Err(Error::TooLarge {
            len: bytes as u64,
            limit,
        });
    }
    encoded?;
    if let Some(cut) = pull.cut.get() {
        out.truncate(cut);
    }
    let count = pull.count.get();
    let items_end = out.len();
    format::encode_len_into(count as usize, out)?;
    let prefix = out.len() - items_end;
    out[start..].rotate_right(prefix);
    Ok(Encoded {
        count,
        back: pull.back.take(),
    })
}

/// A `Vec` as a writer whose length is watched through `len`.
struct Watched<'a> {
    out: &'a mut Vec<u8>,
    len: &'a Cell<usize>,
}

impl io::Write for Watched<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(bytes);
        self.len.set(self.out.len());
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write(bytes).map(drop)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Items serialized as the elements of one tuple, as they are taken.
struct Pull<'a, A, F> {
    held: RefCell<&'a mut VecDeque<A>>,
    items: RefCell<F>,
    len: &'a Cell<usize>,
    start: usize,
    max_items: usize,
    target: usize,
    limit: usize,
    count: Cell<u32>,
    /// Where the bytes of an item held back begin.
    cut: Cell<Option<usize>>,
    back: Cell<Option<A>>,
    /// The first item alone passed the limit, with this many bytes.
    too_large: Cell<Option<usize>>,
}

impl<A: Serialize, F> Pull<'_, A, F> {
    /// Serializes `item` as the next element; `false` once the sequence is done.
    fn put<T: SerializeTuple>(
        &self,
        tuple: &mut T,
        item: A,
        count: &mut u32,
    ) -> std::result::Result<bool, T::Error> {
        if *count as usize >= self.max_items || self.len.get() - self.start >= self.target {
            self.back.set(Some(item));
            self.cut.set(Some(self.len.get()));
            return Ok(false);
        }
        let before = self.len.get();
        let put = tuple.serialize_element(&item);
        self.settle(put, before, item, count)
    }

    /// Settles an element written from `before`: counted, held back, or
    /// the first item's error. `false` once the sequence is done.
    fn settle<E>(
        &self,
        put: std::result::Result<(), E>,
        before: usize,
        item: A,
        count: &mut u32,
    ) -> std::result::Result<bool, E> {
        let len = self.len.get();
        let fits = len - self.start <= self.limit;
        match (put, fits, *count) {
            (Ok(()), true, _) => {}
            (Err(error), _, 0) => return Err(error),
            (Ok(()), false, 0) => {
                self.too_large.set(Some(len - self.start));
                return Ok(false);
            }
            // A later item that fails or does not fit: it starts the next sequence.
            _ => {
                self.cut.set(Some(before));
                self.back.set(Some(item));
                return Ok(false);
            }
        }
        *count += 1;
        Ok(len - self.start < self.target)
    }
}

impl<A: Serialize, F: Iterator<Item = A>> Serialize for Pull<'_, A, F> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.max_items)?;
        let mut count = 0u32;
        // Held items first, then the input, each in a loop of its own: no
        // look at `held` per item of the input.
        let mut held = self.held.borrow_mut();
        let mut open = true;
        while let Some(item) = held.pop_front() {
            if !self.put(&mut tuple, item, &mut count)? {
                open = false;
                break;
            }
        }
        drop(held);
        let mut items = self.items.borrow_mut();
        if !open {
            self.count.set(count);
            return tuple.end();
        }
        // Below this, an item is simply counted: one compare on the hot path.
        let easy = self.start + self.target.min(self.limit);
        while (count as usize) < self.max_items && self.len.get() < easy {
            let Some(item) = items.next() else { break };
            let before = self.len.get();
            let put = tuple.serialize_element(&item);
            if put.is_ok() && self.len.get() < easy {
                count += 1;
                continue;
            }
            // Past the easy bound, or failed: decided once more, with care.
            if !self.settle(put, before, item, &mut count)? {
                break;
            }
        }
        self.count.set(count);
        tuple.end()
    }
}
