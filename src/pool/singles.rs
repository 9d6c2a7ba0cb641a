//! Items of a map sent one per message, grouped into one job: each item is
//! still its own frame, its own task, its own error, timeout and retry, but
//! the parent queues, tracks and hands over a group at a time. A job per item
//! cost the parent ~1,800 instructions an item (the queue, a slot wake-up,
//! the link's window, a lock of the map's inbox and a decode each).
//!
//! The worker sees a batch of one per item: one `GROUP_ITEM` (or
//! `GROUP_ITEM_SEQ`) frame each, read as `BATCH` (`BATCH_SEQ`) is and
//! answered one `DONE` or `FAILED` frame each, in order, but whose time may
//! come in a later item's answer (the group's times are added up). The
//! link's reader records each answer here and moves on to the next item;
//! the group reaches the map once all its items are answered. When the
//! worker dies, the items answered stay answered. Which unanswered item it
//! was running is not known (it holds answers back), so its groups turn
//! [`suspect`](Singles::suspect) and go to another worker, where the next
//! death is charged to one item alone: retried, or failed on its own.

use std::sync::Arc;

use super::entry::FnEntry;
use super::protocol as proto;
use crate::error::{Error, Result};

/// Items in one group, at most; a group also takes no more than about 2 ms
/// of a worker's time, and a quarter of a worker's share of the input
/// (`Feed::timed_size`), so that a slow stretch of items is not bunched on
/// one worker. At 256, the map kept ~1,000 fast items ahead of each worker
/// (`ITEMS_AHEAD`), ~150 µs of work, and each of the 2 cores idled about a
/// third of the time waiting on the other side's wake-ups: 4096 took one
/// item per message from 6.5–9.0M to 11.2–14.4M tasks/s (100,000 `f64`s,
/// 2 workers, alternated), with ~2 ms of work ahead instead.
pub(crate) const MAX_GROUP: usize = 4096;

/// A group of items, each sent in its own frame, and the answers so far.
pub(crate) struct Singles {
    pub(crate) function: Arc<FnEntry>,
    /// Each item's frame, back to back, written once by the map's thread:
    /// a slot copies them in one go and sets their task ids.
    frames: Vec<u8>,
    /// Where each item's frame ends in `frames`.
    ends: Vec<u32>,
    /// Items answered, in order: the next to send and to be answered.
    answered: u32,
    answers: Answers,
    /// Worker time of the items answered, from their `DONE` frames.
    elapsed_ns: u64,
    /// `DONE` answers not yet added to the pool's count of tasks: added a
    /// group at a time (an atomic add per item, shared by the links'
    /// readers, cost a tenth of the throughput at one item per message).
    pub(crate) uncounted: u32,
    /// Whether its items go as `GROUP_ITEM` frames, whose answers a worker
    /// may hold back until a later item's: not when a timeout applies, so
    /// that an answer never waits behind a later item that runs long.
    hold: bool,
    /// A worker died while it had items of this group, and which one it
    /// was running is not known: a worker holds its answers back for up to
    /// a millisecond, so those it had finished may be lost with it. Each
    /// item is then sent after a [`FLUSH`](super::protocol::FLUSH), so that
    /// the next death is the item's it was running, and charged to it.
    pub(crate) suspect: bool,
}

/// Where a frame's task id is: after its length and tag.
const TASK_AT: usize = proto::LEN_BYTES + 1;

