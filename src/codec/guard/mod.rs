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
//! * a budget of [`Limits::max_bytes`] bytes (4 KiB at least) for the whole
//!   decode pays for the memory the value takes, by type size, before it is
//!   allocated: a sequence element its size (a byte at least); a map entry
//!   the sizes of its key and value (a byte at least each) and
//!   [`ENTRY_OVERHEAD`]; a field a byte (its storage is its parent's); a
//!   visited value that does not fit the storage already paid for it (a
//!   `Box`'s content) its size, and one that fits inside its parent but
//!   nests, [`LEVEL_COST`]; a string or byte buffer its length. A sequence or
//!   map announcing more elements than the budget left can pay for at those
//!   minimums fails at once;
//! * no access reports a size hint, so that no collection pre-allocates
//!   from a forged length;
//! * owned strings and byte buffers are read through bincode's borrowed path,
//!   which checks a length against the input left before touching memory;
//! * error messages are cut at each level to
//!   [`MAX_MESSAGE_LEN`](state::MAX_MESSAGE_LEN) bytes, as passing them up
//!   through `erased_serde` can double their length at each level.
//!
//! # The bound
//!
//! A decode under `max_bytes = M`, accepted or refused, requests at most
//! `8 * B + 64 KiB` bytes from the allocator at any moment, where the budget
//! `B` is `M`, or 4 KiB if `M` is less (see [`Limits::budget`]): a growing
//! `Vec` or `String` holds at most 4 times what its elements paid (doubling,
//! the old and the new buffer both live while it moves, a capacity of 4 at
//! least); a hash table or B-tree at most 4 times what its entries paid, and
//! a set of 2- or 4-byte elements at most 7 times; a `Box`, `Rc` or `Arc`
//! whose content fits the storage paid for it adds at most 3 times that
//! storage, or 4 times [`LEVEL_COST`] per level in a chain of them; strings
//! copied from the input, their length. `tests/test_memory_bound.rs` checks
//! it with a counting allocator; the largest peak there is 2.3 `M`.
//!
//! Captures are decoded with their own types (never through
//! `erased_serde`, which would hide their sizes), so the bound holds inside
//! them. Outside it: the allocator's own overhead per block, and memory a
//! `Deserialize` impl allocates beyond the value it returns.
//!
//! Decodes nested in one another on one thread (a `Deserialize` impl that
//! decodes other bytes with [`deserialize_seed`]) share the depth and the
//! budget of the outermost one, so that blobs nested in blobs cannot reset
//! the limits.

use std::fmt;
use std::mem::size_of;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use self::state::{Credit, Session, State, STATE};
use super::{stash, Limits};
use crate::error::Error;

mod state;

/// What a map entry costs on top of its key and value: a hash table's
/// control byte and pair padding, a B-tree node's share of its header.
pub(crate) const ENTRY_OVERHEAD: usize = 16;

/// What a level of nesting costs when its value sits in storage paid for by
/// its parent: it may hide a `Box`, `Rc` or `Arc` (serde sees through them),
/// and without this cost a chain of such levels would allocate for free.
pub(crate) const LEVEL_COST: usize = 8;

/// Gives back what a string or byte buffer of `len` bytes was charged, for
/// a visitor that only borrows it (a capture decoded in place): the decode
/// of its content charges what that allocates.
pub(crate) fn refund_borrowed(len: usize) {
    STATE.with(|state| {
        if state.active.get() {
            state.used.set(state.used.get().saturating_sub(len));
        }
    });
}

/// Whether a decode is running on this thread, whose depth and budget a
/// decode started now would continue.
pub(crate) fn active() -> bool {
    STATE.with(|state| state.active.get())
}

