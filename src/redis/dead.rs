//! The dead-letter stream seen by an operator: its entries read with their
//! reasons, put back on the task stream as they were signed, or deleted;
//! and the stream where workers park entries they could not open.

use redis::streams::{StreamId, StreamRangeReply};
use redis::Commands;
use serde::Serialize;

use super::broker;
use super::entry::{self, Context, Keys, TaskEntry, TaskHeader, FIELD};
use crate::codec::{Key, Limits, TAG_LEN};
use crate::error::Result;

/// Entries read from a stream at once.
pub(super) const BATCH: usize = 500;

/// A task in the dead-letter stream, and why it is there; or an entry a
/// worker could not open ([`Fleet::forged`](super::Fleet::forged)), which
/// names no job.
///
/// `job`, `task` and `function` are what the worker that gave up read in
/// the task, or, in entries of workers that do not write them, what the
/// task says of itself: with no key given to the [`Fleet`](super::Fleet)
/// (or a key that refuses the entry, `authentic: Some(false)`), a writer to
/// Redis may have made those up.
///
/// # Example
/// ```no_run
/// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?;
/// for dead in fleet.dead_letters(100)? {
///     println!("{} (job {:?}, task {:?}): {}", dead.id, dead.job, dead.task, dead.reason);
/// }
/// # Ok::<(), serfn::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its id in the dead-letter stream: what [`Fleet::requeue`](super::Fleet::requeue) takes.
    pub id: String,
    /// When it was dead-lettered, in milliseconds since the Unix epoch.
    pub when_unix_ms: u64,
    /// The task's id in the task stream, when the worker noted it.
    pub task_id: Option<String>,
    /// Why: the refusal or the delivery count.
    pub reason: String,
    /// Deliveries of the task before it was dead-lettered.
    pub deliveries: u32,
    /// The worker that dead-lettered it.
    pub worker: String,
    /// The job the task names, if it decodes.
    pub job: Option<String>,
    /// The task's index in its job, if it decodes.
    pub task: Option<u64>,
    /// The function it names, if it decodes.
    pub function: Option<String>,
    /// Whether its signature holds under the fleet's key; `None` without a key.
    pub authentic: Option<bool>,
    /// The task entry's size in bytes.
    pub bytes: usize,
}

/// Which stream an entry comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Parked {
    /// `{prefix}:dead`: genuine tasks given up.
    Dead,
    /// `{prefix}:forged`: entries that failed authentication or decoding,
    /// never attributed to the job they name.
    Forged,
}

/// One entry as stored: the task's bytes, unchanged, with the fields the
/// worker added (`reason`, `deliveries`, `worker`; newer workers also
/// `job`, `task`, `name`, `at` and the task's `id`). Kept in this one
/// function so that a change of the entry's layout is a change here.
pub(super) fn parse(
    entry: &StreamId,
    parked: Parked,
    key: Option<&Key>,
    limits: &Limits,
) -> DeadLetter {
    let field = |name: &str| entry.get::<String>(name);
    let text = |name: &str| field(name).unwrap_or_default();
    let number = |name: &str| field(name).and_then(|n| n.parse::<u64>().ok());
    let bytes: Vec<u8> = entry.get(FIELD).unwrap_or_default();
    let (header, authentic) = match parked {
        Parked::Dead => read_header(&bytes, key, limits),
        Parked::Forged => (None, key.map(|_| false)),
    };
    let from_id = entry.id.split('-').next().and_then(|ms| ms.parse().ok());
    let noted = field("job").is_some();
    DeadLetter {
        id: entry.id.clone(),
        when_unix_ms: number("at").or(from_id).unwrap_or(0),
        task_id: field("id"),
        reason: text("reason"),
        deliveries: number("deliveries").map_or(0, |n| n as u32),
        worker: text("worker"),
        job: if noted {
            field("job")
        } else {
            header.as_ref().map(|h| h.job.clone())
        },
        task: if noted {
            number("task")
        } else {
            header.as_ref().map(|h| h.task)
        },
        function: if noted {
            field("name")
        } else {
            header.map(|h| h.name)
        },
        authentic,
        bytes: bytes.len(),
    }
}

