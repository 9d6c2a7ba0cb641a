//! Structural fingerprints of serde data models.
//!
//! A capture's *layout* is what its bytes mean: the serde data model of its
//! type (field names and order, variant names and indices, primitive types,
//! sequence, map, option and tuple shapes), traced once per type with
//! `serde-reflection` and written in a canonical form of our own that leaves
//! out Rust type names and module paths. Two builds agree on a layout exactly
//! when their bytes agree on what they mean, whatever the compiler, the
//! build profile or where the type lives.
//!
//! What tracing cannot see (documented on [`Registration::layout`](crate::registry::Registration::layout)):
//! a type whose `Deserialize` impl validates the tracer's made-up values
//! (`NonZeroU32`, a hand-written impl that refuses an empty `Vec`), or that
//! needs a self-describing format (`#[serde(flatten)]`, untagged or
//! internally tagged enums), or two different types of one serde name in one
//! capture, cannot be traced: its layout is unchecked. Variants of an enum
//! nested inside another that the tracer cannot reach are left out.

use std::any::TypeId;
use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::hash::Hasher;
use std::sync::{OnceLock, RwLock};

use std::marker::PhantomData;

use serde::de::{DeserializeOwned, DeserializeSeed};
use serde_reflection::{
    ContainerFormat, Format, Named, Registry, Samples, Tracer, TracerConfig, VariantFormat,
};

use crate::codec::{self, Limits};
use crate::error::Error;

/// The traced layout of one type: its serde data model, from
/// [`Registration::layout`](crate::registry::Registration::layout).
///
/// # Example
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
///
/// #[serfn::register(name = "docs::Point")]
/// impl serfn::Call<()> for Point {
///     type Output = f64;
///     fn call(&self, (): ()) -> f64 { self.x.hypot(self.y) }
/// }
///
/// let layout = serfn::registry::get("docs::Point")?.layout().expect("a registered struct");
/// // Field names and types, not the Rust type name: renaming `Point` keeps it.
/// assert_eq!(layout.description(), Ok("{1:x:f64,1:y:f64}"));
/// assert!(layout.partial_enums().is_empty());
/// # Ok::<(), serfn::Error>(())
/// ```
#[derive(Debug)]
pub struct Layout {
    /// The canonical description, or why the type could not be traced.
    description: std::result::Result<String, String>,
    /// Enums not fully traced, if any (their Rust names, for people).
    partial: Vec<String>,
    fingerprint: u64,
    /// Whether a value of the type is small and fixed in shape (see [`is_fixed`]).
    fixed: bool,
}

impl Layout {
    /// The canonical description, such as `{6:factor:f64}`, or why the
    /// type could not be traced.
    pub fn description(&self) -> std::result::Result<&str, &str> {
        self.description.as_deref().map_err(String::as_str)
    }

    /// Enums whose variants were not all reached by the tracer: changes to
    /// the variants left out go unnoticed.
    pub fn partial_enums(&self) -> &[String] {
        &self.partial
    }

    /// A 64-bit hash of the description; the same for every untraceable type.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The fingerprint of the 1-tuple of this type, `(T,)`, whose
    /// description is this one in parentheses.
    pub(crate) fn one_tuple_fingerprint(&self) -> u64 {
        match &self.description {
            Ok(description) => hash(&[b"layout", format!("({description})").as_bytes()]),
            Err(_) => self.fingerprint,
        }
    }

    /// Whether decoding a value of this type can neither allocate by what
    /// the input says nor nest deeper than the default limits allow, so that
    /// the decode guard has nothing to check.
    pub(crate) fn is_fixed(&self) -> bool {
        self.fixed
    }
}

/// The longest description [`is_fixed`] accepts: it bounds the nesting (a
/// level takes 2 characters at least, its opening and its closing) below
/// [`Limits::DEFAULT_MAX_DEPTH`], and what boxed fields can allocate to a few KiB.
const MAX_FIXED_DESCRIPTION: usize = 200;

/// Whether a fully traced description has no sequence, map, string, byte
/// string, array, recursion, function or untraced part. Conservative: a name
/// that contains one of these words only makes a type look variable.
fn is_fixed(description: &str, partial: &[String]) -> bool {
    const VARIABLE: [&str; 8] = ["seq<", "map<", "str", "bytes", "[", "^", "?", MARKER_PREFIX];
    partial.is_empty()
        && description.len() <= MAX_FIXED_DESCRIPTION
        && !VARIABLE.iter().any(|word| description.contains(word))
}