/// Runs `f` one level deep in a decode under `limits`, after charging
/// `bytes`: for a value whose outer layer was parsed by hand (an envelope's
/// function header) and whose content `f` decodes with [`deserialize_seed`],
/// so that depth and budget add up as if serde had read the outer layer.
pub(crate) fn within_level<T>(
    limits: &Limits,
    bytes: usize,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    // Any `de::Error` carries the typed error through `stash`.
    type Carrier = serde::de::value::Error;
    STATE
        .with(|state| {
            let _session = Session::begin(state, limits);
            state.charge::<Carrier>(bytes)?;
            state.level(|| f().map_err(stash::<Carrier>))
        })
        .map_err(|error| super::take_stashed().unwrap_or_else(|| Error::decode(error.to_string())))
}

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
        let session = Session::begin(state, limits);
        // The outermost value is returned by value, not allocated; a nested
        // decode's value lands in storage its caller did not pay for.
        let bytes = if session.active {
            0
        } else {
            size_of::<S::Value>()
        };
        state.credit.set(Credit::paid(bytes));
        seed.deserialize(Guarded::new(inner, state))
    })
}

/// A deserializer, visitor, seed or access object whose nesting and
/// allocations are checked against the state of the decode it belongs to.
struct Guarded<'s, T> {
    inner: T,
    state: &'s State,
    /// For a visitor and the sequence it visits: whether the elements are the
    /// fields of a tuple, struct or variant, stored inline in their parent.
    fields: bool,
}

impl<'s, T> Guarded<'s, T> {
    fn new(inner: T, state: &'s State) -> Self {
        Guarded {
            inner,
            state,
            fields: false,
        }
    }

    fn fields(inner: T, state: &'s State) -> Self {
        Guarded {
            inner,
            state,
            fields: true,
        }
    }
}

/// Where a seed's value goes, which decides what it costs before it is
/// decoded.
#[derive(Clone, Copy)]
enum Slot {
    /// A sequence element: a new slot of its size in a collection.
    Element,
    /// A map key: a slot of its size, and [`ENTRY_OVERHEAD`] for the entry.
    Key,
    /// Paid already: a variant's content or its identifier.
    Inline,
}

/// A seed that pays for its slot, then deserializes like [`Guarded`].
struct Seed<'s, S> {
    inner: S,
    state: &'s State,
    slot: Slot,
}

impl<'s, S> Seed<'s, S> {
    fn new(inner: S, state: &'s State, slot: Slot) -> Self {
        Seed { inner, state, slot }
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        let size = size_of::<S::Value>();
        let (cost, credit) = match self.slot {
            Slot::Element => (size.max(1), Credit::paid(size)),
            Slot::Key => (size.max(1) + ENTRY_OVERHEAD, Credit::paid(size)),
            Slot::Inline => (0, Credit::inline(size)),
        };
        self.state.charge::<D::Error>(cost)?;
        self.state.grant(credit);
        self.inner
            .deserialize(Guarded::new(deserializer, self.state))
    }
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* Guarded::new(visitor, self.state))
        }
    )*};
}

macro_rules! forward_fields {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* Guarded::fields(visitor, self.state))
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
        deserialize_map();
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    forward_fields! {
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
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
            self.state.pay::<V::Value, E>(false)?;
            self.inner.$method(v)
        }
    )*};
}

