//! `f.then(g)`: a pipeline of functions, stored flat.
//!
//! A chain of 10,000 `then`s is one list, not 10,000 nested captures, so it
//! encodes, decodes and runs without recursion.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Stage, StageRef};
use crate::codec::{self, stash, Limits};
use crate::erased::{ArgSlot, AsyncOutput, Input, Output, StageBatch};
use crate::error::{Error, Result};
use crate::registry::{Registered, Registration, SerializableFn};
use crate::signature::{Kind, Signature, TypeInfo};

static REGISTRATION: Registration = Registration::new(
    "serfn::then",
    1,
    None,
    None,
    crate::__private::decode_as::<Then>,
    file!(),
    line!(),
);

inventory::submit! { Registered(&REGISTRATION) }

/// Runs its stages in order, each on the output of the one before.
///
/// The stages are kept as the `Vec` they are encoded as, so that `f =
/// f.then(g)` moves the `Vec` of a pipeline held once and pushes one stage:
/// amortised O(1) however long the chain.
pub(crate) struct Then {
    stages: Vec<Arc<dyn SerializableFn>>,
    /// The latest kind among the stages, kept so that the signature is O(1).
    kind: Kind,
    /// Whether every stage runs a chunk typed (see [`StageBatch`]): the
    /// pipeline then runs one the same way, stage by stage.
    batches: bool,
    /// Unique to this value: keys its stage slots kept in [`SLOTS`].
    id: u64,
}

/// Ids for [`Then::id`]; never 0, the id of no pipeline.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The longest pipeline whose stage slots are kept for its next call: a
/// boxed slot per stage is ~50 bytes, which a pipeline of a million stages
/// would keep on each thread that called it. Longer ones allocate two slots
/// at a time per call, a cost small beside that of so many stages.
const MAX_KEPT_SLOTS: usize = 1024;

thread_local! {
    /// The stage output slots of the pipeline last called on this thread,
    /// by its id: a worker calls one pipeline for each item of a batch, and
    /// a boxed slot per stage and item was most of a stage's cost there.
    static SLOTS: RefCell<(u64, Vec<Box<dyn ArgSlot>>)> = const { RefCell::new((0, Vec::new())) };
}

/// `first` then `next`, flattening pipelines on either side.
pub(crate) fn then(
    first: Arc<dyn SerializableFn>,
    next: Arc<dyn SerializableFn>,
) -> Arc<dyn SerializableFn> {
    let kind = first.signature().kind().max(next.signature().kind());
    // From the two sides, not the stages: appending stays O(1) amortised.
    let batches = kind == Kind::Fn && first.__serfn_batches() && next.__serfn_batches();
    let mut stages = first.__serfn_into_stages();
    stages.extend(next.__serfn_into_stages());
    Arc::new(Then {
        batches,
        stages,
        kind,
        id: next_id(),
    })
}

impl Serialize for Then {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.stages.iter().map(|stage| StageRef(&**stage)))
    }
}

impl<'de> Deserialize<'de> for Then {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stages: Vec<Arc<dyn SerializableFn>> = Vec::<Stage>::deserialize(deserializer)?
            .into_iter()
            .map(|stage| stage.0)
            .collect();
        check_links(&stages).map_err(stash)?;
        let kind = stages
            .iter()
            .map(|stage| stage.signature().kind())
            .max()
            .expect("checked: a pipeline has a stage");
        Ok(Then {
            batches: batches(&stages, kind),
            stages,
            kind,
            id: next_id(),
        })
    }
}

impl fmt::Debug for Then {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Then({} stages)", self.stages.len())
    }
}

/// Whether a pipeline of `stages`, of `kind`, runs chunks stage by stage.
fn batches(stages: &[Arc<dyn SerializableFn>], kind: Kind) -> bool {
    kind == Kind::Fn && stages.iter().all(|stage| stage.__serfn_batches())
}

/// Refuses empty pipelines, stages whose input is not the previous
/// output, and an async pipeline with a stage that needs `&mut` or `self`.
fn check_links(stages: &[Arc<dyn SerializableFn>]) -> Result<()> {
    if stages.is_empty() {
        return Err(Error::decode("a `then` pipeline with no stage"));
    }
    let kinds = || stages.iter().map(|stage| stage.signature().kind());
    if kinds().any(|kind| kind == Kind::Async) {
        if let Some(stage) = stages
            .iter()
            .find(|stage| !matches!(stage.signature().kind(), Kind::Fn | Kind::Async))
        {
            return Err(Error::SignatureMismatch {
                name: stage.name().into(),
                expected: "an `Fn` or `Async` stage in an async pipeline".into(),
                found: stage.signature().to_string(),
            });
        }
    }
    for pair in stages.windows(2) {
        let (before, after) = (pair[0].signature(), pair[1].signature());
        if before.output() != after.args() {
            return Err(Error::SignatureMismatch {
                name: pair[1].name().into(),
                expected: format!("a function taking {}", before.output().name()),
                found: after.to_string(),
            });
        }
    }
    Ok(())
}