/// A task entry's header: checked with a key, else as it claims (signed or
/// not: an entry with a tag decodes only once the tag is cut off).
fn read_header(
    bytes: &[u8],
    key: Option<&Key>,
    limits: &Limits,
) -> (Option<TaskHeader>, Option<bool>) {
    if let Some(key) = key {
        if let Ok(task) = entry::open::<TaskEntry>(bytes, Some(key), Context::Task, limits) {
            return (Some(task.header), Some(true));
        }
    }
    let claimed = claimed(bytes, limits);
    (claimed, key.map(|_| false))
}

/// What a task entry says of itself, unchecked, signed or not.
pub(super) fn claimed(bytes: &[u8], limits: &Limits) -> Option<TaskHeader> {
    entry::open::<TaskEntry>(bytes, None, Context::Task, limits)
        .or_else(|error| match bytes.len().checked_sub(TAG_LEN) {
            Some(len) => entry::open(&bytes[..len], None, Context::Task, limits),
            None => Err(error),
        })
        .ok()
        .map(|task| task.header)
}

/// The oldest `count` entries of one stream.
pub(super) fn list(
    connection: &mut redis::Connection,
    keys: &Keys,
    parked: Parked,
    key: Option<&Key>,
    limits: &Limits,
    count: usize,
) -> Result<Vec<DeadLetter>> {
    let stream = match parked {
        Parked::Dead => keys.dead(),
        Parked::Forged => keys.forged(),
    };
    let mut out = Vec::new();
    let mut from = "-".to_owned();
    while out.len() < count {
        let want = (count - out.len()).min(BATCH);
        let range: StreamRangeReply = connection
            .xrange_count(&stream, &from, "+", want)
            .map_err(broker("read dead letters"))?;
        let Some(last) = range.ids.last() else {
            break;
        };
        from = format!("({}", last.id);
        let full = range.ids.len() == want;
        out.extend(
            range
                .ids
                .iter()
                .map(|entry| parse(entry, parked, key, limits)),
        );
        if !full {
            break;
        }
    }
    Ok(out)
}

/// Moves one dead letter back to the task stream, its task bytes exactly as
/// they were (a forged one is refused again); nothing if it is gone. In one
/// script, so that two operators requeueing it at once send it once.
const REQUEUE: &str = r"
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return 0 end
local fields = found[1][2]
for i = 1, #fields, 2 do
    if fields[i] == ARGV[2] then
        redis.call('XADD', KEYS[2], '*', ARGV[2], fields[i + 1])
        redis.call('XDEL', KEYS[1], ARGV[1])
        return 1
    end
end
return 0
";

/// Requeues one dead letter; whether it was there.
pub(super) fn requeue(connection: &mut redis::Connection, keys: &Keys, id: &str) -> Result<bool> {
    let moved: i64 = redis::cmd("EVAL")
        .arg(REQUEUE)
        .arg(2)
        .arg(keys.dead())
        .arg(keys.tasks())
        .arg(id)
        .arg(FIELD)
        .query(connection)
        .map_err(broker("requeue a dead letter"))?;
    Ok(moved == 1)
}

/// Requeues every dead letter there now (not those added meanwhile, such
/// as a requeued task refused again); the ids moved.
pub(super) fn requeue_all(connection: &mut redis::Connection, keys: &Keys) -> Result<Vec<String>> {
    let newest: StreamRangeReply = connection
        .xrevrange_count(keys.dead(), "+", "-", 1)
        .map_err(broker("read dead letters"))?;
    let mut moved = Vec::new();
    let Some(newest) = newest.ids.first() else {
        return Ok(moved);
    };
    let mut from = "-".to_owned();
    loop {
        let range: StreamRangeReply = connection
            .xrange_count(keys.dead(), &from, &newest.id, BATCH)
            .map_err(broker("read dead letters"))?;
        let Some(last) = range.ids.last() else {
            return Ok(moved);
        };
        from = format!("({}", last.id);
        for entry in &range.ids {
            if requeue(connection, keys, &entry.id)? {
                moved.push(entry.id.clone());
            }
        }
        if range.ids.len() < BATCH {
            return Ok(moved);
        }
    }
}
