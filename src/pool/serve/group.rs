//! A group's items answered ([`proto::GROUP`]): each as its own frame
//! would run it, in order, runs of their answers in `ANSWERS` frames.

use std::io;
use std::time::Instant;

use super::{failed, Worker};
use crate::error::{Error, WireError};
use crate::pool::protocol::{self as proto, Fields};

/// Answers to a group's items go in one `ANSWERS` frame until it holds this
/// many bytes; then in the next.
const ANSWERS_BYTES: usize = 64 << 10;

/// An `ANSWERS` frame being written: where it starts, and its answers.
struct Run {
    frame: usize,
    count: u32,
}

impl Run {
    /// Header bytes before the answers: length, tag, task, elapsed, count.
    const HEAD: usize = proto::LEN_BYTES + 1 + 8 + 8 + 4;

    fn open(out: &mut Vec<u8>, task: u64) -> Run {
        let frame = proto::start_frame(out, proto::ANSWERS);
        out.extend_from_slice(&task.to_le_bytes());
        out.extend_from_slice(&[0; 12]);
        Run { frame, count: 0 }
    }

    fn bytes(&self, out: &[u8]) -> usize {
        out.len() - self.frame
    }

    /// Finishes the frame with the time since `started`, or drops it if it
    /// answers nothing; returns when the clock was read.
    fn close(self, out: &mut Vec<u8>, started: Instant) -> Instant {
        let ended = Instant::now();
        if self.count == 0 {
            out.truncate(self.frame);
            return ended;
        }
        let elapsed = ended.saturating_duration_since(started).as_nanos() as u64;
        let at = self.frame + proto::LEN_BYTES + 1 + 8;
        out[at..at + 8].copy_from_slice(&elapsed.to_le_bytes());
        out[at + 8..at + 12].copy_from_slice(&self.count.to_le_bytes());
        proto::finish_frame(out, self.frame);
        ended
    }
}

impl Worker {
    /// Answers a group's items ([`proto::GROUP`]), each on its own and in
    /// order: runs of them in `ANSWERS` frames, with one clock read a
    /// frame, and a `FAILED` frame for an item that fails, as its own
    /// frame would have. Item bytes that do not add up break the protocol.
    pub(super) fn group(&mut self, mut fields: Fields<'_>, out: &mut Vec<u8>) -> io::Result<()> {
        let task = fields.u64().map_err(proto::invalid)?;
        let id = fields.u64().map_err(proto::invalid)?;
        let seq = fields.u8().map_err(proto::invalid)? != 0;
        let count = fields.u32().map_err(proto::invalid)?;
        // Each item takes at least its 4-byte length.
        if count as usize > fields.0.len() / 4 {
            return Err(proto::invalid(format!(
                "a group of {count} items in {} bytes",
                fields.0.len()
            )));
        }
        let limits = self.limits;
        let max = limits.get_max_bytes();
        let mut started = self.last_end.take().unwrap_or_else(Instant::now);
        let function = self.loaded(id);
        let mut run = Run::open(out, task);
        let first = task;
        // Wrapping: task ids are the parent's counter, but a frame is input.
        for task in (0..u64::from(count)).map(|index| first.wrapping_add(index)) {
            let item = fields.sized().map_err(proto::invalid)?;
            if run.bytes(out) >= ANSWERS_BYTES {
                started = run.close(out, started);
                run = Run::open(out, task);
            }
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            let answered = match &function {
                Ok(function) if seq => function
                    .call_batch(item, &limits, out)
                    .map_err(WireError::from),
                Ok(function) => one_item(item)
                    .and_then(|item| function.call_each(&[item], &limits, out))
                    .map_err(WireError::from),
                Err(error) => Err(error.clone()),
            };
            let len = out.len() - at - 4;
            let refused = match answered {
                Err(error) => Some(error),
                // As a frame of its own: refused here rather than past the parent's limit.
                Ok(()) if len > max => Some(WireError::from(&Error::TooLarge {
                    len: len as u64,
                    limit: max,
                })),
                Ok(()) => None,
            };
            if let Some(error) = refused {
                out.truncate(at);
                started = run.close(out, started);
                failed(task, &error, out)?;
                run = Run::open(out, task.wrapping_add(1));
                continue;
            }
            out[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
            if run.count > 0 && run.bytes(out) - Run::HEAD > max {
                // Past what the parent reads in one frame: the answer starts the next.
                let answer = out.split_off(at);
                started = run.close(out, started);
                run = Run::open(out, task);
                out.extend_from_slice(&answer);
            }
            run.count += 1;
        }
        if !fields.0.is_empty() {
            return Err(proto::invalid("bytes left over after a group's items"));
        }
        self.last_end = Some(run.close(out, started));
        Ok(())
    }
}

/// The one item of an items block of one.
fn one_item(block: &[u8]) -> std::result::Result<&[u8], Error> {
    let mut fields = Fields(block);
    let count = fields.u32()?;
    let item = fields.sized()?;
    if count != 1 || !fields.0.is_empty() {
        return Err(Error::decode("a group's item is not an items block of one"));
    }
    Ok(item)
}
