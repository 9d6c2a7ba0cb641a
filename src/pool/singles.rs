//! Items of a map sent one per message, grouped into one job: each item is
//! still its own task, with its own error, timeout and retry, but the
//! parent queues, tracks and hands over a group at a time, and its items
//! travel together. A job per item cost the parent ~1,800 instructions an
//! item (the queue, a slot wake-up, the link's window, a lock of the map's
//! inbox and a decode each), and a frame per item ~750 on both sides.
//!
//! The worker gets a [`GROUP`](proto::GROUP) frame of items and runs each
//! as its own frame would run, as a batch of one; it answers them in order
//! in [`ANSWERS`](proto::ANSWERS) frames, each item's answer what its own
//! `DONE` frame would carry, with a `FAILED` frame for an item that fails
//! on its own. The link's reader records the answers here, and the group
//! reaches the map once all its items are answered. When the worker dies,
//! the items answered stay answered. Which unanswered item it was running
//! is not known (it answers a frame's items together), so its groups turn
//! [`suspect`](Singles::suspect) and go to another worker, an item per
//! frame, where the next death is charged to one item alone: retried, or
//! failed on its own.
//!
//! When a timeout applies, each item goes in a frame of its own and is
//! answered on its own, with its own time: the parent's clock on an item is
//! then its own.

use std::sync::Arc;

use super::entry::FnEntry;
use super::protocol::{self as proto, Fields};
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

/// Bytes of items in one `GROUP` frame, at most, unless one item is more:
/// a worker starts on a frame once it has all of it.
const GROUP_BYTES: usize = 64 << 10;

/// A group of items and the answers so far.
pub(crate) struct Singles {
    pub(crate) function: Arc<FnEntry>,
    /// Each item as `[len u32][block]`, back to back, written once by the
    /// map's thread; `block` is what the item's own frame carries after
    /// the function id.
    items: Vec<u8>,
    /// Where each item ends in `items`.
    ends: Vec<u32>,
    /// Items answered, in order: the next to send and to be answered.
    answered: u32,
    answers: Answers,
    /// Worker time of the items answered, from their answers.
    elapsed_ns: u64,
    /// Answers not yet added to the pool's count of tasks: added a group at
    /// a time (an atomic add per item, shared by the links' readers, cost a
    /// tenth of the throughput at one item per message).
    pub(crate) uncounted: u32,
    /// Whether its items go together in `GROUP` frames: not when a timeout
    /// applies (see the module's doc).
    grouped: bool,
    /// Items of a `GROUP` frame the worker reads at most: the pool's limit.
    frame_bytes: usize,
    /// A worker died while it had items of this group, and which one it
    /// was running is not known. Each item is then sent in a frame of its
    /// own, after a [`FLUSH`](super::protocol::FLUSH), so that the next
    /// death is the item's it was running, and charged to it.
    pub(crate) suspect: bool,
}

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

/// The fields of an `ANSWERS` frame after its task: the time, the number of
/// answers and the answers, checked to be exactly that many `[len u32][payload]`.
pub(crate) fn read_answers<'a>(mut fields: Fields<'a>) -> Result<(u64, u32, &'a [u8])> {
    let elapsed = fields.u64()?;
    let count = fields.u32()?;
    let answers = fields.0;
    let mut each = Fields(answers);
    for _ in 0..count {
        each.sized()?;
    }
    if count == 0 || !each.0.is_empty() {
        return Err(Error::decode(format!(
            "{count} answers in {} bytes",
            answers.len()
        )));
    }
    Ok((elapsed, count, answers))
}

impl Singles {
    /// A group of up to `items` items, whose blocks take about `bytes_hint`
    /// bytes; `grouped`: no timeout applies to them (see
    /// [`Singles::grouped`]); `limit`: the most bytes a worker reads in a frame.
    pub(crate) fn new(
        function: Arc<FnEntry>,
        items: usize,
        bytes_hint: usize,
        grouped: bool,
        limit: usize,
    ) -> Self {
        let answer_bytes = usize::try_from(function.answer_bytes()).unwrap_or(0);
        Singles {
            function,
            items: Vec::with_capacity(bytes_hint),
            ends: Vec::with_capacity(items),
            answered: 0,
            answers: Answers {
                payloads: Vec::with_capacity(items * (4 + answer_bytes)),
                errors: Vec::new(),
                count: 0,
            },
            elapsed_ns: 0,
            uncounted: 0,
            grouped,
            frame_bytes: GROUP_BYTES.min(limit),
            suspect: false,
        }
    }

