//! `Vec`s a thread's typed batches use again: the arguments and results of
//! one chunk, kept empty for the next of the same types. A chunk's fresh
//! `Vec`s (100 KB each at 12,500 `f64`s) came from memory the allocator had
//! given back to the system after the last one, and took a page fault per
//! 4 KiB: a worker's page faults were about half of a chunked map's time.

use std::any::{Any, TypeId};
use std::cell::RefCell;

/// The memory kept, at most, all types together: a large batch's memory
/// goes back.
const MAX_KEPT_BYTES: usize = 8 << 20;

/// Element types kept, at most: one entry each.
const MAX_TYPES: usize = 16;

/// The `Vec<T>` kept for one `T`, and the bytes it holds.
struct Entry {
    id: TypeId,
    bytes: usize,
    vec: Box<dyn Any>,
}

thread_local! {
    static SPARE: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// An empty `Vec<T>`, with the capacity of the last one [`keep`] kept.
pub(crate) fn take<T: 'static>() -> Vec<T> {
    SPARE
        .try_with(|spare| {
            let mut spare = spare.borrow_mut();
            let entry = spare
                .iter_mut()
                .find(|entry| entry.id == TypeId::of::<T>())?;
            entry.bytes = 0;
            entry.vec.downcast_mut::<Vec<T>>().map(std::mem::take)
        })
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keeps `vec`'s allocation, emptied, for the next [`take`] of a `Vec<T>`
/// on this thread, unless the thread would then keep more than
/// [`MAX_KEPT_BYTES`].
pub(crate) fn keep<T: 'static>(mut vec: Vec<T>) {
    vec.clear();
    let bytes = vec.capacity().saturating_mul(size_of::<T>());
    if bytes == 0 || bytes > MAX_KEPT_BYTES {
        return;
    }
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        // What the other types keep: this one's replaces its own.
        let others: usize = spare
            .iter()
            .filter(|entry| entry.id != TypeId::of::<T>())
            .map(|entry| entry.bytes)
            .sum();
        if others + bytes > MAX_KEPT_BYTES {
            return;
        }
        match spare.iter().position(|entry| entry.id == TypeId::of::<T>()) {
            Some(at) => {
                let entry = &mut spare[at];
                if let Some(kept) = entry.vec.downcast_mut::<Vec<T>>() {
                    *kept = vec;
                    entry.bytes = bytes;
                }
            }
            None if spare.len() < MAX_TYPES => spare.push(Entry {
                id: TypeId::of::<T>(),
                bytes,
                vec: Box::new(vec),
            }),
            None => {}
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_vec_comes_back_empty_with_its_room_for_its_type_only() {
        let mut values: Vec<u64> = take();
        values.extend(0..1000);
        let room = values.capacity();
        keep(values);
        assert_eq!(take::<u32>().capacity(), 0, "another type");
        let again: Vec<u64> = take();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), room);
        // Taken: the next take starts empty.
        assert_eq!(take::<u64>().capacity(), 0);
    }

    #[test]
    fn a_thread_keeps_no_more_than_its_bound_in_all() {
        keep::<u8>(Vec::with_capacity(MAX_KEPT_BYTES + 1));
        assert_eq!(take::<u8>().capacity(), 0, "one past the bound");
        keep::<u16>(Vec::with_capacity(MAX_KEPT_BYTES / 4));
        // Past the bound with the `u16`s: not kept; within it: kept.
        keep::<i8>(Vec::with_capacity(MAX_KEPT_BYTES / 2 + 1));
        assert_eq!(take::<i8>().capacity(), 0);
        keep::<i8>(Vec::with_capacity(MAX_KEPT_BYTES / 2));
        assert!(take::<i8>().capacity() >= MAX_KEPT_BYTES / 2);
        // A type's own `Vec` replaces the one it kept, whatever its size.
        keep::<u16>(Vec::with_capacity(MAX_KEPT_BYTES / 2));
        assert!(take::<u16>().capacity() >= MAX_KEPT_BYTES / 4);
    }
}
