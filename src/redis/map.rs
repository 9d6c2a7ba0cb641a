//! The typed side of a map on the fleet: items become tasks, answers
//! become results, in input order or as they come.

use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::cancel::Canceller;
use super::job::{job_id, Job, MAX_TASK_BYTES};
use super::RedisExecutor;
use crate::codec::Limits;
use crate::error::{Error, Result};
use crate::handle::DynFn;
use crate::pool::answer::{self, decode_chunk, ChunkResults};
use crate::pool::map::items_block;

/// The typed side of a map: items become tasks, answers become results.
pub(crate) struct Feed<'e, A, R, I> {
    job: std::result::Result<Job, Error>,
    items: std::iter::Fuse<I>,
    /// Items taken but held back from a chunk they did not fit.
    held: VecDeque<A>,
    /// Decoded chunks by the index of their first item.
    ready: BTreeMap<u64, (u32, ChunkResults<R>)>,
    limits: Limits,
    /// Set when the broker failed: every item left gets a copy.
    failed: Option<Error>,
    input_done: bool,
    /// Set once every result was read and the job's keys deleted.
    finished: bool,
    types: PhantomData<fn(&'e RedisExecutor, A)>,
}

impl<'e, A, R, I> Feed<'e, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + 'static,
    I: Iterator<Item = A>,
{
    /// A map of `f` over `items`, each an argument of `f` or a reference to one.
    pub(crate) fn new(executor: &'e RedisExecutor, f: &DynFn, items: I) -> Self {
        Feed {
            job: Job::start(executor.shared(), f, job_id()),
            items: items.fuse(),
            held: VecDeque::new(),
            ready: BTreeMap::new(),
            limits: executor.shared().config.limits,
            failed: None,
            input_done: false,
            finished: false,
            types: PhantomData,
        }
    }

    fn rename(&mut self, name: &str) {
        if let Ok(job) = &mut self.job {
            if job.next_task == 0 {
                job.id = name.to_owned();
            }
        }
    }

    fn job_name(&self) -> Option<&str> {
        self.job.as_ref().ok().map(|job| job.id.as_str())
    }

    /// Sends tasks while there is room, then waits for answers once.
    /// Returns false when nothing is left to send or wait for.
    fn step(&mut self) -> bool {
        let job = match &mut self.job {
            Ok(job) => job,
            Err(_) => return false,
        };
        while !self.input_done && job.has_room() {
            let chunk = job.chunk_size();
            let limit = self.limits.get_max_bytes();
            let (items, held) = (&mut self.items, &mut self.held);
            let target = MAX_TASK_BYTES.min(limit);
            match items_block(items, held, chunk, target, limit, job.function.seq) {
                Ok((_, 0)) => self.input_done = true,
                Ok((block, count)) => {
                    if let Err(error) = job.send(block, count) {
                        // The chunk's items were taken from the input: they fail too.
                        let at = job.next_item;
                        job.next_item += u64::from(count);
                        let failed = ChunkResults::failed(error.duplicate(), count);
                        self.ready.insert(at, (count, failed));
                        self.fail(error);
                        return true;
                    }
                }
                Err(error) => {
                    // This item could not be encoded: it alone fails.
                    let at = job.next_item;
                    job.next_item += 1;
                    self.ready.insert(at, (1, ChunkResults::failed(error, 1)));
                    return true;
                }
            }
        }
        if job.waiting.is_empty() {
            if self.input_done && !self.finished {
                self.finished = true;
                job.finish();
            }
            return !self.ready.is_empty();
        }
        match job.receive() {
            Ok(answers) => {
                for answer in answers {
                    let results =
                        decode_chunk(answer.count, answer.output, &self.limits, answer.seq);
                    self.ready.insert(answer.first, (answer.count, results));
                }
            }
            Err(error) => self.fail(error),
        }
        true
    }

    /// The broker failed: the tasks waiting fail with `error`, and so does
    /// every item not yet sent.
    fn fail(&mut self, error: Error) {
        if let Ok(job) = &mut self.job {
            // Answers that came before the failure are still answers.
            for answer in std::mem::take(&mut job.answered) {
                let results = decode_chunk(answer.count, answer.output, &self.limits, answer.seq);
                self.ready.insert(answer.first, (answer.count, results));
            }
            for (_, waiting) in job.waiting.drain() {
                let failed = ChunkResults::failed(error.duplicate(), waiting.count);
                self.ready.insert(waiting.first, (waiting.count, failed));
            }
            // Workers skip what is left of it.
            job.cancel();
        }
        self.failed = Some(error);
    }

    /// The next item of input, failed with the broker's error.
    fn fail_next_input(&mut self) -> Option<(u64, Result<R>)> {
        let error = self
            .failed
            .as_ref()
            .or(self.job.as_ref().err())?
            .duplicate();
        self.items.next()?;
        let at = match &mut self.job {
            Ok(job) => {
                job.next_item += 1;
                job.next_item - 1
            }
            Err(_) => 0,
        };
        Some((at, Err(error)))
    }
}

