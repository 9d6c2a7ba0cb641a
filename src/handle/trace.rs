//! What a function inside a capture contributes to a layout being traced
//! ([`schema`](crate::schema)): a marker with its signature's layouts, and a
//! placeholder that stands in the value the tracer makes up.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::codec::Limits;
use crate::erased::{ArgSlot, Input, Output};
use crate::error::{Error, Result};
use crate::registry::{Registration, SerializableFn};
use crate::signature::{Kind, Signature, TypeInfo};

/// What a typed handle of `kind` from `A` to `R` contributes to a layout
/// being traced: a marker for its kind around the layouts of `A` and `R`.
/// The function returned is a placeholder that is never called.
pub(crate) fn trace_function<'de, D, A, R>(
    deserializer: D,
    kind: Kind,
) -> std::result::Result<Arc<dyn SerializableFn>, D::Error>
where
    D: serde::Deserializer<'de>,
    A: DeserializeOwned,
    R: DeserializeOwned,
{
    let marker = match kind {
        Kind::Fn => "serfn::Fn",
        Kind::FnMut => "serfn::FnMut",
        Kind::FnOnce => "serfn::FnOnce",
        Kind::Async => "serfn::Async",
    };
    let (_, _): (A, R) = deserializer.deserialize_newtype_struct(marker, NewtypeOf::default())?;
    Ok(Arc::new(Placeholder))
}

/// What a function of unknown types ([`DynFn`](crate::DynFn), a pipeline
/// stage) contributes to a layout being traced: a marker.
pub(crate) fn trace_dyn_function<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Arc<dyn SerializableFn>, D::Error> {
    struct Unit;
    impl serde::de::Visitor<'_> for Unit {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a function")
        }
        fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<(), E> {
            Ok(())
        }
    }
    deserializer.deserialize_unit_struct("serfn::DynFn", Unit)?;
    Ok(Arc::new(Placeholder))
}

struct NewtypeOf<T>(std::marker::PhantomData<T>);

impl<T> Default for NewtypeOf<T> {
    fn default() -> Self {
        NewtypeOf(std::marker::PhantomData)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for NewtypeOf<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a function")
    }

    fn visit_newtype_struct<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<T, D::Error> {
        T::deserialize(deserializer)
    }
}

/// Stands for a function inside a value made up by the tracer; dropped at once.
#[derive(serde::Serialize, serde::Deserialize)]
struct Placeholder;

static PLACEHOLDER: Registration = Registration::new(
    "serfn::placeholder",
    1,
    None,
    None,
    refuse_placeholder,
    file!(),
    line!(),
);

fn refuse_placeholder(_: &[u8], _: Option<&Limits>) -> Result<Arc<dyn SerializableFn>> {
    Err(never_called())
}

/// What anything asked of the placeholder gets: no bytes name it.
fn never_called() -> Error {
    Error::UnknownFunction {
        name: PLACEHOLDER.name().into(),
    }
}

// Never submitted to the registry: no bytes can name it.
#[typetag::serde(name = "serfn::placeholder")]
impl SerializableFn for Placeholder {
    fn signature(&self) -> Signature {
        Signature::of::<(), ()>(Kind::FnOnce)
    }

    fn __serfn_registration(&self) -> &'static Registration {
        &PLACEHOLDER
    }

    fn __serfn_encode_capture(&self, _: &mut Vec<u8>) -> Result<()> {
        Err(never_called())
    }

    fn __serfn_call(&self, _: Input<'_>, _: Output<'_>) -> Result<()> {
        Err(never_called())
    }

    fn __serfn_call_mut(&mut self, _: Input<'_>, _: Output<'_>) -> Result<()> {
        Err(never_called())
    }

    fn __serfn_call_once(self: Arc<Self>, _: Input<'_>, _: Output<'_>) -> Result<()> {
        Err(never_called())
    }

    fn __serfn_clone(&self) -> Result<Arc<dyn SerializableFn>> {
        Ok(Arc::new(Placeholder))
    }

    fn __serfn_output_slot(&self) -> Box<dyn ArgSlot> {
        Box::new(crate::erased::Slot::<()>(None))
    }

    fn __serfn_args_after(&self, _: usize) -> Option<TypeInfo> {
        None
    }

    fn __serfn_check_bound(&self, _: usize, _: &[u8]) -> Result<()> {
        Err(never_called())
    }

    fn __serfn_into_stages(self: Arc<Self>) -> Vec<Arc<dyn SerializableFn>> {
        vec![self]
    }

    fn __serfn_into_typed(
        self: Arc<Self>,
        _: &mut dyn std::any::Any,
    ) -> Option<Arc<dyn SerializableFn>> {
        // Never called: it only stands in while a layout is traced.
        Some(self)
    }
}
