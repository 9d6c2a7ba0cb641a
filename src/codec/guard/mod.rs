//! A guard around the bincode deserializer for untrusted input.
//!
//! bincode's serde deserializer recurses once per level of nesting in the
//! input and trusts every length prefix. Left alone, input nested 100,000
//! levels deep overflows the stack, a forged length of 2^60 on a `Vec<()>`
//! loops for ever (its elements read no bytes), and a forged length on an
//! owned string or byte buffer makes bincode allocate that many bytes before
//! it reads one. [`deserialize_seed`] wraps the deserializer, and every
//! visitor, seed and access object passed through it, so that such input
//! fails with [`Error::TooDeep`] or [`Error::TooLarge`] instead:
//!
//! * each level of nesting (`visit_seq`, `visit_map`, `visit_some`,
//!   `visit_newtype_struct`, and the content of a newtype variant) counts
//!   against [`Limits::max_depth`]. An enum is not a level of its own: a
//!   variant with fields nests once, as a struct does, so `Cons(7, tail)`
//!   puts `tail` one level deeper, not two;
//! * each sequence element and map entry costs one unit of a budget of
//!   [`Limits::max_bytes`] units for the whole decode;
//! * owned strings and byte buffers are read through bincode's borrowed path,
//!   which checks a length against the input left before touching memory;
//! * error messages are cut at each level to [`MAX_MESSAGE_LEN`] bytes, as
//!   passing them up through `erased_serde` can double their length at each
//!   level (see [`bounded`]).
//!
//! Decodes nested in one another on one thread (a `Deserialize` impl that
//! decodes other bytes with [`deserialize_seed`]) share the depth and the
//! budget of the outermost one, so that blobs nested in blobs cannot reset
//! the limits.

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use super::{stash, Limits};
use crate::error::Error;

/// Deserializes `seed` from `inner` under `limits`.
///
/// Fails with [`Error::TooDeep`] or [`Error::TooLarge`] (stashed, see
/// [`stash`]) when the input exceeds `limits`; any other error is `inner`'s.
///
/// Called while another call runs on this thread (from a `Deserialize` impl
/// that decodes other bytes), it continues that call's depth and budget and
/// applies whichever bound is tighter, its own or the outer one; what it
/// consumes stays consumed for the outer call.
pub(crate) fn deserialize_seed<'de, D, S>(
    inner: D,
    limits: &Limits,
    seed: S,
) -> Result<S::Value, D::Error>
where
    D: Deserializer<'de>,
    S: DeserializeSeed<'de>,
{
    STATE.with(|state| {
        let _session = Session::begin(state, limits);
        seed.deserialize(Guarded { inner, state })
    })
}

thread_local! {
    /// The state of the decodes running on this thread. A thread-local only so
    /// that nested decodes find the outer one; the wrappers carry a reference.
    static STATE: State = const { State::new() };
}

/// What the decodes running on one thread have used so far.
struct State {
    /// Whether a decode is running.
    active: Cell<bool>,
    /// The current nesting level.
    depth: Cell<usize>,
    /// Elements and entries visited since the outermost decode began.
    used: Cell<usize>,
    /// The bound on `depth`.
    depth_bound: Cell<Bound>,
    /// The bound on `used`.
    budget_bound: Cell<Bound>,
}

/// A bound of `limit` counted from `base`: the counter may reach
/// `base + limit`, not more.
#[derive(Clone, Copy)]
struct Bound {
    base: usize,
    limit: usize,
}

impl Bound {
    fn cap(self) -> usize {
        self.base.saturating_add(self.limit)
    }

    /// The tighter of `self` and `outer`.
    fn within(self, outer: Bound) -> Bound {
        if outer.cap() < self.cap() {
            outer
        } else {
            self
        }
    }
}

impl State {
    const fn new() -> Self {
        let none = Bound { base: 0, limit: 0 };
        State {
            active: Cell::new(false),
            depth: Cell::new(0),
            used: Cell::new(0),
            depth_bound: Cell::new(none),
            budget_bound: Cell::new(none),
        }
    }

    /// Runs `f` one level of nesting deeper, and caps the message of the
    /// error it returns (see [`bounded`]).
    fn nested<T, E: de::Error>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let depth = self.depth.get();
        let bound = self.depth_bound.get();
        if depth >= bound.cap() {
            return Err(stash(Error::TooDeep { limit: bound.limit }));
        }
        self.depth.set(depth + 1);
        let _level = Level(self);
        // The depth limit bounds the work; this bounds the stack, whatever the
        // frame sizes (debug builds, erased-serde between levels) or the
        // thread's stack size: a level runs on a fresh heap-allocated segment
        // when less than RED_ZONE is left.
        const RED_ZONE: usize = 256 * 1024;
        const SEGMENT: usize = 4 * 1024 * 1024;
        stacker::maybe_grow(RED_ZONE, SEGMENT, f).map_err(bounded)
    }

    /// Spends one unit of the budget.
    fn charge<E: de::Error>(&self) -> Result<(), E> {
        let used = self.used.get();
        let bound = self.budget_bound.get();
        if used >= bound.cap() {
            // Counts the unit refused, so that `len` exceeds `limit`.
            let len = u64::try_from(used - bound.base).map_or(u64::MAX, |n| n.saturating_add(1));
            return Err(stash(Error::TooLarge {
                len,
                limit: bound.limit,
            }));
        }
        self.used.set(used + 1);
        Ok(())
    }
}

