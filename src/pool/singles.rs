//! Items of a map sent one per message, grouped into one job: each item is
//! still its own frame, its own task, its own error, timeout and retry, but
//! the parent queues, tracks and hands over a group at a time. A job per item
//! cost the parent ~1,800 instructions an item (the queue, a slot wake-up,
//! the link's window, a lock of the map's inbox and a decode each).
//!
//! The worker sees nothing new: one `BATCH` (or `BATCH_SEQ`) frame of one
//! item per item, answered one `DONE` or `FAILED` frame each, in order. The
//! link's reader records each answer here and moves on to the next item;
//! the group reaches the map once all its items are answered. When the
//! worker dies, the items answered stay answered, the one it was running is
//! retried or fails on its own, and the rest go to another worker.

use std::sync::Arc;

use super::job::FnEntry;
use crate::error::{Error, Result};

/// Items in one group, at most: a worker's share of a window, so that a
/// slow stretch of items is not bunched on one worker.
pub(crate) const MAX_GROUP: usize = 256;

/// A group of items, each sent in its own frame, and the answers so far.
pub(crate) struct Singles {
    pub(crate) function: Arc<FnEntry>,
    /// Each item's block (an items block of one), back to back.
    items: Vec<u8>,
    /// Where each item's block ends in `items`.
    ends: Vec<u32>,
    /// Items answered, in order: the next to send and to be answered.
    answered: u32,
    answers: Answers,
    /// Worker time of the items answered, from their `DONE` frames.
    elapsed_ns: u64,
    /// A worker died while it had items of this group, and which one it
    /// was running is not known: a worker holds its answers back for up to
    /// a millisecond, so those it had finished may be lost with it. Each
    /// item is then sent after a [`FLUSH`](super::protocol::FLUSH), so that
    /// the next death is the item's it was running, and charged to it.
    pub(crate) suspect: bool,
}

/// A group's answers, for the map to decode.
pub(crate) struct Answers {
    /// The `DONE` payload of each item that has one, as `[len u32][payload]`.
    pub(crate) payloads: Vec<u8>,
    /// The items that failed on their own, by index, increasing.
    pub(crate) errors: Vec<(u32, Error)>,
    /// Items in the group.
    pub(crate) count: u32,
}

impl Singles {
    pub(crate) fn new(function: Arc<FnEntry>, bytes_hint: usize) -> Self {
        Singles {
            function,
            items: Vec::with_capacity(bytes_hint),
            ends: Vec::new(),
            answered: 0,
            answers: Answers {
                payloads: Vec::new(),
                errors: Vec::new(),
                count: 0,
            },
            elapsed_ns: 0,
            suspect: false,
        }
    }

    /// Adds an item, given as its items block of one.
    pub(crate) fn push(&mut self, block: &[u8]) {
        self.items.extend_from_slice(block);
        self.ends.push(self.items.len() as u32);
    }

    /// Items in the group.
    pub(crate) fn len(&self) -> u32 {
        self.ends.len() as u32
    }

    /// Bytes of the items' blocks.
    pub(crate) fn bytes(&self) -> usize {
        self.items.len()
    }

    /// Items not yet answered: those a worker is sent.
    pub(crate) fn left(&self) -> u32 {
        self.len() - self.answered
    }

    /// The blocks of the items not yet answered, in order.
    pub(crate) fn unanswered(&self) -> impl Iterator<Item = &[u8]> {
        let first = self.answered as usize;
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .skip(first)
            .map(|(start, &end)| &self.items[start as usize..end as usize])
    }

    /// The next item's `DONE` answer.
    pub(crate) fn answer(&mut self, payload: &[u8], elapsed_ns: u64) {
        let answers = &mut self.answers.payloads;
        answers.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        answers.extend_from_slice(payload);
        self.elapsed_ns = self.elapsed_ns.saturating_add(elapsed_ns);
        self.answered += 1;
    }

    /// The next item fails on its own: the one a suspect group was
    /// looking for, so the items after it are sent as before.
    pub(crate) fn fail_next(&mut self, error: Error) {
        self.suspect = false;
        self.answers.errors.push((self.answered, error));
        self.answered += 1;
    }