    /// Adds an item: the block of one that `write` appends. On an error,
    /// the group is as it was.
    pub(crate) fn push_with(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let at = self.items.len();
        if let Err(error) = proto::put_item(&mut self.items, write) {
            self.items.truncate(at);
            return Err(error);
        }
        self.ends.push(self.items.len() as u32);
        Ok(())
    }

    /// Items in the group.
    pub(crate) fn len(&self) -> u32 {
        self.ends.len() as u32
    }

    /// Bytes of the items.
    pub(crate) fn bytes(&self) -> usize {
        self.items.len()
    }

    /// Items not yet answered: those a worker is sent.
    pub(crate) fn left(&self) -> u32 {
        self.len() - self.answered
    }

    /// Where item `index` starts in `items`.
    fn start(&self, index: u32) -> usize {
        match index.checked_sub(1) {
            Some(before) => self.ends[before as usize] as usize,
            None => 0,
        }
    }

    /// Appends the frames of the items not yet answered, the first with
    /// task id `task`, each next one with the next id: `GROUP` frames, or
    /// one frame each when a timeout applies, and between two `FLUSH`
    /// frames each when [`suspect`](Self::suspect).
    pub(crate) fn write_frames(&self, task: u64, out: &mut Vec<u8>) {
        if self.grouped && !self.suspect {
            self.write_groups(task, out);
        } else {
            self.write_each(task, out);
        }
    }