// A string or byte buffer also pays its length: the visitor may copy it.
macro_rules! forward_visit_bytes {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.state.pay::<V::Value, E>(false)?;
            self.state.charge::<E>(v.len())?;
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
    }

    forward_visit_bytes! {
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.state.pay::<V::Value, E>(false)?;
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.state.pay::<V::Value, E>(false)?;
        self.inner.visit_unit()
    }

    // The content of an `Option` or a newtype is stored inside it.
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let state = self.state;
        state.pay::<V::Value, D::Error>(true)?;
        state.nested(|| {
            state.grant(Credit::inline(size_of::<V::Value>()));
            self.inner.visit_some(Guarded::new(deserializer, state))
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        let state = self.state;
        state.pay::<V::Value, D::Error>(true)?;
        state.nested(|| {
            state.grant(Credit::inline(size_of::<V::Value>()));
            self.inner
                .visit_newtype_struct(Guarded::new(deserializer, state))
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let state = self.state;
        state.pay::<V::Value, A::Error>(true)?;
        // An element or a field costs at least a byte.
        state.afford::<A::Error>(seq.size_hint(), 1)?;
        let seq = Seq {
            inner: seq,
            state,
            fields: self.fields,
            cap: state.cap(),
        };
        state.nested(|| self.inner.visit_seq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let state = self.state;
        state.pay::<V::Value, A::Error>(true)?;
        state.afford::<A::Error>(map.size_hint(), 2 + ENTRY_OVERHEAD)?;
        state.nested(|| self.inner.visit_map(Guarded::new(map, state)))
    }

    // Not a level: the variant's content is (see `VariantAccess` below).
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.state.pay::<V::Value, A::Error>(true)?;
        let data = Enum {
            inner: data,
            state: self.state,
            size: size_of::<V::Value>(),
        };
        self.inner.visit_enum(data)
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Guarded<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner
            .deserialize(Guarded::new(deserializer, self.state))
    }
}

// Neither access reports the length it read: serde's collections
// pre-allocate up to 1 MiB from a hint (a hand-written visitor any amount)
// before an element is paid for, at every level of nesting: 60 levels of
// `Vec` made 60 MiB. Without a hint a collection grows by doubling from
// what it holds, as serde's do past 1 MiB anyway: a `Vec<f64>` of 10^6
// elements takes 18 reallocations instead of 3, the extra ones copying
// under 1 MiB in all; one of 10 elements, 3 allocations instead of 1.
/// A sequence's access object: its elements, or the fields of a tuple,
/// struct or variant (`fields`).
struct Seq<'s, A> {
    inner: A,
    state: &'s State,
    fields: bool,
    /// The budget's cap, read once: it cannot change during the visit.
    cap: usize,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'_, A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let seed = Item {
            inner: seed,
            state: self.state,
            fields: self.fields,
            cap: self.cap,
        };
        self.inner.next_element_seed(seed)
    }
}

/// [`Seed`] for a sequence element (a slot of its size), or a field (inside
/// storage its parent paid for: one byte, so that a forged field count
/// cannot loop for free), against a cached cap.
struct Item<'s, S> {
    inner: S,
    state: &'s State,
    fields: bool,
    cap: usize,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Item<'_, S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        let size = size_of::<S::Value>();
        let (cost, credit) = if self.fields {
            (1, Credit::inline(size))
        } else {
            (size.max(1), Credit::paid(size))
        };
        self.state.charge_within::<D::Error>(cost, self.cap)?;
        self.state.grant(credit);
        self.inner
            .deserialize(Guarded::new(deserializer, self.state))
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Guarded<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.inner
            .next_key_seed(Seed::new(seed, self.state, Slot::Key))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner
            .next_value_seed(Seed::new(seed, self.state, Slot::Element))
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
            Seed::new(key, self.state, Slot::Key),
            Seed::new(value, self.state, Slot::Element),
        )
    }
}

/// An enum's access objects, which know the size of the enum: its
/// content is stored inside it, paid for by the visit of the enum.
struct Enum<'s, A> {
    inner: A,
    state: &'s State,
    size: usize,
}

impl<'s, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<'s, A> {
    type Error = A::Error;
    type Variant = Enum<'s, A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let seed = Seed::new(seed, self.state, Slot::Inline);
        let (value, variant) = self.inner.variant_seed(seed)?;
        let variant = Enum {
            inner: variant,
            state: self.state,
            size: self.size,
        };
        Ok((value, variant))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Enum<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let state = self.state;
        let seed = Seed::new(seed, state, Slot::Inline);
        state.nested(|| self.inner.newtype_variant_seed(seed))
    }

    // The content of tuple and struct variants is a level in `visit_seq` or
    // `visit_map`; its visit is that of the enum, already paid for.
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.state.grant(Credit::paid(self.size));
        self.inner
            .tuple_variant(len, Guarded::fields(visitor, self.state))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.state.grant(Credit::paid(self.size));
        self.inner
            .struct_variant(fields, Guarded::fields(visitor, self.state))
    }
}

#[cfg(test)]
mod tests;