    /// Every item not yet answered fails with a copy of `error`.
    pub(crate) fn fail_rest(&mut self, error: &Error) {
        while self.left() > 0 {
            self.fail_next(error.duplicate());
        }
    }

    /// Worker time and answer bytes of the items answered: for the
    /// function's estimates.
    pub(crate) fn measured(&self) -> (u64, u32, usize) {
        let returned = self.answered as usize - self.answers.errors.len();
        let bytes = self.answers.payloads.len() - 4 * returned;
        (self.elapsed_ns, self.answered, bytes)
    }

    /// The answers, once every item has one.
    pub(crate) fn into_answers(mut self) -> Answers {
        if self.left() > 0 {
            self.fail_rest(&Error::decode("a group of items ended unanswered"));
        }
        self.answers.count = self.len();
        self.answers
    }
}

impl Answers {
    /// Hands each item's answer to `each`, in order: its `DONE` payload, or its error.
    pub(crate) fn for_each(self, mut each: impl FnMut(u32, Result<&[u8]>)) {
        let mut errors = self.errors.into_iter().peekable();
        let mut rest = self.payloads.as_slice();
        for index in 0..self.count {
            if let Some((_, error)) = errors.next_if(|(failed, _)| *failed == index) {
                each(index, Err(error));
                continue;
            }
            // Written by `Singles::answer`, never read off a socket.
            let payload = rest.split_at_checked(4).and_then(|(len, after)| {
                let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
                after.split_at_checked(len)
            });
            match payload {
                Some((payload, after)) => {
                    rest = after;
                    each(index, Ok(payload));
                }
                None => each(index, Err(Error::decode("a group of items lost an answer"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(items: &[&[u8]]) -> Singles {
        let function = FnEntry::new(1, "group", (Vec::new(), 0), false, false);
        let mut singles = Singles::new(Arc::new(function), 0);
        for item in items {
            singles.push(item);
        }
        singles
    }

    fn answered(singles: Singles) -> Vec<std::result::Result<Vec<u8>, String>> {
        let mut each = Vec::new();
        singles.into_answers().for_each(|index, answer| {
            assert_eq!(index as usize, each.len());
            each.push(answer.map(<[u8]>::to_vec).map_err(|e| e.to_string()));
        });
        each
    }

    #[test]
    fn only_the_unanswered_items_are_sent_again() {
        let mut singles = group(&[b"a", b"", b"ccc", b"dd"]);
        assert_eq!(
            singles.unanswered().collect::<Vec<_>>(),
            [b"a".as_slice(), b"", b"ccc", b"dd"]
        );
        singles.answer(b"A", 5);
        singles.fail_next(Error::decode("second"));
        assert_eq!(singles.left(), 2);
        assert_eq!(
            singles.unanswered().collect::<Vec<_>>(),
            [b"ccc".as_slice(), b"dd"]
        );
        singles.answer(b"", 7);
        assert_eq!(singles.measured(), (12, 3, 1));
    }

    #[test]
    fn answers_and_errors_come_back_in_item_order() {
        let mut singles = group(&[b"1", b"2", b"3", b"4", b"5"]);
        singles.fail_next(Error::decode("first"));
        singles.answer(b"two", 1);
        singles.answer(b"", 1);
        singles.fail_next(Error::decode("fourth"));
        singles.answer(b"five", 1);
        let each = answered(singles);
        assert_eq!(each.len(), 5);
        assert!(each[0].as_ref().unwrap_err().contains("first"));
        assert_eq!(each[1], Ok(b"two".to_vec()));
        assert_eq!(each[2], Ok(Vec::new()));
        assert!(each[3].as_ref().unwrap_err().contains("fourth"));
        assert_eq!(each[4], Ok(b"five".to_vec()));
    }

    #[test]
    fn a_group_handed_over_early_fails_the_items_left() {
        let mut singles = group(&[b"1", b"2", b"3"]);
        singles.suspect = true;
        singles.answer(b"one", 1);
        singles.fail_next(Error::decode("found"));
        assert!(
            !singles.suspect,
            "the item a suspect group looked for was found"
        );
        let each = answered(singles);
        assert_eq!(each[0], Ok(b"one".to_vec()));
        assert!(each[1].as_ref().unwrap_err().contains("found"));
        assert!(each[2].as_ref().unwrap_err().contains("unanswered"));
    }
}