/// Decodes a one-item answer, as [`Task`](crate::Task) asks.
pub(crate) fn decode_owned<R: DeserializeOwned + 'static>(
    payload: Vec<u8>,
    limits: &Limits,
) -> Result<R> {
    let (seq, output) = payload
        .split_first()
        .map_or((false, &[][..]), |(s, o)| (*s == 1, o));
    if seq {
        answer::decode_one_batched(output.to_vec(), limits)
    } else {
        answer::decode_one(output.to_vec(), limits)
    }
}

/// A one-task job run on a thread of its own, for [`Executor::submit`](crate::Executor::submit).
pub(crate) struct OwnedFeed {
    job: Result<Job>,
    block: Result<(Vec<u8>, u32)>,
}

impl<A, R, I> From<Feed<'_, A, R, I>> for OwnedFeed
where
    A: Serialize,
    R: DeserializeOwned + 'static,
    I: Iterator<Item = A>,
{
    fn from(mut feed: Feed<'_, A, R, I>) -> Self {
        let seq = feed.job.as_ref().is_ok_and(|job| job.function.seq);
        let limit = feed.limits.get_max_bytes();
        let block = items_block(&mut feed.items, &mut feed.held, 1, limit, limit, seq);
        OwnedFeed {
            job: feed.job,
            block,
        }
    }
}

impl OwnedFeed {
    /// Sends the task and waits for its answer: `[seq][output]`.
    pub(crate) fn run_one(self, cancel: Option<&Canceller>) -> Result<Vec<u8>> {
        let job = self.job?;
        let (block, count) = self.block?;
        let answer = job.run_one(block, count, cancel)?;
        let mut payload = vec![u8::from(answer.seq)];
        payload.extend(answer.output?);
        Ok(payload)
    }
}

/// The `# Example` of a method both maps have: the lines given, after a
/// `fleet` (with a worker) and `square` (`x * x` on `u64`).
macro_rules! redis_map_example {
    ($($line:expr),* $(,)?) => {
        concat!(
            "# Example\n```no_run\n",
            "# let url = \"redis://127.0.0.1:6379\";\n",
            "# let worker = serfn::redis::RedisWorker::new(url);\n",
            "# std::thread::spawn(move || worker.run());\n",
            "let fleet = serfn::redis::RedisExecutor::new(url)?;\n",
            "let square = serfn::closure!(\"square\", [], move |x: u64| -> u64 { x * x });\n",
            $($line, "\n",)*
            "# Ok::<(), serfn::Error>(())\n```",
        )
    };
}