    fn write_groups(&self, mut task: u64, out: &mut Vec<u8>) {
        let mut first = self.answered;
        while first < self.len() {
            let start = self.start(first);
            let fitting = self.ends[first as usize..]
                .partition_point(|&end| end as usize - start <= self.frame_bytes);
            let count = fitting.max(1) as u32;
            let end = self.ends[(first + count - 1) as usize] as usize;
            let frame = proto::start_frame(out, proto::GROUP);
            out.extend_from_slice(&task.to_le_bytes());
            out.extend_from_slice(&self.function.id.to_le_bytes());
            out.push(u8::from(self.function.batches));
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&self.items[start..end]);
            proto::finish_frame(out, frame);
            first += count;
            task += u64::from(count);
        }
    }

    fn write_each(&self, task: u64, out: &mut Vec<u8>) {
        let tag = if self.function.batches {
            proto::BATCH_SEQ
        } else {
            proto::BATCH
        };
        for (index, task) in (self.answered..self.len()).zip(task..) {
            if self.suspect {
                write_flush(out);
            }
            let frame = proto::start_frame(out, tag);
            out.extend_from_slice(&task.to_le_bytes());
            out.extend_from_slice(&self.function.id.to_le_bytes());
            // The block, past its length.
            let block = self.start(index) + 4..self.ends[index as usize] as usize;
            out.extend_from_slice(&self.items[block]);
            proto::finish_frame(out, frame);
        }
        if self.suspect {
            write_flush(out);
        }
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

    /// The next `count` items' answers, as [`read_answers`] found them: at
    /// most [`left`](Self::left).
    pub(crate) fn answer_run(&mut self, elapsed_ns: u64, count: u32, answers: &[u8]) {
        debug_assert!(count <= self.left());
        self.answers.payloads.extend_from_slice(answers);
        self.elapsed_ns = self.elapsed_ns.saturating_add(elapsed_ns);
        self.answered += count;
        self.uncounted += count;
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

    fn group_with(items: &[&[u8]], grouped: bool, limit: usize) -> Singles {
        let function = FnEntry::new(9, "group", (Vec::new(), 0), false, false);
        let mut singles = Singles::new(Arc::new(function), items.len(), 0, grouped, limit);
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

    fn group(items: &[&[u8]]) -> Singles {
        group_with(items, true, usize::MAX)
    }

    /// A frame as `write_frames` writes it: (tag, task, function id, its
    /// items' blocks).
    type Sent = (u8, u64, u64, Vec<Vec<u8>>);

    fn sent(singles: &Singles, task: u64) -> Vec<Sent> {
        let mut out = vec![0xAA]; // frames go after what is there
        singles.write_frames(task, &mut out);
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
            let mut fields = Fields(&frame[1..]);
            let (task, id) = (fields.u64().unwrap(), fields.u64().unwrap());
            let blocks = if frame[0] == proto::GROUP {
                assert_eq!(fields.u8().unwrap(), 0, "not a function that batches");
                let count = fields.u32().unwrap();
                let blocks = (0..count)
                    .map(|_| fields.sized().unwrap().to_vec())
                    .collect();
                assert!(fields.0.is_empty());
                blocks
            } else {
                vec![fields.rest().to_vec()]
            };
            frames.push((frame[0], task, id, blocks));
        }
        frames
    }

    fn blocks(items: &[&[u8]]) -> Vec<Vec<u8>> {
        items.iter().map(|item| item.to_vec()).collect()
    }

    /// `[len u32][payload]` each.
    fn answers(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for payload in payloads {
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(payload);
        }
        out
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
        let all = blocks(&[b"a", b"", b"ccc", b"dd"]);
        assert_eq!(sent(&singles, 100), [(proto::GROUP, 100, 9, all)]);
        singles.answer_run(5, 1, &answers(&[b"A"]));
        singles.fail_next(Error::decode("second"));
        assert_eq!(singles.left(), 2);
        let rest = blocks(&[b"ccc", b"dd"]);
        assert_eq!(sent(&singles, 7), [(proto::GROUP, 7, 9, rest)]);
        // Suspect: an item a frame, each between two flushes.
        singles.suspect = true;
        let flush = (proto::FLUSH, 0, 0, Vec::new());
        assert_eq!(
            sent(&singles, 7),
            [
                flush.clone(),
                (proto::BATCH, 7, 9, blocks(&[b"ccc"])),
                flush.clone(),
                (proto::BATCH, 8, 9, blocks(&[b"dd"])),
                flush
            ]
        );
        singles.answer(b"", 7);
        assert_eq!(singles.measured(), (12, 3, 1));
    }

    #[test]
    fn under_a_timeout_each_item_goes_in_a_frame_of_its_own() {
        let singles = group_with(&[b"a", b"bb"], false, usize::MAX);
        assert_eq!(
            sent(&singles, 3),
            [
                (proto::BATCH, 3, 9, blocks(&[b"a"])),
                (proto::BATCH, 4, 9, blocks(&[b"bb"]))
            ]
        );
    }

    #[test]
    fn a_group_frame_stays_within_the_limit_unless_one_item_is_more() {
        // Items of 4 + 3 bytes, a limit of 14: two a frame; 4 + 20 alone.
        let big = [7u8; 20];
        let singles = group_with(&[b"one", b"two", b"thr", &big, b"fiv"], true, 14);
        assert_eq!(
            sent(&singles, 10),
            [
                (proto::GROUP, 10, 9, blocks(&[b"one", b"two"])),
                (proto::GROUP, 12, 9, blocks(&[b"thr"])),
                (proto::GROUP, 13, 9, blocks(&[&big])),
                (proto::GROUP, 14, 9, blocks(&[b"fiv"]))
            ]
        );
    }

    #[test]
    fn answers_are_read_only_when_exactly_as_many_as_claimed() {
        let two = answers(&[b"x", b"yy"]);
        let body = |count: u32, answers: &[u8]| {
            let mut body = 55u64.to_le_bytes().to_vec();
            body.extend_from_slice(&count.to_le_bytes());
            body.extend_from_slice(answers);
            body
        };
        let read = |body: &[u8]| read_answers(Fields(body)).map(|(e, c, a)| (e, c, a.to_vec()));
        assert_eq!(read(&body(2, &two)).unwrap(), (55, 2, two.clone()));
        for (count, bytes) in [(0, &[][..]), (1, &two[..]), (3, &two[..]), (2, &two[..6])] {
            assert!(read(&body(count, bytes)).is_err(), "{count} in {bytes:?}");
        }
        assert!(read(&55u64.to_le_bytes()).is_err(), "no count");
    }

    #[test]
    fn an_item_that_cannot_be_written_leaves_the_group_as_it_was() {
        let mut singles = group(&[b"one"]);
        let before = sent(&singles, 1);
        let error = singles.push_with(|out| {
            out.extend_from_slice(b"half");
            Err(Error::decode("no"))
        });
        assert!(error.is_err());
        assert_eq!((singles.len(), sent(&singles, 1)), (1, before));
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
