//! A chunk's items encoded as one sequence straight from their iterator:
//! one encode call for the chunk, with no `Vec` of the items first.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;

use serde::ser::{SerializeTuple, Serializer};
use serde::Serialize;

use super::{format, plain};
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
    // Plain numbers, each copied in, if the first item taken is one.
    let mut items = items;
    if let Some(first) = held.pop_front().or_else(|| items.next()) {
        if plain::is_plain(&first) {
            return encode_plain_from(first, held, items, max_items, target, limit, out);
        }
        held.push_front(first);
    }
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

/// [`encode_seq_from`] of items that each serialize as one plain number
/// (see `codec::plain`), the first of them `first`, already taken: the same
/// bytes, each element copied in. An item that is not plain ends the
/// sequence and comes back.
fn encode_plain_from<A: Serialize>(
    first: A,
    held: &mut VecDeque<A>,
    items: impl Iterator<Item = A>,
    max_items: usize,
    target: usize,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<Encoded<A>> {
    if max_items == 0 {
        format::encode_len_into(0, out)?;
        return Ok(Encoded {
            count: 0,
            back: Some(first),
        });
    }
    let start = out.len();
    let limit_items = limit.saturating_sub(LEN_ROOM);
    // Below `easy` bytes, an item is simply counted, as in `Pull`.
    let easy = start + target.min(limit_items);
    let (mut count, mut back) = (0, None);
    let careful = Careful {
        start,
        limit_items,
        easy,
        max_items,
        limit,
    };
    let mut put =
        |item: A, out: &mut Vec<u8>, count: &mut usize| careful.put(item, out, count, &mut back);
    // The first item is always tried: alone past `limit`, it is an error.
    let mut open = put(first, out, &mut count)?;
    let size = out.len() - start;
    while open {
        let Some(item) = held.pop_front() else { break };
        open = put(item, out, &mut count)?;
    }
    let mut items = items;
    if open {
        // Items of the first one's size: as many as fit, counted up front,
        // each checked for its size alone. One of another size (a type
        // whose `Serialize` picks) goes the careful way, as do the rest.
        let fit = (start + limit_items - out.len()) / size;
        let room = (easy - out.len()).div_ceil(size);
        let n = (max_items - count).min(fit).min(room);
        let base = out.len();
        out.resize(base + n * size, 0);
        let (mut taken, mut odd) = (0, None);
        // Slots first: `zip` takes no item once they run out.
        for (slot, item) in out[base..].chunks_exact_mut(size).zip(items.by_ref()) {
            if !plain::put_exact(&item, slot) {
                odd = Some(item);
                break;
            }
            taken += 1;
        }
        out.truncate(base + taken * size);
        count += taken;
        // Then item by item: a smaller item may still fit, or the
        // sequence is full, or the input ended.
        open = count < max_items && out.len() < easy;
        while open {
            let Some(item) = odd.take().or_else(|| items.next()) else {
                break;
            };
            open = put(item, out, &mut count)?;
        }
    }
    let items_end = out.len();
    format::encode_len_into(count, out)?;
    let prefix = out.len() - items_end;
    out[start..].rotate_right(prefix);
    Ok(Encoded {
        count: count as u32,
        back,
    })
}

/// The bounds of [`encode_plain_from`]'s sequence, checked item by item.
struct Careful {
    start: usize,
    limit_items: usize,
    easy: usize,
    max_items: usize,
    limit: usize,
}

impl Careful {
    /// Appends `item`: `false` once the sequence is full or the item is
    /// held back in `back`; the first item's error if it alone is too large.
    fn put<A: Serialize>(
        &self,
        item: A,
        out: &mut Vec<u8>,
        count: &mut usize,
        back: &mut Option<A>,
    ) -> Result<bool> {
        let before = out.len();
        if !plain::put(&item, out) {
            *back = Some(item);
            return Ok(false);
        }
        if out.len() - self.start > self.limit_items {
            let len = out.len() - before;
            out.truncate(before);
            if *count == 0 {
                return Err(Error::TooLarge {
                    len: len as u64,
                    limit: self.limit,
                });
            }
            *back = Some(item);
            return Ok(false);
        }
        *count += 1;
        Ok(*count < self.max_items && out.len() < self.easy)
    }
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
        // The first item is always tried: alone past `limit`, it is an error.
        while (count as usize) < self.max_items && (count == 0 || self.len.get() < easy) {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// An `f64` that takes serde's path: the same bytes in both formats.
    #[derive(Serialize, Debug, Clone, Copy, PartialEq)]
    struct Boxed(f64);

    fn run<A: Serialize + Clone>(
        held: &[A],
        items: &[A],
        max_items: usize,
        target: usize,
        limit: usize,
    ) -> (Result<u32>, Vec<u8>, usize) {
        let mut held: VecDeque<A> = held.iter().cloned().collect();
        let mut items = items.iter().cloned();
        let mut out = vec![7];
        let encoded = encode_seq_from(
            &mut held,
            items.by_ref(),
            max_items,
            target,
            limit,
            &mut out,
        );
        let back = encoded
            .as_ref()
            .map_or(0, |encoded| usize::from(encoded.back.is_some()));
        let left = back + held.len() + items.count();
        (encoded.map(|encoded| encoded.count), out, left)
    }

    proptest! {
        #[test]
        fn plain_items_encode_as_serde_does(
            held in prop::collection::vec(any::<f64>(), 0..5),
            items in prop::collection::vec(any::<f64>(), 0..40),
            max_items in 0usize..50,
            target in 1usize..400,
            limit in 0usize..400,
        ) {
            let boxed = |v: &[f64]| v.iter().map(|&x| Boxed(x)).collect::<Vec<_>>();
            let plain = run(&held, &items, max_items, target, limit);
            let serde = run(&boxed(&held), &boxed(&items), max_items, target, limit);
            prop_assert_eq!(format!("{:?}", plain.0), format!("{:?}", serde.0));
            // After an error the caller drops the block: only the items count.
            if plain.0.is_ok() {
                prop_assert_eq!(&plain.1, &serde.1);
            }
            prop_assert_eq!(plain.2, serde.2);
        }
    }

    /// An `f32` or an `f64`, as itself (plain) or inside a newtype (serde's
    /// path): items of two sizes.
    #[derive(Clone, Debug)]
    struct Sized2(bool, f64, bool);

    impl Serialize for Sized2 {
        fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            match (self.0, self.2) {
                (true, false) => s.serialize_f32(self.1 as f32),
                (false, false) => s.serialize_f64(self.1),
                (true, true) => s.serialize_newtype_struct("Boxed", &(self.1 as f32)),
                (false, true) => s.serialize_newtype_struct("Boxed", &self.1),
            }
        }
    }

    proptest! {
        #[test]
        fn items_of_two_sizes_encode_as_serde_does(
            items in prop::collection::vec((any::<bool>(), -1e6..1e6f64), 1..60),
            max_items in 0usize..80,
            target in 1usize..300,
            limit in 0usize..300,
        ) {
            let plain: Vec<_> = items.iter().map(|&(small, x)| Sized2(small, x, false)).collect();
            let boxed: Vec<_> = items.iter().map(|&(small, x)| Sized2(small, x, true)).collect();
            let plain = run(&[], &plain, max_items, target, limit);
            let serde = run(&[], &boxed, max_items, target, limit);
            prop_assert_eq!(format!("{:?}", plain.0), format!("{:?}", serde.0));
            if plain.0.is_ok() {
                prop_assert_eq!(&plain.1, &serde.1);
            }
            prop_assert_eq!(plain.2, serde.2);
        }
    }

    /// Serializes as an `f64` or as a string: a plain sequence ends at the
    /// first string, which starts the next one.
    #[derive(Clone)]
    enum Mixed {
        Number(f64),
        Text(&'static str),
    }

    impl Serialize for Mixed {
        fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            match self {
                Mixed::Number(x) => s.serialize_f64(*x),
                Mixed::Text(text) => s.serialize_str(text),
            }
        }
    }

    #[test]
    fn an_item_that_is_not_plain_ends_the_sequence_and_comes_back() {
        let items = [Mixed::Number(1.0), Mixed::Number(2.0), Mixed::Text("x")];
        let mut held = VecDeque::new();
        let mut iter = items.iter().cloned();
        let mut out = Vec::new();
        let encoded =
            encode_seq_from(&mut held, iter.by_ref(), 10, 1 << 10, 1 << 10, &mut out).unwrap();
        assert_eq!(encoded.count, 2);
        assert!(matches!(encoded.back, Some(Mixed::Text("x"))));
        assert_eq!(out, super::super::encode_value(&vec![1.0f64, 2.0]).unwrap());
    }
}