macro_rules! map_type {
    ($(#[$doc:meta])* $map:ident, $method:literal) => {
        $(#[$doc])*
        pub struct $map<'e, A, R, I> {
            feed: Feed<'e, A, R, I>,
            current: Option<(u64, ChunkResults<R>)>,
            /// Items yielded so far; in order, also the next item's index.
            yielded: u64,
        }

        impl<'e, A, R, I> $map<'e, A, R, I>
        where
            A: Serialize,
            R: DeserializeOwned + 'static,
            I: Iterator<Item = A>,
        {
            pub(crate) fn new(feed: Feed<'e, A, R, I>) -> Self {
                $map {
                    feed,
                    current: None,
                    yielded: 0,
                }
            }

            /// Names the job, so that a driver that restarts can
            /// [`reattach`](RedisExecutor::reattach) to it; before the first item only.
            /// A job whose every result was read is deleted, and its name free again.
            ///
            #[doc = redis_map_example!(
                "let job = format!(\"squares-{}\", std::process::id()); // unique: an unfinished job outlives its driver",
                concat!("let map = fleet.", $method, "(&square, 0..100).job(&job);"),
                "assert_eq!(map.job_name(), Some(job.as_str()));",
                "assert_eq!(map.take(10).count(), 10); // then the driver stops",
                "assert_eq!(fleet.reattach::<u64>(&job)?.count(), 100);",
            )]
            pub fn job(mut self, name: &str) -> Self {
                self.feed.rename(name);
                self
            }

            /// The job's name: random unless [`job`](Self::job) set it; `None`
            /// if the job could not be started.
            ///
            #[doc = redis_map_example!(
                concat!("let map = fleet.", $method, "(&square, 0..10);"),
                "let job = map.job_name().expect(\"started\").to_owned();",
                "assert_eq!(map.take(2).count(), 2); // then the driver stops",
                "// Later, from this driver or another: every result, none run twice.",
                "assert_eq!(fleet.reattach::<u64>(&job)?.count(), 10);",
            )]
            pub fn job_name(&self) -> Option<&str> {
                self.feed.job_name()
            }
        }

        impl<A, R, I> std::fmt::Debug for $map<'_, A, R, I> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($map))
                    .field("job", &self.feed.job.as_ref().map(|job| &job.id).ok())
                    .field("yielded", &self.yielded)
                    .field("ready", &self.feed.ready.len())
                    .finish()
            }
        }
    };
}

map_type! {
    /// The results of [`RedisExecutor::map`], in input order.
    ///
    #[doc = redis_map_example!(
        "let squares: Vec<u64> = fleet.map(&square, 0..100).collect::<serfn::Result<_>>()?;",
        "assert_eq!(squares[9], 81);",
    )]
    RedisMap, "map"
}

map_type! {
    /// The `(index, result)`s of [`RedisExecutor::map_unordered`], as they come.
    ///
    #[doc = redis_map_example!(
        "let mut seen = vec![false; 100];",
        "for (index, result) in fleet.map_unordered(&square, 0..100) {",
        "    assert_eq!(result?, (index * index) as u64);",
        "    seen[index] = true;",
        "}",
        "assert!(seen.iter().all(|&s| s));",
    )]
    RedisMapUnordered, "map_unordered"
}

impl<A, R, I> Iterator for RedisMap<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + 'static,
    I: Iterator<Item = A>,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        loop {
            if let Some((_, results)) = &mut self.current {
                if let Some(result) = results.next() {
                    self.yielded += 1;
                    return Some(result);
                }
                self.current = None;
            }
            if let Some((_, results)) = self.feed.ready.remove(&self.yielded) {
                self.current = Some((self.yielded, results));
                continue;
            }
            if self.feed.failed.is_some() || self.feed.job.is_err() {
                let failed = self.feed.fail_next_input().map(|(_, result)| result);
                self.yielded += u64::from(failed.is_some());
                return failed;
            }
            if !self.feed.step() && self.feed.ready.is_empty() {
                return None;
            }
        }
    }
}

impl<A, R, I> Iterator for RedisMapUnordered<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + 'static,
    I: Iterator<Item = A>,
{
    type Item = (usize, Result<R>);

    fn next(&mut self) -> Option<(usize, Result<R>)> {
        loop {
            if let Some((at, results)) = &mut self.current {
                if let Some(result) = results.next() {
                    *at += 1;
                    self.yielded += 1;
                    return Some(((*at - 1) as usize, result));
                }
                self.current = None;
            }
            if let Some((first, (_, results))) = self.feed.ready.pop_first() {
                self.current = Some((first, results));
                continue;
            }
            if self.feed.failed.is_some() || self.feed.job.is_err() {
                return self
                    .feed
                    .fail_next_input()
                    .map(|(at, result)| (at as usize, result));
            }
            if !self.feed.step() && self.feed.ready.is_empty() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn owned_payloads_say_how_to_decode() {
        let limits = Limits::default();
        let mut seq = vec![1];
        codec::encode_value_into(&(vec![5u8], Vec::<(u32, ())>::new()), &mut seq).unwrap();
        assert_eq!(decode_owned::<u8>(seq, &limits).unwrap(), 5);
    }
}
