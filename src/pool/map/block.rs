//! Items encoded into the block a chunk's frame carries.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use super::super::protocol as proto;
use crate::codec;
use crate::error::{Error, Result};
use crate::sync::lock;

/// Encodes up to `max_items` items, from `held` first, then `items`; stops
/// past `target` bytes. With `seq`, as one codec sequence (for functions that
/// run batches in one typed pass), else as a protocol items block. Returns
/// the bytes and the item count.
///
/// A block never exceeds `limit` bytes (the workers' decode limit): an item
/// that does not fit ends the block and is held back for the next one.
///
/// # Errors
/// Only for the first item taken, which is then used up: [`Error::Encode`],
/// or [`Error::TooLarge`] if it alone exceeds `limit`.
pub(crate) fn items_block<A: Serialize>(
    items: &mut impl Iterator<Item = A>,
    held: &mut VecDeque<A>,
    max_items: usize,
    target: usize,
    limit: usize,
    seq: bool,
) -> Result<(Vec<u8>, u32)> {
    let mut block = Vec::new();
    let count = items_block_into(items, held, max_items, target, limit, seq, &mut block)?;
    Ok((block, count))
}

/// [`items_block`] into `block`, which must be empty: a map reuses one.
pub(super) fn items_block_into<A: Serialize>(
    items: &mut impl Iterator<Item = A>,
    held: &mut VecDeque<A>,
    max_items: usize,
    target: usize,
    limit: usize,
    seq: bool,
    block: &mut Vec<u8>,
) -> Result<u32> {
    let mut next = || held.pop_front().or_else(|| items.next());
    let too_large = |len: usize| Error::TooLarge {
        len: len as u64,
        limit,
    };
    if seq && max_items == 1 {
        // One item (`call`, `submit`, `chunk_size(1)`): a sequence of one,
        // encoded in place, without a probe encode or a `Vec` of the item.
        let Some(item) = next() else {
            codec::encode_len_into(0, block)?;
            return Ok(0);
        };
        block.reserve(16);
        one_item_block(&item, true, limit, block)?;
        return Ok(1);
    }
    if seq {
        let encoded =
            codec::encode_seq_from(held, items.by_ref(), max_items, target, limit, block)?;
        if let Some(item) = encoded.back {
            held.push_front(item);
        }
        return Ok(encoded.count);
    }
    block.extend_from_slice(&[0; 4]);
    let mut count = 0u32;
    while (count as usize) < max_items {
        let Some(item) = next() else { break };
        let start = block.len();
        let put = proto::put_item(block, |block| codec::encode_value_into(&item, block));
        let len = block.len() - start - 4;
        if put.is_ok() && (block.len() <= limit || (count == 0 && len <= limit)) {
            count += 1;
            if block.len() >= target {
                break;
            }
            continue;
        }
        if count == 0 {
            return Err(put.err().unwrap_or_else(|| too_large(len)));
        }
        block.truncate(start);
        held.push_front(item);
        break;
    }
    block[..4].copy_from_slice(&count.to_le_bytes());
    Ok(count)
}

/// Appends the items block of `item` alone (with `seq`, a codec sequence
/// of one), for a frame of its own: an item of a group
/// ([`singles`](super::super::singles)).
///
/// # Errors
/// [`Error::Encode`], or [`Error::TooLarge`] past `limit` bytes; `out`
/// may then hold part of the block.
pub(crate) fn one_item_block<A: Serialize>(
    item: &A,
    seq: bool,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    if seq {
        codec::encode_one_seq_into(item, out)?;
    } else {
        out.extend_from_slice(&1u32.to_le_bytes());
        proto::put_item(out, |out| codec::encode_value_into(item, out))?;
    }
    // As `items_block_into` measures an item alone: its block, or its bytes.
    let len = out.len() - start - if seq { 0 } else { 8 };
    if len > limit {
        return Err(Error::TooLarge {
            len: len as u64,
            limit,
        });
    }
    Ok(())
}

/// Items blocks of answered chunks, emptied, for the pool's next chunks: a
/// fresh block for each chunk was memory the allocator had given back to
/// the system, and took a page fault per 4 KiB as the map wrote it (a
/// tenth of a chunked map's page faults, with the workers' own).
#[derive(Default)]
pub(crate) struct SpareBlocks(Mutex<Vec<Vec<u8>>>);