/// The layout of `T`, traced once per process.
pub(crate) fn layout_of<T: DeserializeOwned + 'static>() -> &'static Layout {
    static CACHE: OnceLock<RwLock<HashMap<TypeId, &'static Layout>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let id = TypeId::of::<T>();
    if let Some(layout) = cache.read().unwrap_or_else(|e| e.into_inner()).get(&id) {
        return layout;
    }
    // Traced outside the lock, on a thread of its own: the decode that may
    // be running here keeps its limits and stashed errors to itself, and a
    // `Deserialize` impl that panics on the tracer's values makes the type
    // untraced instead of failing the caller. Leaked once per type: bounded.
    // On `trace_on_own_thread`'s thread nothing else runs: traced in place,
    // one thread for all (a thread per type cost ms on a busy machine).
    let traced = if OWN_TRACER.with(Cell::get) && !tracing() {
        let _ = codec::take_stashed();
        let traced = std::panic::catch_unwind(trace::<T>)
            .unwrap_or_else(|_| untraced("a Deserialize impl panicked"));
        let _ = codec::take_stashed();
        traced
    } else {
        trace_on_a_thread::<T>()
    };
    let traced: &'static Layout = Box::leak(Box::new(traced));
    cache
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(id)
        .or_insert(traced)
}

/// Runs `work` on a thread of its own on which [`layout_of`] traces in
/// place: for tracing many types at once (`registry::trace_all`). `None`
/// when no thread could start or `work` panicked.
pub(crate) fn trace_on_own_thread<R: Send>(work: impl FnOnce() -> R + Send) -> Option<R> {
    std::thread::scope(|scope| {
        let tracer = std::thread::Builder::new().name("serfn-trace".into());
        let run = || {
            OWN_TRACER.with(|own| own.set(true));
            work()
        };
        match tracer.spawn_scoped(scope, run) {
            Ok(thread) => thread.join().ok(),
            Err(_) => None,
        }
    })
}

fn trace_on_a_thread<T: DeserializeOwned>() -> Layout {
    std::thread::scope(|scope| {
        let tracer = std::thread::Builder::new().name("serfn-trace".into());
        match tracer.spawn_scoped(scope, trace::<T>) {
            Ok(thread) => thread
                .join()
                .unwrap_or_else(|_| untraced("a Deserialize impl panicked")),
            Err(error) => untraced(&format!("no thread to trace on: {error}")),
        }
    })
}

/// The stable 64-bit FNV-1a hash that fingerprints use.
pub(crate) fn hash(parts: &[&[u8]]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    for part in parts {
        hasher.write(&(part.len() as u64).to_le_bytes());
        hasher.write(part);
    }
    hasher.finish()
}

fn trace<T: DeserializeOwned>() -> Layout {
    let _tracing = Tracing::begin();
    match describe::<T>() {
        Ok((description, partial)) => Layout {
            fingerprint: hash(&[b"layout", description.as_bytes()]),
            fixed: is_fixed(&description, &partial),
            description: Ok(description),
            partial,
        },
        Err(reason) => untraced(&reason),
    }
}

/// The layout of a type that could not be traced: one fingerprint for all.
fn untraced(reason: &str) -> Layout {
    Layout {
        fingerprint: hash(&[b"untraced"]),
        description: Err(reason.to_owned()),
        partial: Vec::new(),
        fixed: false,
    }
}

/// More passes than this means a type the tracer cannot finish.
const MAX_PASSES: usize = 4096;

/// Traces `T` until every enum the tracer reaches is complete. The tracer
/// explores one enum variant per pass and needs each enum's name to be
/// told to go on; names are learnt from a first round, then a fresh tracer
/// runs with all of them, until a round finds no new name.
fn describe<T: DeserializeOwned>() -> std::result::Result<(String, Vec<String>), String> {
    let samples = Samples::new();
    let mut names = BTreeSet::new();
    loop {
        let (format, tracer) = trace_passes::<T>(&samples, &names)?;
        let registry = tracer.registry_unchecked();
        let before = names.len();
        names.extend(registry.keys().cloned());
        if names.len() > before {
            continue;
        }
        // Deterministic: the same passes again, to ask which enums are incomplete.
        let (_, tracer) = trace_passes::<T>(&samples, &names)?;
        let partial = match tracer.registry() {
            Ok(_) => Vec::new(),
            Err(serde_reflection::Error::MissingVariants(enums)) => enums,
            Err(error) => return Err(error.to_string()),
        };
        let mut out = String::new();
        write_format(&mut out, &format, &registry, &mut Vec::new())?;
        return Ok((out, partial));
    }
}