impl Then {
    fn first(&self) -> &Arc<dyn SerializableFn> {
        &self.stages[0]
    }

    fn last(&self) -> &Arc<dyn SerializableFn> {
        &self.stages[self.stages.len() - 1]
    }
}

/// Runs `stages` with `call`, threading each output into the next input.
fn run<F>(
    stages: impl ExactSizeIterator<Item = F>,
    input: Input<'_>,
    output: Output<'_>,
    mut call: impl FnMut(F, Input<'_>, Output<'_>) -> Result<()>,
    output_slot: impl Fn(&F) -> Box<dyn ArgSlot>,
) -> Result<()> {
    let count = stages.len();
    let mut input = Some(input);
    let mut output = Some(output);
    let mut carried: Option<Box<dyn ArgSlot>> = None;
    for (index, stage) in stages.enumerate() {
        let mut next = (index + 1 < count).then(|| output_slot(&stage));
        let stage_output = match next.as_mut() {
            Some(slot) => Output::Slot(slot.as_any()),
            None => output.take().expect("the last stage runs once"),
        };
        let stage_input = match carried.as_mut() {
            Some(slot) => Input::Slot(&mut **slot),
            None => input.take().expect("the first stage runs once"),
        };
        call(stage, stage_input, stage_output)?;
        carried = next;
    }
    Ok(())
}

/// [`run`] for `Fn` stages, with `slots[i]` as stage `i`'s output.
fn run_in(
    stages: &[Arc<dyn SerializableFn>],
    slots: &mut [Box<dyn ArgSlot>],
    input: Input<'_>,
    output: Output<'_>,
) -> Result<()> {
    let last = stages.len() - 1;
    let (mut input, mut output) = (Some(input), Some(output));
    for (index, stage) in stages.iter().enumerate() {
        let (before, after) = slots.split_at_mut(index);
        let stage_input = match before.last_mut() {
            Some(slot) => Input::Slot(&mut **slot),
            None => input.take().expect("the first stage runs once"),
        };
        let stage_output = match after.first_mut() {
            Some(slot) if index < last => Output::Slot(slot.as_any()),
            _ => output.take().expect("the last stage runs once"),
        };
        stage.__serfn_call(stage_input, stage_output)?;
    }
    Ok(())
}

/// Starts one stage of an async pipeline: an async stage's own future, or
/// a sync stage run now, its output encoded for the next.
fn start_stage(stage: &Arc<dyn SerializableFn>, input: Input<'_>) -> Result<AsyncOutput> {
    if stage.signature().kind() == Kind::Async {
        return Arc::clone(stage).__serfn_call_async(input);
    }
    let mut value = Vec::new();
    stage.__serfn_call(input, Output::Value(&mut value))?;
    Ok(Box::pin(std::future::ready(Ok(value))))
}

#[typetag::serde(name = "serfn::then")]
impl SerializableFn for Then {
    fn signature(&self) -> Signature {
        Signature::new(
            self.kind,
            self.first().signature().args(),
            self.last().signature().output(),
        )
    }