/// Blocks kept, at most: about the chunks a pool has in flight.
const MAX_SPARE: usize = 16;
/// The memory kept, at most, all blocks together: a map of large chunks
/// does not leave the pool holding 16 of them.
const MAX_SPARE_BYTES: usize = 8 << 20;

impl SpareBlocks {
    /// Keeps `block`'s memory, unless that would keep more than
    /// [`MAX_SPARE`] blocks or [`MAX_SPARE_BYTES`].
    pub(crate) fn put(&self, mut block: Vec<u8>) {
        block.clear();
        let mut spare = lock(&self.0);
        let kept: usize = spare.iter().map(Vec::capacity).sum();
        if spare.len() < MAX_SPARE && kept + block.capacity() <= MAX_SPARE_BYTES {
            spare.push(block);
        }
    }

    /// An empty block with the memory of one kept, if any.
    pub(crate) fn take(&self) -> Option<Vec<u8>> {
        lock(&self.0).pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_blocks_stay_within_their_count_and_bytes() {
        let spare = SpareBlocks::default();
        for _ in 0..MAX_SPARE + 4 {
            spare.put(Vec::with_capacity(64));
        }
        let mut taken = Vec::new();
        while let Some(block) = spare.take() {
            assert!(block.is_empty() && block.capacity() >= 64);
            taken.push(block);
        }
        assert_eq!(taken.len(), MAX_SPARE);
        // Bytes: two blocks of over half the bound, one kept.
        spare.put(Vec::with_capacity(MAX_SPARE_BYTES / 2 + 1));
        spare.put(Vec::with_capacity(MAX_SPARE_BYTES / 2 + 1));
        assert!(spare.take().is_some());
        assert!(spare.take().is_none());
    }

    #[test]
    fn a_sequence_block_is_the_encoding_of_the_items_as_a_vec() {
        for n in [0usize, 1, 2, 300, 70_000] {
            let items: Vec<u64> = (0..n as u64).map(|i| i * 977).collect();
            let (block, count) = items_block(
                &mut items.iter(),
                &mut VecDeque::new(),
                n.max(2),
                usize::MAX,
                1 << 30,
                true,
            )
            .unwrap();
            assert_eq!(count as usize, n);
            assert_eq!(block, codec::encode_value(&items).unwrap());
        }
    }

    /// `item`'s block through `items_block` and through `one_item_block`.
    fn both_blocks<A: Serialize + Clone>(item: &A, seq: bool) -> (Vec<u8>, Vec<u8>) {
        let mut items = std::iter::once(item.clone());
        let (block, count) =
            items_block(&mut items, &mut VecDeque::new(), 1, 1 << 20, 1 << 20, seq).unwrap();
        assert_eq!(count, 1);
        let mut one = vec![7]; // appended after what is there
        one_item_block(item, seq, 1 << 20, &mut one).unwrap();
        (block, one[1..].to_vec())
    }

    #[test]
    fn a_block_of_one_is_what_items_block_writes_for_one_item() {
        for seq in [true, false] {
            let (block, one) = both_blocks(&2.5f64, seq);
            assert_eq!(block, one, "f64, seq {seq}");
            let (block, one) = both_blocks(&u8::MAX, seq);
            assert_eq!(block, one, "u8, seq {seq}");
            let (block, one) = both_blocks(&(3u64, String::from("not plain")), seq);
            assert_eq!(block, one, "a tuple, seq {seq}");
        }
    }

    #[test]
    fn a_block_of_one_past_the_limit_is_too_large() {
        let mut out = Vec::new();
        let error = one_item_block(&vec![1u8; 100], true, 50, &mut out).unwrap_err();
        assert!(
            matches!(error, Error::TooLarge { limit: 50, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn an_item_past_the_limit_is_held_back_for_the_next_block() {
        let items = vec![vec![1u8; 10], vec![2u8; 100], vec![3u8; 10]];
        let mut held = VecDeque::new();
        let mut input = items.into_iter();
        let (_, count) = items_block(&mut input, &mut held, 10, 1 << 20, 60, true).unwrap();
        assert_eq!((count, held.len()), (1, 1));
        let error = items_block(&mut input, &mut held, 10, 1 << 20, 60, true).unwrap_err();
        assert!(matches!(error, Error::TooLarge { .. }), "{error:?}");
        let (_, count) = items_block(&mut input, &mut held, 10, 1 << 20, 60, true).unwrap();
        assert_eq!((count, held.len()), (1, 0));
    }
}