fn trace_passes<T: DeserializeOwned>(
    samples: &Samples,
    names: &BTreeSet<String>,
) -> std::result::Result<(Format, Tracer), String> {
    let mut tracer = Tracer::new(TracerConfig::default());
    for _ in 0..MAX_PASSES {
        let (format, _) = tracer
            .trace_type_once_with_seed(samples, DepthGuarded::<T>(PhantomData))
            .map_err(|error| match codec::take_stashed() {
                // The tracer recurses for ever into a recursive enum whose
                // first variant recurses: the guard stops it.
                Some(Error::TooDeep { .. }) => {
                    "a recursive enum whose first variant recurses (put the base case first)"
                        .to_owned()
                }
                _ => format!("{error} ({})", error.explanation().trim()),
            })?;
        let mut progress = false;
        for name in names {
            progress |= tracer.check_incomplete_enum(name).is_some();
        }
        if !progress {
            return Ok((format, tracer));
        }
    }
    Err(format!("more than {MAX_PASSES} tracing passes"))
}

/// Deserializes a `T` under the decode guard, for its depth limit.
struct DepthGuarded<T>(PhantomData<T>);

impl<T> Clone for DepthGuarded<T> {
    fn clone(&self) -> Self {
        DepthGuarded(PhantomData)
    }
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for DepthGuarded<T> {
    type Value = T;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<T, D::Error> {
        codec::guarded(deserializer, &Limits::default(), PhantomData::<T>)
    }
}

/// Writes `format` canonically: names are length-prefixed, recursion is a
/// back-reference by depth, container names are left out except serfn's
/// own function markers.
fn write_format(
    out: &mut String,
    format: &Format,
    registry: &Registry,
    stack: &mut Vec<String>,
) -> std::result::Result<(), String> {
    match format {
        Format::Variable(variable) => match variable.borrow().as_ref() {
            Some(known) => write_format(out, known, registry, stack)?,
            None => out.push('?'),
        },
        Format::TypeName(name) => {
            if let Some(at) = stack.iter().rposition(|open| open == name) {
                let _ = write!(out, "^{}", stack.len() - at);
                return Ok(());
            }
            if name.starts_with(MARKER_PREFIX) {
                out.push_str(name);
            }
            let container = registry
                .get(name)
                .ok_or_else(|| format!("container `{name}` was not traced"))?;
            stack.push(name.clone());
            write_container(out, container, registry, stack)?;
            stack.pop();
        }
        Format::Unit => out.push_str("()"),
        Format::Bool => out.push_str("bool"),
        Format::I8 => out.push_str("i8"),
        Format::I16 => out.push_str("i16"),
        Format::I32 => out.push_str("i32"),
        Format::I64 => out.push_str("i64"),
        Format::I128 => out.push_str("i128"),
        Format::U8 => out.push_str("u8"),
        Format::U16 => out.push_str("u16"),
        Format::U32 => out.push_str("u32"),
        Format::U64 => out.push_str("u64"),
        Format::U128 => out.push_str("u128"),
        Format::F32 => out.push_str("f32"),
        Format::F64 => out.push_str("f64"),
        Format::Char => out.push_str("char"),
        Format::Str => out.push_str("str"),
        Format::Bytes => out.push_str("bytes"),
        Format::Option(inner) => {
            out.push_str("opt<");
            write_format(out, inner, registry, stack)?;
            out.push('>');
        }
        Format::Seq(inner) => {
            out.push_str("seq<");
            write_format(out, inner, registry, stack)?;
            out.push('>');
        }
        Format::Map { key, value } => {
            out.push_str("map<");
            write_format(out, key, registry, stack)?;
            out.push(',');
            write_format(out, value, registry, stack)?;
            out.push('>');
        }
        Format::Tuple(items) => write_tuple(out, items, registry, stack)?,
        Format::TupleArray { content, size } => {
            out.push('[');
            write_format(out, content, registry, stack)?;
            let _ = write!(out, ";{size}]");
        }
    }
    Ok(())
}

fn write_tuple(
    out: &mut String,
    items: &[Format],
    registry: &Registry,
    stack: &mut Vec<String>,
) -> std::result::Result<(), String> {
    out.push('(');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_format(out, item, registry, stack)?;
    }
    out.push(')');
    Ok(())
}

