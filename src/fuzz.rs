//! Not public API: entry points for the fuzz targets in `fuzz/`, into code
//! that is private to the crate. Anything here may change in any release.
//!
//! Each entry point runs the real code on the bytes given, in this process,
//! and checks what it can of the outcome, panicking when a check fails so
//! that the fuzzer reports it.

use serde::de::DeserializeOwned;

use crate::codec::Limits;
use crate::error::{Error, Result};
use crate::handle::DynFn;
use crate::pool::protocol::{self as proto, Fields, FrameReader, Next};
use crate::pool::serve::{frame_limit, Worker};
use crate::pool::singles::read_answers;
use crate::pool::{answer, link};

/// Frame tags, for building seeds.
pub mod tags {
    use crate::pool::protocol as proto;

    /// See the protocol module.
    pub const LOAD: u8 = proto::LOAD;
    /// See the protocol module.
    pub const BATCH: u8 = proto::BATCH;
    /// See the protocol module.
    pub const BATCH_MUT: u8 = proto::BATCH_MUT;
    /// See the protocol module.
    pub const ONCE: u8 = proto::ONCE;
    /// See the protocol module.
    pub const TAKE: u8 = proto::TAKE;
    /// See the protocol module.
    pub const FORGET: u8 = proto::FORGET;
    /// See the protocol module.
    pub const BATCH_SEQ: u8 = proto::BATCH_SEQ;
    /// See the protocol module.
    pub const ASYNC_BATCH: u8 = proto::ASYNC_BATCH;
    /// See the protocol module.
    pub const GROUP: u8 = proto::GROUP;
}

/// Both sides' limits here: the defaults but for size, so that a claimed
/// frame length costs a megabyte of buffer, not 64.
pub fn limits() -> Limits {
    Limits::new().max_bytes(1 << 20)
}

/// Answers past this many bytes end the loop: a fuzz input must stay cheap.
const MAX_OUTPUT: usize = 16 << 20;

/// The pid FAILED errors are attributed to.
const PID: u32 = 4242;

/// A frame: its length, `tag`, then `body`.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let start = proto::start_frame(&mut out, tag);
    out.extend_from_slice(body);
    proto::finish_frame(&mut out, start);
    out
}

/// An items block of these encoded items.
pub fn items(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = (items.len() as u32).to_le_bytes().to_vec();
    for item in items {
        proto::put_item::<()>(&mut out, |out| {
            out.extend_from_slice(item);
            Ok(())
        })
        .expect("infallible");
    }
    out
}

/// Feeds `input` to a worker's frame loop as if read from its socket, in
/// this process, until the input ends or a frame breaks the protocol (where
/// a real worker would exit); returns the answers written.
///
/// # Panics
/// If the answers are not one well-formed frame per task frame, in order,
/// each naming its task.
pub fn worker_frames(input: &[u8]) -> Vec<u8> {
    let limits = limits();
    let mut worker = Worker::new(limits);
    let mut reader = FrameReader::new(input, frame_limit(&limits));
    let mut out = Vec::new();
    let mut tasks = Vec::new();
    while out.len() < MAX_OUTPUT {
        let Ok(Next::Frame(tag, body)) = reader.next_frame() else {
            break;
        };
        let body = reader.body(body);
        let before = out.len();
        if worker.handle(tag, body, &mut out).is_err() {
            // The real loop drops what an erring frame wrote, and exits.
            out.truncate(before);
            break;
        }
        if out.len() > before {
            let mut fields = Fields(body);
            let task = fields.u64().expect("an answered frame names its task");
            let items = if tag == proto::GROUP {
                let _id = fields.u64();
                let _seq = fields.u8();
                fields.u32().expect("a group answered has its count")
            } else {
                1
            };
            tasks.push((tag, task, u64::from(items)));
        }
    }
    check_answers(&out, &tasks);
    out
}

