//! What a function takes and returns, and how it may be called.

use std::any::{type_name, TypeId};
use std::fmt;

use serde::de::DeserializeOwned;

use crate::schema::{self, Layout};

/// How a function may be called, as with Rust's closure traits.
///
/// A function of one kind can be used wherever a later kind is wanted:
/// an `Fn` function works as a [`SerFnMut`](crate::SerFnMut) or a
/// [`SerFnOnce`](crate::SerFnOnce), never the other way round. An
/// [`Async`](Kind::Async) function stands apart: it is called only as one,
/// and only an async function is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Called through `&self` ([`Call`](crate::Call)), any number of times.
    Fn,
    /// Called through `&mut self` ([`CallMut`](crate::CallMut)): its state changes.
    FnMut,
    /// Consumed by its call ([`CallOnce`](crate::CallOnce)).
    FnOnce,
    /// Called through `&self` and awaited ([`AsyncCall`](crate::AsyncCall)),
    /// any number of times; also a pipeline holding such a stage.
    Async,
}

impl Kind {
    /// Whether a function of this kind can be used where `wanted` is asked for.
    ///
    /// ```
    /// use serfn::plumbing::Kind;
    /// assert!(Kind::Fn.can_act_as(Kind::FnOnce));
    /// assert!(!Kind::FnOnce.can_act_as(Kind::Fn));
    /// assert!(!Kind::Fn.can_act_as(Kind::Async) && !Kind::Async.can_act_as(Kind::FnOnce));
    /// ```
    pub fn can_act_as(self, wanted: Kind) -> bool {
        match (self, wanted) {
            (Kind::Async, wanted) => wanted == Kind::Async,
            (_, Kind::Async) => false,
            (found, wanted) => found <= wanted,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::Fn => "Fn",
            Kind::FnMut => "FnMut",
            Kind::FnOnce => "FnOnce",
            Kind::Async => "Async",
        }
    }
}

/// A Rust type, known by its [`TypeId`] in this process and by its
/// [`Layout`] (its serde data model) across processes.
#[derive(Clone, Copy)]
pub struct TypeInfo {
    name: &'static str,
    id: TypeId,
    layout: fn() -> &'static Layout,
}

impl fmt::Debug for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl TypeInfo {
    /// The `TypeInfo` of `T`.
    pub fn of<T: DeserializeOwned + 'static>() -> Self {
        TypeInfo {
            name: type_name::<T>(),
            id: TypeId::of::<T>(),
            layout: schema::layout_of::<T>,
        }
    }

    /// The type's name, as [`std::any::type_name`] gives it: for people
    /// only, never compared across processes.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The type's serde data model, traced once per process.
    pub fn layout(&self) -> &'static Layout {
        (self.layout)()
    }

    /// The type's id in this process.
    pub fn id(&self) -> TypeId {
        self.id
    }
}

impl PartialEq for TypeInfo {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for TypeInfo {}

/// The signature of a serialized function: its [`Kind`], its argument type
/// (a tuple when it takes several) and its output type.
///
/// Its [`fingerprint`](Signature::fingerprint) travels with every encoded
/// function, so bytes are never decoded as a function of another signature.
///
/// # Example
/// ```
/// use serfn::plumbing::{Kind, Signature};
/// let sig = Signature::of::<(f64, u32), String>(Kind::Fn);
/// assert_eq!(sig.to_string(), "Fn((f64, u32)) -> alloc::string::String");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    kind: Kind,
    args: TypeInfo,
    output: TypeInfo,
}

impl Signature {
    /// The signature of a function of `kind` from `A` to `R`.
    pub fn of<A: DeserializeOwned + 'static, R: DeserializeOwned + 'static>(kind: Kind) -> Self {
        Self::new(kind, TypeInfo::of::<A>(), TypeInfo::of::<R>())
    }

    /// A signature from its parts.
    pub fn new(kind: Kind, args: TypeInfo, output: TypeInfo) -> Self {
        Signature { kind, args, output }
    }

    /// How the function may be called.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The argument type.
    pub fn args(&self) -> TypeInfo {
        self.args
    }

    /// The output type.
    pub fn output(&self) -> TypeInfo {
        self.output
    }

    /// A 64-bit hash of the kind and the [`Layout`]s of the argument and
    /// output types: the same in every build whose types mean the same
    /// bytes, whatever their Rust names, modules, compiler or profile.
    pub fn fingerprint(&self) -> u64 {
        let args = self.args.layout().fingerprint().to_le_bytes();
        let output = self.output.layout().fingerprint().to_le_bytes();
        schema::hash(&[self.kind.as_str().as_bytes(), &args, &output])
    }

    /// [`fingerprint`](Self::fingerprint) with the argument type `A` named
    /// as the 1-tuple `(A,)`: what a `bind` of the first of a pair is
    /// encoded with (see `SerializableFn::__serfn_wire_tupled`).
    pub(crate) fn tupled_fingerprint(&self) -> u64 {
        let args = self.args.layout().one_tuple_fingerprint().to_le_bytes();
        let output = self.output.layout().fingerprint().to_le_bytes();
        schema::hash(&[self.kind.as_str().as_bytes(), &args, &output])
    }

    /// Whether a function of signature `found` may be used where this one is
    /// wanted: same argument and output types, and a kind that can act as ours.
    pub fn accepts(&self, found: &Signature) -> bool {
        found.kind.can_act_as(self.kind) && found.args == self.args && found.output == self.output
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({}) -> {}",
            self.kind.as_str(),
            self.args.name,
            self.output.name
        )
    }
}