fn write_fields(
    out: &mut String,
    fields: &[Named<Format>],
    registry: &Registry,
    stack: &mut Vec<String>,
) -> std::result::Result<(), String> {
    out.push('{');
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_name(out, &field.name);
        write_format(out, &field.value, registry, stack)?;
    }
    out.push('}');
    Ok(())
}

fn write_name(out: &mut String, name: &str) {
    let _ = write!(out, "{}:{name}:", name.len());
}

fn write_container(
    out: &mut String,
    container: &ContainerFormat,
    registry: &Registry,
    stack: &mut Vec<String>,
) -> std::result::Result<(), String> {
    match container {
        ContainerFormat::UnitStruct => out.push_str("unit"),
        ContainerFormat::NewTypeStruct(inner) => {
            out.push_str("newtype<");
            write_format(out, inner, registry, stack)?;
            out.push('>');
        }
        ContainerFormat::TupleStruct(items) => {
            out.push_str("tuple");
            write_tuple(out, items, registry, stack)?;
        }
        ContainerFormat::Struct(fields) => write_fields(out, fields, registry, stack)?,
        ContainerFormat::Enum(variants) => {
            out.push_str("enum{");
            for (index, (at, variant)) in variants.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{at}=");
                write_name(out, &variant.name);
                write_variant(out, &variant.value, registry, stack)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_variant(
    out: &mut String,
    variant: &VariantFormat,
    registry: &Registry,
    stack: &mut Vec<String>,
) -> std::result::Result<(), String> {
    match variant {
        VariantFormat::Variable(variable) => match variable.borrow().as_ref() {
            Some(known) => write_variant(out, known, registry, stack)?,
            None => out.push('?'),
        },
        VariantFormat::Unit => out.push_str("unit"),
        VariantFormat::NewType(inner) => {
            out.push_str("newtype<");
            write_format(out, inner, registry, stack)?;
            out.push('>');
        }
        VariantFormat::Tuple(items) => {
            out.push_str("tuple");
            write_tuple(out, items, registry, stack)?;
        }
        VariantFormat::Struct(fields) => write_fields(out, fields, registry, stack)?,
    }
    Ok(())
}

// ---- functions inside traced types ----------------------------------------

/// The prefix of the container names that stand for functions in a layout.
const MARKER_PREFIX: &str = "serfn::";

thread_local! {
    static TRACING: Cell<bool> = const { Cell::new(false) };
    /// This thread is `trace_on_own_thread`'s: trace in place.
    static OWN_TRACER: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as tracing until dropped.
struct Tracing(bool);

impl Tracing {
    fn begin() -> Self {
        Tracing(TRACING.with(|tracing| tracing.replace(true)))
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        TRACING.with(|tracing| tracing.set(self.0));
    }
}

/// Whether a layout is being traced on this thread: a function inside a
/// capture then describes its signature instead of reading the registry.
pub(crate) fn tracing() -> bool {
    TRACING.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::layout_of;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Point {
        x: f64,
        tags: Vec<(u8, String)>,
        next: Option<Box<Point>>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Shape {
        Dot,
        Line(Point, Point),
    }

    /// What a `bind` of the first of a pair is encoded with: the 1-tuple's
    /// fingerprint, computed from its element's layout.
    #[test]
    fn a_one_tuple_fingerprint_is_computed_from_its_element() {
        fn same<T: serde::de::DeserializeOwned + 'static>() {
            assert_eq!(
                layout_of::<T>().one_tuple_fingerprint(),
                layout_of::<(T,)>().fingerprint(),
                "{}",
                std::any::type_name::<T>()
            );
            assert_ne!(
                layout_of::<T>().fingerprint(),
                layout_of::<(T,)>().fingerprint()
            );
        }
        same::<u64>();
        same::<String>();
        same::<(f64, f64)>();
        same::<Point>();
        same::<Shape>();
        same::<Vec<Shape>>();
    }
}
