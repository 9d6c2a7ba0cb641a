//! `f.then(g)`: a pipeline of functions, stored flat.
//!
//! A chain of 10,000 `then`s is one list, not 10,000 nested captures, so it
//! encodes, decodes and runs without recursion.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

use super::Stage;
use crate::codec::stash;
use crate::erased::{ArgSlot, Input, Output, SerializableFn};
use crate::error::{Error, Result};
use crate::registry::{Registered, Registration};
use crate::signature::{Signature, TypeInfo};

static REGISTRATION: Registration = Registration::new(
    "serfn::then",
    1,
    None,
    crate::__private::decode_as::<Then>,
    file!(),
    line!(),
);

inventory::submit! { Registered(&REGISTRATION) }

/// Runs its stages in order, each on the output of the one before.
#[derive(Serialize, Debug)]
#[serde(transparent)]
pub(crate) struct Then {
    stages: Vec<Stage>,
}

/// `first` then `next`, flattening pipelines on either side.
pub(crate) fn then(
    first: Arc<dyn SerializableFn>,
    next: Arc<dyn SerializableFn>,
) -> Arc<dyn SerializableFn> {
    let mut stages = first.__serfn_into_stages();
    stages.extend(next.__serfn_into_stages());
    Arc::new(Then {
        stages: stages.into_iter().map(Stage).collect(),
    })
}

impl<'de> Deserialize<'de> for Then {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stages = Vec::<Stage>::deserialize(deserializer)?;
        check_links(&stages).map_err(stash)?;
        Ok(Then { stages })
    }
}

/// Refuses empty pipelines and stages whose input is not the previous output.
fn check_links(stages: &[Stage]) -> Result<()> {
    if stages.is_empty() {
        return Err(Error::decode("a `then` pipeline with no stage"));
    }
    for pair in stages.windows(2) {
        let (before, after) = (pair[0].0.signature(), pair[1].0.signature());
        if before.output() != after.args() {
            return Err(Error::SignatureMismatch {
                name: pair[1].0.name().into(),
                expected: format!("a function taking {}", before.output().name()),
                found: after.to_string(),
            });
        }
    }
    Ok(())
}

impl Then {
    fn first(&self) -> &Arc<dyn SerializableFn> {
        &self.stages[0].0
    }

    fn last(&self) -> &Arc<dyn SerializableFn> {
        &self.stages[self.stages.len() - 1].0
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

#[typetag::serde(name = "serfn::then")]
impl SerializableFn for Then {
    fn signature(&self) -> Signature {
        let kind = self
            .stages
            .iter()
            .map(|stage| stage.0.signature().kind())
            .max();
        let kind = kind.expect("a pipeline has a stage");
        Signature::new(
            kind,
            self.first().signature().args(),
            self.last().signature().output(),
        )
    }

    fn __serfn_registration(&self) -> &'static Registration {
        &REGISTRATION
    }

    fn __serfn_call(&self, input: Input<'_>, output: Output<'_>) -> Result<()> {
        run(
            self.stages.iter(),
            input,
            output,
            |stage, input, output| stage.0.__serfn_call(input, output),
            |stage| stage.0.__serfn_output_slot(),
        )
    }

    fn __serfn_call_mut(&mut self, input: Input<'_>, output: Output<'_>) -> Result<()> {
        run(
            self.stages.iter_mut(),
            input,
            output,
            |stage, input, output| match Arc::get_mut(&mut stage.0) {
                Some(f) => f.__serfn_call_mut(input, output),
                // Shared stages come from a `SerFn`: `Fn`, nothing to change.
                None => stage.0.__serfn_call(input, output),
            },
            |stage| stage.0.__serfn_output_slot(),
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

    fn __serfn_clone(&self) -> Result<Arc<dyn SerializableFn>> {
        let stages = self
            .stages
            .iter()
            .map(|stage| stage.0.__serfn_clone().map(Stage))
            .collect::<Result<_>>()?;
        Ok(Arc::new(Then { stages }))
    }

    fn __serfn_output_slot(&self) -> Box<dyn ArgSlot> {
        self.last().__serfn_output_slot()
    }

    fn __serfn_args_after(&self, bound: usize) -> Option<TypeInfo> {
        self.first().__serfn_args_after(bound)
    }

    fn __serfn_into_stages(self: Arc<Self>) -> Vec<Arc<dyn SerializableFn>> {
        match Arc::try_unwrap(self) {
            Ok(then) => then.stages.into_iter().map(|stage| stage.0).collect(),
            Err(shared) => shared
                .stages
                .iter()
                .map(|stage| Arc::clone(&stage.0))
                .collect(),
        }
    }
}