    fn __serfn_registration(&self) -> &'static Registration {
        &REGISTRATION
    }

    fn __serfn_call(&self, input: Input<'_>, output: Output<'_>) -> Result<()> {
        if self.stages.len() > MAX_KEPT_SLOTS {
            // Two slots live at a time instead of one per stage, kept.
            return run(
                self.stages.iter(),
                input,
                output,
                |stage, input, output| stage.__serfn_call(input, output),
                |stage| stage.__serfn_output_slot(),
            );
        }
        // Taken, key and all: a stage that panics leaves none behind.
        let kept = SLOTS.with(|kept| {
            let (id, slots) = std::mem::take(&mut *kept.borrow_mut());
            (id == self.id).then_some(slots)
        });
        let mut slots = kept.unwrap_or_else(|| {
            let inner = &self.stages[..self.stages.len() - 1];
            inner
                .iter()
                .map(|stage| stage.__serfn_output_slot())
                .collect()
        });
        let result = run_in(&self.stages, &mut slots, input, output);
        SLOTS.with(|kept| *kept.borrow_mut() = (self.id, slots));
        result
    }

    fn __serfn_call_mut(&mut self, input: Input<'_>, output: Output<'_>) -> Result<()> {
        run(
            self.stages.iter_mut(),
            input,
            output,
            |stage, input, output| match Arc::get_mut(stage) {
                Some(f) => f.__serfn_call_mut(input, output),
                // Shared stages come from a `SerFn`: `Fn`, nothing to change.
                None => stage.__serfn_call(input, output),
            },
            |stage| stage.__serfn_output_slot(),
        )
    }

    fn __serfn_call_once(self: Arc<Self>, input: Input<'_>, output: Output<'_>) -> Result<()> {
        run(
            self.__serfn_into_stages().into_iter(),
            input,
            output,
            |stage, input, output| stage.__serfn_call_once(input, output),
            |stage| stage.__serfn_output_slot(),
        )
    }

    fn __serfn_call_async(self: Arc<Self>, input: Input<'_>) -> Result<AsyncOutput> {
        if self.kind != Kind::Async {
            let found = self.signature();
            return Err(Error::SignatureMismatch {
                name: REGISTRATION.name().into(),
                expected: Signature::new(Kind::Async, found.args(), found.output()).to_string(),
                found: found.to_string(),
            });
        }
        // The first stage takes its argument now; each later one takes the
        // encoding of the output before it (our own bytes: no limit).
        let first = start_stage(self.first(), input)?;
        Ok(Box::pin(async move {
            let mut value = first.await?;
            for stage in &self.stages[1..] {
                let input = Input::Bytes(&value, &Limits::unlimited());
                let next = start_stage(stage, input)?;
                value = next.await?;
            }
            Ok(value)
        }))
    }

    fn __serfn_batches(&self) -> bool {
        self.batches
    }

    fn __serfn_call_batch(&self, args: &[u8], limits: &Limits, out: &mut Vec<u8>) -> Result<()> {
        if !self.batches {
            return Err(Error::SignatureMismatch {
                name: REGISTRATION.name().into(),
                expected: "a pipeline of functions that run batches".into(),
                found: self.signature().to_string(),
            });
        }
        // Panics named as when the pipeline runs item by item.
        let mut batch = StageBatch::new(args, limits, REGISTRATION.name(), out);
        self.__serfn_batch_stage(&mut batch)?;
        batch.finish()
    }

    fn __serfn_batch_stage(&self, batch: &mut StageBatch<'_>) -> Result<()> {
        // A pipeline decoded as a stage of another (flattened when built,
        // not when decoded) is last only if its last stage is.
        let last = batch.set_last(false);
        let end = self.stages.len() - 1;
        for (index, stage) in self.stages.iter().enumerate() {
            batch.set_last(last && index == end);
            stage.__serfn_batch_stage(batch)?;
        }
        Ok(())
    }

    fn __serfn_encode_capture(&self, out: &mut Vec<u8>) -> Result<()> {
        codec::encode_value_into(self, out)
    }

    fn __serfn_write_capture(&self, out: &mut codec::CaptureWriter<'_>) -> Result<()> {
        codec::write_value(self, out)
    }

    fn __serfn_clone(&self) -> Result<Arc<dyn SerializableFn>> {
        let stages = self
            .stages
            .iter()
            .map(|stage| stage.__serfn_clone())
            .collect::<Result<_>>()?;
        Ok(Arc::new(Then {
            stages,
            kind: self.kind,
            batches: self.batches,
            id: next_id(),
        }))
    }

    fn __serfn_output_slot(&self) -> Box<dyn ArgSlot> {
        self.last().__serfn_output_slot()
    }

    fn __serfn_args_after(&self, bound: usize) -> Option<TypeInfo> {
        self.first().__serfn_args_after(bound)
    }

    fn __serfn_pair_last_after(&self, bound: usize) -> bool {
        self.first().__serfn_pair_last_after(bound)
    }

    fn __serfn_wire_tupled(&self) -> bool {
        self.first().__serfn_wire_tupled()
    }

    fn __serfn_check_bound(&self, bound: usize, prefix: &[u8]) -> Result<()> {
        self.first().__serfn_check_bound(bound, prefix)
    }

    fn __serfn_into_stages(self: Arc<Self>) -> Vec<Arc<dyn SerializableFn>> {
        match Arc::try_unwrap(self) {
            Ok(then) => then.stages,
            Err(shared) => shared.stages.clone(),
        }
    }

    fn __serfn_into_typed(
        self: Arc<Self>,
        _: &mut dyn std::any::Any,
    ) -> Option<Arc<dyn SerializableFn>> {
        // Its types depend on what it holds: called through slots.
        Some(self)
    }
}
