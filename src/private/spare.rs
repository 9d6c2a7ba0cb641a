//! `Vec`s a thread's typed batches use again: the arguments and results of
//! one chunk, kept empty for the next of the same types. A chunk's fresh
//! `Vec`s (100 KB each at 12,500 `f64`s) came from memory the allocator had
//! given back to the system after the last one, and took a page fault per
//! 4 KiB: a worker's page faults were about half of a chunked map's time.

use std::any::{Any, TypeId};
use std::cell::RefCell;

/// A `Vec` larger than this is not kept: a large batch's memory goes back.
const MAX_KEPT_BYTES: usize = 4 << 20;

/// Element types kept, at most: one entry each.
const MAX_TYPES: usize = 16;

thread_local! {
    static SPARE: RefCell<Vec<(TypeId, Box<dyn Any>)>> = const { RefCell::new(Vec::new()) };
}

/// An empty `Vec<T>`, with the capacity of the last one [`keep`] kept.
pub(crate) fn take<T: 'static>() -> Vec<T> {
    SPARE
        .try_with(|spare| {
            spare
                .borrow_mut()
                .iter_mut()
                .find(|(id, _)| *id == TypeId::of::<T>())
                .and_then(|(_, kept)| kept.downcast_mut::<Vec<T>>())
                .map(std::mem::take)
        })
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keeps `vec`'s allocation, emptied, for the next [`take`] of a `Vec<T>`
/// on this thread, unless it is past [`MAX_KEPT_BYTES`].
pub(crate) fn keep<T: 'static>(mut vec: Vec<T>) {
    vec.clear();
    let bytes = vec.capacity().saturating_mul(size_of::<T>().max(1));
    if vec.capacity() == 0 || bytes > MAX_KEPT_BYTES {
        return;
    }
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        match spare.iter().position(|(id, _)| *id == TypeId::of::<T>()) {
            Some(at) => {
                if let Some(kept) = spare[at].1.downcast_mut::<Vec<T>>() {
                    *kept = vec;
                }
            }
            None if spare.len() < MAX_TYPES => spare.push((TypeId::of::<T>(), Box::new(vec))),
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
    fn a_vec_past_the_bound_is_not_kept() {
        let values: Vec<u8> = Vec::with_capacity(MAX_KEPT_BYTES + 1);
        keep(values);
        assert_eq!(take::<u8>().capacity(), 0);
    }
}