fn write_flush(out: &mut Vec<u8>) {
    let frame = proto::start_frame(out, proto::FLUSH);
    proto::finish_frame(out, frame);
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
    /// A group of up to `items` items, whose frames take about `bytes_hint`
    /// bytes; `hold`: no timeout applies to them (see [`Singles::hold`]).
    pub(crate) fn new(function: Arc<FnEntry>, items: usize, bytes_hint: usize, hold: bool) -> Self {
        let answer_bytes = usize::try_from(function.answer_bytes()).unwrap_or(0);
        Singles {
            function,
            frames: Vec::with_capacity(bytes_hint),
            ends: Vec::with_capacity(items),
            answered: 0,
            answers: Answers {
                payloads: Vec::with_capacity(items * (4 + answer_bytes)),
                errors: Vec::new(),
                count: 0,
            },
            elapsed_ns: 0,
            uncounted: 0,
            hold,
            suspect: false,
        }
    }

    /// Adds an item: its frame, whose items block of one `write` appends.
    /// On an error, the group is as it was.
    pub(crate) fn push_with(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let tag = match (self.hold, self.function.batches) {
            (true, true) => proto::GROUP_ITEM_SEQ,
            (true, false) => proto::GROUP_ITEM,
            (false, true) => proto::BATCH_SEQ,
            (false, false) => proto::BATCH,
        };
        let frame = proto::start_frame(&mut self.frames, tag);
        // The task id, set when a slot sends it; then the function's.
        self.frames.extend_from_slice(&[0; 8]);
        self.frames
            .extend_from_slice(&self.function.id.to_le_bytes());
        if let Err(error) = write(&mut self.frames) {
            self.frames.truncate(frame);
            return Err(error);
        }
        proto::finish_frame(&mut self.frames, frame);
        self.ends.push(self.frames.len() as u32);
        Ok(())
    }

    /// Items in the group.
    pub(crate) fn len(&self) -> u32 {
        self.ends.len() as u32
    }

    /// Bytes of the items' frames.
    pub(crate) fn bytes(&self) -> usize {
        self.frames.len()
    }

    /// Items not yet answered: those a worker is sent.
    pub(crate) fn left(&self) -> u32 {
        self.len() - self.answered
    }

    /// Where the frame of item `index` starts.
    fn start(&self, index: u32) -> usize {
        match index.checked_sub(1) {
            Some(before) => self.ends[before as usize] as usize,
            None => 0,
        }
    }

    /// Appends the frames of the items not yet answered, the first with
    /// task id `task`, each next one with the next id; with `flush`, each
    /// between two `FLUSH` frames.
    ///
    /// The last item goes as a plain `BATCH` (`BATCH_SEQ`), at which a
    /// worker always reads its clock: the time of a group's items is
    /// answered within the group, whatever follows it.
    pub(crate) fn write_frames(&self, task: u64, flush: bool, out: &mut Vec<u8>) {
        let first = self.start(self.answered);
        if !flush {
            let at = out.len();
            out.extend_from_slice(&self.frames[first..]);
            for (index, task) in (self.answered..self.len()).zip(task..) {
                let id = at + self.start(index) - first + TASK_AT;
                out[id..id + 8].copy_from_slice(&task.to_le_bytes());
            }
            if self.left() > 0 {
                let last = self.len() - 1;
                out[at + self.start(last) - first + proto::LEN_BYTES] = if self.function.batches {
                    proto::BATCH_SEQ
                } else {
                    proto::BATCH
                };
            }
            return;
        }
        for (index, task) in (self.answered..self.len()).zip(task..) {
            write_flush(out);
            let at = out.len();
            out.extend_from_slice(
                &self.frames[self.start(index)..self.ends[index as usize] as usize],
            );
            out[at + TASK_AT..at + TASK_AT + 8].copy_from_slice(&task.to_le_bytes());
        }
        write_flush(out);
    }

    /// The next item's `DONE` answer.
    pub(crate) fn answer(&mut self, payload: &[u8], elapsed_ns: u64) {
        let answers = &mut self.answers.payloads;
        answers.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        answers.extend_from_slice(payload);
        self.elapsed_ns = self.elapsed_ns.saturating_add(elapsed_ns);
        self.answered += 1;
        self.uncounted += 1;
    }

    /// The next item fails on its own.
    pub(crate) fn fail_next(&mut self, error: Error) {
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
    #[inline]
    pub(crate) fn for_each(self, mut each: impl FnMut(u32, Result<&[u8]>)) {
        let mut errors = self.errors.into_iter();
        // Errors are rare: one compare an item until the next.
        let mut next_error = errors.next();
        let mut rest = self.payloads.as_slice();
        for index in 0..self.count {
            if next_error.as_ref().is_some_and(|(at, _)| *at == index) {
                let (_, error) = next_error.take().expect("looked at above");
                next_error = errors.next();
                each(index, Err(error));
                continue;
            }
            match next_payload(&mut rest) {
                Some(payload) => each(index, Ok(payload)),
                None => each(index, Err(Error::decode("a group of items lost an answer"))),
            }
        }
    }
}

/// The next `[len u32][payload]` off `rest`: written by `Singles::answer`,
/// never read off a socket.
#[inline]
fn next_payload<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, after) = rest.split_first_chunk::<4>()?;
    let (payload, after) = after.split_at_checked(u32::from_le_bytes(*len) as usize)?;
    *rest = after;
    Some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(items: &[&[u8]]) -> Singles {
        let function = FnEntry::new(9, "group", (Vec::new(), 0), false, false);
        let mut singles = Singles::new(Arc::new(function), items.len(), 0, true);
        for item in items {
            singles
                .push_with(|out| {
                    out.extend_from_slice(item);
                    Ok(())
                })
                .unwrap();
        }
        singles
    }

    /// The frames `write_frames` writes, as (tag, task, function id, block).
    fn sent(singles: &Singles, task: u64, flush: bool) -> Vec<(u8, u64, u64, Vec<u8>)> {
        let mut out = vec![0xAA]; // frames go after what is there
        singles.write_frames(task, flush, &mut out);
        let mut frames = Vec::new();
        let mut rest = &out[1..];
        while !rest.is_empty() {
            let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            let (frame, after) = rest[4..].split_at(len);
            rest = after;
            if frame[0] == proto::FLUSH {
                frames.push((frame[0], 0, 0, Vec::new()));
                continue;
            }
            let mut fields = proto::Fields(&frame[1..]);
            let (task, id) = (fields.u64().unwrap(), fields.u64().unwrap());
            frames.push((frame[0], task, id, fields.rest().to_vec()));
        }
        frames
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
    fn only_the_unanswered_items_are_sent_again_each_with_its_own_task() {
        let mut singles = group(&[b"a", b"", b"ccc", b"dd"]);
        let frame = |task, block: &[u8]| (proto::GROUP_ITEM, task, 9, block.to_vec());
        // The last a plain batch: a worker reads its clock there.
        let last = |task, block: &[u8]| (proto::BATCH, task, 9, block.to_vec());
        assert_eq!(
            sent(&singles, 100, false),
            [
                frame(100, b"a"),
                frame(101, b""),
                frame(102, b"ccc"),
                last(103, b"dd")
            ]
        );
        singles.answer(b"A", 5);
        singles.fail_next(Error::decode("second"));
        assert_eq!(singles.left(), 2);
        assert_eq!(sent(&singles, 7, false), [frame(7, b"ccc"), last(8, b"dd")]);
        let flush = (proto::FLUSH, 0, 0, Vec::new());
        assert_eq!(
            sent(&singles, 7, true),
            [
                flush.clone(),
                frame(7, b"ccc"),
                flush.clone(),
                frame(8, b"dd"),
                flush
            ]
        );
        singles.answer(b"", 7);
        assert_eq!(singles.measured(), (12, 3, 1));
    }

    #[test]
    fn an_item_that_cannot_be_written_leaves_the_group_as_it_was() {
        let mut singles = group(&[b"one"]);
        let before = sent(&singles, 1, false);
        let error = singles.push_with(|out| {
            out.extend_from_slice(b"half");
            Err(Error::decode("no"))
        });
        assert!(error.is_err());
        assert_eq!((singles.len(), sent(&singles, 1, false)), (1, before));
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
        singles.answer(b"one", 1);
        singles.fail_next(Error::decode("found"));
        let each = answered(singles);
        assert_eq!(each[0], Ok(b"one".to_vec()));
        assert!(each[1].as_ref().unwrap_err().contains("found"));
        assert!(each[2].as_ref().unwrap_err().contains("unanswered"));
    }
}