/// One level of nesting; leaves it on drop, also when unwinding.
struct Level<'s>(&'s State);

impl Drop for Level<'_> {
    fn drop(&mut self) {
        self.0.depth.set(self.0.depth.get() - 1);
    }
}

/// The longest error message passed up a level as it is.
const MAX_MESSAGE_LEN: usize = 1024;

/// Cuts an error message longer than [`MAX_MESSAGE_LEN`].
///
/// bincode's `Display` of an error is its `Debug`, which quotes and escapes
/// the message; so each `erased_serde` boundary an error crosses on its way
/// up (erased-serde converts errors through `Display`) doubles the
/// backslashes in it. Unchecked, an error from 40 levels down grows to 2^40
/// bytes.
fn bounded<E: de::Error>(error: E) -> E {
    let message = error.to_string();
    if message.len() <= MAX_MESSAGE_LEN {
        return error;
    }
    let mut end = MAX_MESSAGE_LEN;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    E::custom(format_args!("{}...", &message[..end]))
}

/// One call of [`deserialize_seed`]: puts the outer bounds back on drop, also
/// when unwinding. The depth is back by then (see [`Level`]); the budget used
/// stays used.
struct Session<'s> {
    state: &'s State,
    active: bool,
    depth_bound: Bound,
    budget_bound: Bound,
}

impl<'s> Session<'s> {
    fn begin(state: &'s State, limits: &Limits) -> Self {
        let outer = Session {
            state,
            active: state.active.get(),
            depth_bound: state.depth_bound.get(),
            budget_bound: state.budget_bound.get(),
        };
        if !outer.active {
            state.depth.set(0);
            state.used.set(0);
        }
        let mut depth_bound = Bound {
            base: state.depth.get(),
            limit: limits.max_depth,
        };
        let mut budget_bound = Bound {
            base: state.used.get(),
            limit: limits.max_bytes,
        };
        if outer.active {
            depth_bound = depth_bound.within(outer.depth_bound);
            budget_bound = budget_bound.within(outer.budget_bound);
        }
        state.active.set(true);
        state.depth_bound.set(depth_bound);
        state.budget_bound.set(budget_bound);
        outer
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.state.active.set(self.active);
        self.state.depth_bound.set(self.depth_bound);
        self.state.budget_bound.set(self.budget_bound);
    }
}

/// A deserializer, visitor, seed or access object whose nesting and element
/// count are checked against the state of the decode it belongs to.
struct Guarded<'s, T> {
    inner: T,
    state: &'s State,
}

impl<'s, T> Guarded<'s, T> {
    fn new(inner: T, state: &'s State) -> Self {
        Guarded { inner, state }
    }
}

/// The seed of a sequence element or a map key: spends one unit of the
/// budget, then deserializes like [`Guarded`].
struct Element<'s, S>(Guarded<'s, S>);

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* Guarded::new(visitor, self.state))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Guarded<'_, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_bytes();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    // bincode's owned paths allocate a forged length before reading; its
    // borrowed paths check the length against the input first.
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_str(Guarded::new(visitor, self.state))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_bytes(Guarded::new(visitor, self.state))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Guarded<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let state = self.state;
        state.nested(|| self.inner.visit_some(Guarded::new(deserializer, state)))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        let state = self.state;
        state.nested(|| {
            self.inner
                .visit_newtype_struct(Guarded::new(deserializer, state))
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let state = self.state;
        state.nested(|| self.inner.visit_seq(Guarded::new(seq, state)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let state = self.state;
        state.nested(|| self.inner.visit_map(Guarded::new(map, state)))
    }

    // Not a level: the variant's content is (see `VariantAccess` below).
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Guarded::new(data, self.state))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Guarded<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner
            .deserialize(Guarded::new(deserializer, self.state))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Element<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.state.charge::<D::Error>()?;
        self.0.deserialize(deserializer)
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Guarded<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner
            .next_element_seed(Element(Guarded::new(seed, self.state)))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Guarded<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.inner
            .next_key_seed(Element(Guarded::new(seed, self.state)))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(Guarded::new(seed, self.state))
    }

    fn next_entry_seed<K, T>(
        &mut self,
        key: K,
        value: T,
    ) -> Result<Option<(K::Value, T::Value)>, A::Error>
    where
        K: DeserializeSeed<'de>,
        T: DeserializeSeed<'de>,
    {
        self.inner.next_entry_seed(
            Element(Guarded::new(key, self.state)),
            Guarded::new(value, self.state),
        )
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'s, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Guarded<'s, A> {
    type Error = A::Error;
    type Variant = Guarded<'s, A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.inner.variant_seed(Guarded::new(seed, self.state))?;
        Ok((value, Guarded::new(variant, self.state)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Guarded<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let state = self.state;
        state.nested(|| self.inner.newtype_variant_seed(Guarded::new(seed, state)))
    }

    // The content of tuple and struct variants is a level in `visit_seq` or
    // `visit_map`.
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner
            .tuple_variant(len, Guarded::new(visitor, self.state))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner
            .struct_variant(fields, Guarded::new(visitor, self.state))
    }
}

#[cfg(test)]
mod tests;