/// Checks that `out` answers each `(tag, first task, items)` in order: a
/// group's items with `ANSWERS` and `FAILED` frames, any other task with one frame.
fn check_answers(mut out: &[u8], tasks: &[(u8, u64, u64)]) {
    for &(tag, task, items) in tasks {
        let mut answered = 0;
        while answered < items {
            let next = task.wrapping_add(answered);
            let len = u32::from_le_bytes(out[..4].try_into().expect("4 bytes")) as usize;
            let (answer, rest) = out[4..].split_at(len);
            out = rest;
            let mut fields = Fields(&answer[1..]);
            assert_eq!(fields.u64().ok(), Some(next), "the answers' tasks in order");
            answered += match (tag, answer[0]) {
                (proto::GROUP, proto::ANSWERS) => {
                    let (_, count, _) = read_answers(fields).expect("well-formed answers");
                    u64::from(count)
                }
                (proto::GROUP, proto::FAILED) => 1,
                (proto::GROUP, other) => panic!("answer tag {other:#04x} to a group"),
                (_, proto::DONE | proto::FAILED | proto::STATE) => 1,
                (_, other) => panic!("answer tag {other:#04x}"),
            };
        }
        assert_eq!(answered, items, "answers past the group's items");
    }
    assert!(out.is_empty(), "{} bytes of answers for no task", out.len());
}

/// Runs the parent's decoding of a worker's answers on `input`, read as
/// frames until one breaks the protocol (where the pool drops the worker):
/// a DONE payload as a chunk of `count` results of `R`, both batched and
/// item by item, and as one call's result; a FAILED payload as the error it
/// carries, also as a chunk's answer; a STATE payload as a function.
/// Returns every outcome, each error displayed to the end of its sources.
///
/// # Panics
/// If a chunk does not yield exactly `count` results, whatever the bytes:
/// the pool counts on it.
pub fn parent_answers<R: DeserializeOwned + 'static>(input: &[u8], count: u32) -> Vec<Result<R>> {
    let limits = limits();
    let mut reader = FrameReader::new(input, frame_limit(&limits));
    let mut outcomes = Vec::new();
    while let Ok(Next::Frame(tag, body)) = reader.next_frame() {
        let mut fields = Fields(reader.body(body));
        if fields.u64().is_err() {
            break;
        }
        let answer = match tag {
            proto::DONE => match fields.u64() {
                Ok(_elapsed) => Ok(fields.rest().to_vec()),
                Err(_) => break,
            },
            proto::FAILED => Err(link::failed_error(fields.rest(), &limits, PID)),
            proto::ANSWERS => {
                let Ok((_elapsed, _count, answers)) = read_answers(fields) else {
                    break;
                };
                let mut each = Fields(answers);
                while let Ok(payload) = each.sized() {
                    outcomes.push(answer::decode_one(payload.to_vec(), &limits));
                    outcomes.push(answer::decode_one_batched(payload.to_vec(), &limits));
                }
                continue;
            }
            proto::STATE => {
                if let Err(error) = limits.from_bytes::<DynFn>(fields.rest()) {
                    outcomes.push(Err(error));
                }
                continue;
            }
            _ => break,
        };
        if let Ok(payload) = &answer {
            outcomes.push(answer::decode_one(payload.clone(), &limits));
            outcomes.push(answer::decode_one_batched(payload.clone(), &limits));
        }
        for batched in [false, true] {
            let answer = answer.as_ref().map(Clone::clone).map_err(Error::duplicate);
            let results: Vec<Result<R>> =
                answer::decode_chunk(count, answer, &limits, batched).collect();
            assert_eq!(results.len(), count as usize, "batched: {batched}");
            outcomes.extend(results);
        }
    }
    for outcome in &outcomes {
        if let Err(error) = outcome {
            let mut source: Option<&dyn std::error::Error> = Some(error);
            while let Some(error) = source {
                let _ = error.to_string();
                source = error.source();
            }
        }
    }
    outcomes
}
