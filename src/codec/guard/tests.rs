use std::collections::HashMap;
use std::marker::PhantomData;

use bincode::error::DecodeError;
use bincode::serde::BorrowedSerdeDecoder;
use serde::{Deserialize, Serialize};

use super::super::take_stashed;
use super::state::MAX_MESSAGE_LEN;
use super::*;
use crate::error::Error;

const LIMITS: Limits = Limits {
    max_bytes: 1 << 16,
    max_depth: 128,
    min_budget: 0,
};

fn limits(max_bytes: usize, max_depth: usize) -> Limits {
    Limits {
        max_bytes,
        max_depth,
        min_budget: 0,
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
}

fn plain<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> T {
    bincode::serde::borrow_decode_from_slice(bytes, bincode::config::standard())
        .unwrap()
        .0
}

fn guarded<'de, T: Deserialize<'de>>(bytes: &'de [u8], limits: &Limits) -> Result<T, DecodeError> {
    let mut decoder = BorrowedSerdeDecoder::from_slice(bytes, bincode::config::standard(), ());
    deserialize_seed(decoder.as_deserializer(), limits, PhantomData)
}

/// Decodes `bytes` as `T`, expecting the guard to refuse them.
fn refused<'de, T: Deserialize<'de> + fmt::Debug>(bytes: &'de [u8], limits: &Limits) -> Error {
    let err = guarded::<T>(bytes, limits).unwrap_err();
    take_stashed().unwrap_or_else(|| panic!("no stashed error, bincode said: {err}"))
}

fn assert_too_deep(err: Error, limit: usize) {
    assert!(
        matches!(err, Error::TooDeep { limit: l } if l == limit),
        "{err:?}"
    );
}

fn assert_too_large(err: Error, len: u64, limit: usize) {
    let expected = (len, limit);
    assert!(
        matches!(err, Error::TooLarge { len, limit } if (len, limit) == expected),
        "{err:?}"
    );
}

fn length_prefix(len: u64) -> Vec<u8> {
    encode(&len)
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum List {
    Cons(u8, Box<List>),
    Nil,
}

/// `n` `Cons` cells and a `Nil`, built by hand: n levels.
fn list_bytes(n: usize) -> Vec<u8> {
    let mut bytes = [0, 7].repeat(n);
    bytes.push(1);
    bytes
}

/// What decoding `list_bytes(3)` charges: 2 bytes for the fields of each
/// `Cons`, and for each of the 3 boxed cells (2 `Cons`, the `Nil`) its 16
/// bytes: 3 * 2 + 3 * 16.
const LIST_3_COST: usize = 54;

/// The bytes the last decode on this thread charged.
fn charged() -> usize {
    STATE.with(|state| state.used.get())
}

fn list(n: usize) -> List {
    (0..n).fold(List::Nil, |tail, _| List::Cons(7, Box::new(tail)))
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Node {
    next: Option<Box<Node>>,
}

/// `n + 1` nodes, built by hand: 2n + 1 levels.
fn node_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![1; n];
    bytes.push(0);
    bytes
}

/// A byte buffer deserialized with `deserialize_byte_buf`, as
/// `serde_bytes::ByteBuf` is.
#[derive(Debug, PartialEq)]
struct ByteBuf(Vec<u8>);

impl Serialize for ByteBuf {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BufVisitor;
        impl Visitor<'_> for BufVisitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        deserializer.deserialize_byte_buf(BufVisitor)
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(u32, u32),
    Poly {
        points: Vec<(i16, i16)>,
        closed: bool,
    },
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Unit;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Meters(f32);

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Pair(u8, char);

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Inner {
    name: String,
    tags: Vec<String>,
    shape: Shape,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Sample<'a> {
    small: (u8, u16, u32, u64, usize),
    signed: (i8, i16, i32, i64, isize),
    wide: (i128, u128),
    floats: (f32, f64),
    flag: bool,
    letter: char,
    text: String,
    borrowed: &'a str,
    raw: &'a [u8],
    buf: ByteBuf,
    numbers: Vec<u32>,
    map: HashMap<String, Option<u32>>,
    maybe: Option<Box<Inner>>,
    nothing: Option<u8>,
    shapes: Vec<Shape>,
    unit: (),
    unit_struct: Unit,
    newtype: Meters,
    pair: Pair,
    list: List,
}

fn sample() -> Sample<'static> {
    Sample {
        small: (u8::MAX, 300, 70_000, u64::MAX, 12),
        signed: (i8::MIN, -300, -70_000, i64::MIN, -12),
        wide: (i128::MIN, u128::MAX),
        floats: (1.5, -0.1),
        flag: true,
        letter: 'λ',
        text: "hello, wörld".to_owned(),
        borrowed: "borrowed",
        raw: b"\x00\xffraw",
        buf: ByteBuf(vec![1, 2, 3, 255]),
        numbers: (0..100).collect(),
        map: HashMap::from([("a".to_owned(), Some(1)), ("b".to_owned(), None)]),
        maybe: Some(Box::new(Inner {
            name: "inner".to_owned(),
            tags: vec!["x".to_owned(), String::new()],
            shape: Shape::Rect(3, 4),
        })),
        nothing: None,
        shapes: vec![
            Shape::Empty,
            Shape::Circle(2.0),
            Shape::Rect(1, 2),
            Shape::Poly {
                points: vec![(0, 0), (-1, 5)],
                closed: true,
            },
        ],
        unit: (),
        unit_struct: Unit,
        newtype: Meters(9.5),
        pair: Pair(7, '\u{10FFFF}'),
        list: List::Cons(1, Box::new(List::Cons(2, Box::new(List::Nil)))),
    }
}

#[test]
fn round_trip_matches_plain_decode() {
    let value = sample();
    let bytes = encode(&value);
    let expected: Sample<'_> = plain(&bytes);
    assert_eq!(expected, value);
    let decoded: Sample<'_> = guarded(&bytes, &LIMITS).unwrap();
    assert_eq!(decoded, value);
    assert!(take_stashed().is_none());
}

#[test]
fn hand_built_bytes_match_the_encoding() {
    assert_eq!(encode(&list(2)), list_bytes(2));
    let node = Node {
        next: Some(Box::new(Node { next: None })),
    };
    assert_eq!(encode(&node), node_bytes(1));
}

#[test]
fn deep_list_is_too_deep_without_overflow() {
    let bytes = list_bytes(100_000);
    let err = refused::<List>(&bytes, &LIMITS);
    assert_too_deep(err, 128);
}

#[test]
fn deep_option_chain_is_too_deep_without_overflow() {
    let bytes = node_bytes(100_000);
    let err = refused::<Node>(&bytes, &LIMITS);
    assert_too_deep(err, 128);
}

#[test]
fn depth_at_the_limit_decodes_and_one_over_fails() {
    fn at_the_limit<'de, T>(bytes: &'de [u8], levels: usize)
    where
        T: Deserialize<'de> + fmt::Debug,
    {
        guarded::<T>(bytes, &limits(1 << 16, levels)).unwrap();
        let err = refused::<T>(bytes, &limits(1 << 16, levels - 1));
        assert_too_deep(err, levels - 1);
    }
    for n in 1..5 {
        at_the_limit::<List>(&list_bytes(n), n);
        at_the_limit::<Node>(&node_bytes(n), 2 * n + 1);
    }
    // Sequences, maps, `Some` and newtype structs and variants are
    // levels; enums, unit variants and scalars are not.
    let bytes = encode(&vec![vec![HashMap::from([(1u8, Some(Meters(1.0)))])]]);
    at_the_limit::<Vec<Vec<HashMap<u8, Option<Meters>>>>>(&bytes, 5);
    at_the_limit::<Shape>(&encode(&Shape::Circle(1.0)), 1);
    at_the_limit::<Shape>(&encode(&Shape::Rect(1, 2)), 1);
    let poly = Shape::Poly {
        points: vec![(0, 0)],
        closed: false,
    };
    at_the_limit::<Shape>(&encode(&poly), 3);
    guarded::<Shape>(&encode(&Shape::Empty), &limits(0, 0)).unwrap();
    guarded::<List>(&list_bytes(0), &limits(0, 0)).unwrap();
    assert_eq!(guarded::<u32>(&encode(&5u32), &limits(0, 0)).unwrap(), 5);
}

#[test]
fn forged_length_of_zero_sized_elements_is_too_large() {
    let bytes = length_prefix(1 << 60);
    // Refused before the first element, with the length it claims.
    let err = refused::<Vec<()>>(&bytes, &limits(1000, 8));
    assert_too_large(err, 1 << 60, 1000);
    assert_eq!(charged(), 0);
}

#[test]
fn budget_counts_elements_and_entries_of_the_whole_decode() {
    let exact = encode(&vec![(); 1000]);
    assert_eq!(
        guarded::<Vec<()>>(&exact, &limits(1000, 8)).unwrap().len(),
        1000
    );
    let err = refused::<Vec<()>>(&exact, &limits(999, 8));
    assert_too_large(err, 1000, 999);

    // 2 outer elements of 24 bytes (a `Vec<u8>`) + 3 + 3 inner ones of a
    // byte; the inner vectors fill slots already paid for.
    let bytes = encode(&vec![vec![1u8, 2, 3], vec![4, 5, 6]]);
    guarded::<Vec<Vec<u8>>>(&bytes, &limits(54, 8)).unwrap();
    assert_too_large(refused::<Vec<Vec<u8>>>(&bytes, &limits(53, 8)), 54, 53);

    // Per entry: its key (a byte), its value (a byte at least) and
    // ENTRY_OVERHEAD; two entries are refused at once under 35.
    let bytes = encode(&HashMap::from([(1u8, ()), (2, ())]));
    guarded::<HashMap<u8, ()>>(&bytes, &limits(36, 8)).unwrap();
    assert_too_large(refused::<HashMap<u8, ()>>(&bytes, &limits(35, 8)), 36, 35);
    assert_eq!(charged(), 0);
}

#[test]
fn forged_lengths_of_strings_and_bytes_fail_without_allocating() {
    // Decoded plainly, each of these makes bincode allocate 2^40 or 2^60
    // bytes, and the process aborts.
    for shift in [40, 60] {
        let mut bytes = length_prefix(1 << shift);
        bytes.extend_from_slice(b"abc");
        assert!(guarded::<String>(&bytes, &LIMITS).is_err());
        assert!(guarded::<ByteBuf>(&bytes, &LIMITS).is_err());
        assert!(guarded::<Vec<u8>>(&bytes, &LIMITS).is_err());
        assert!(guarded::<&str>(&bytes, &LIMITS).is_err());
    }
}

/// Passes a `T` through, and its errors as serde errors made from their
/// `Display`, as `erased_serde` does.
struct Rewrap<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Rewrap<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer)
            .map(Rewrap)
            .map_err(de::Error::custom)
    }
}

#[derive(Deserialize)]
#[allow(dead_code, reason = "only decoded")]
enum Chain {
    Link(Rewrap<Box<Chain>>),
    End,
}

#[test]
fn error_messages_stay_short_on_the_way_up() {
    let bytes = [vec![0; 100_000], vec![1]].concat();
    // Without the cap, the message would be over 2^24 bytes long.
    let err = guarded::<Chain>(&bytes, &limits(1 << 16, 24))
        .err()
        .unwrap();
    let len = err.to_string().len();
    assert!(len < 4 * MAX_MESSAGE_LEN, "{len}");
    assert_too_deep(take_stashed().unwrap(), 24);
    // Short messages are left as they are.
    let bytes = [0, 0, 7];
    let short = guarded::<Chain>(&bytes, &LIMITS).err().unwrap();
    let plain =
        bincode::serde::borrow_decode_from_slice::<Chain, _>(&bytes, bincode::config::standard());
    assert_eq!(short.to_string(), plain.err().unwrap().to_string());
}

#[test]
fn bincode_refusals_pass_through() {
    struct Any;
    impl<'de> Deserialize<'de> for Any {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            de::IgnoredAny::deserialize(deserializer).map(|_| Any)
        }
    }
    let bytes = encode(&1u8);
    let err = guarded::<Any>(&bytes, &LIMITS).err().unwrap();
    assert!(matches!(err, DecodeError::Serde(_)), "{err:?}");
    assert!(take_stashed().is_none());
}

/// Bytes holding a `T` encoded on its own, decoded with a nested call of
/// [`deserialize_seed`] under `LIMITS`.
#[derive(Debug, PartialEq)]
struct Blob<T>(T);

impl<T: Serialize> Serialize for Blob<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&encode(&self.0))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Blob<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = <&'de [u8]>::deserialize(deserializer)?;
        guarded(bytes, &LIMITS).map(Blob).map_err(de::Error::custom)
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Outer {
    before: u32,
    blob: Blob<Inner>,
    after: List,
}

#[test]
fn nested_decode_works_and_outer_limits_still_apply() {
    let inner = Inner {
        name: "nested".to_owned(),
        tags: vec!["t".to_owned()],
        shape: Shape::Circle(1.0),
    };
    let outer = Outer {
        before: 1,
        blob: Blob(inner),
        after: List::Cons(2, Box::new(List::Nil)),
    };
    let bytes = encode(&outer);
    assert_eq!(guarded::<Outer>(&bytes, &LIMITS).unwrap(), outer);
    assert!(take_stashed().is_none());

    // After the nested decode returns, the outer one is still bounded.
    let mut deep = bytes[..bytes.len() - list_bytes(1).len()].to_vec();
    deep.extend(list_bytes(100_000));
    let err = refused::<Outer>(&deep, &limits(1 << 16, 20));
    assert_too_deep(err, 20);

    // The nested decode continues the outer depth and budget: its own
    // limits alone would let these through.
    let deep_blob = encode(&(Blob(list(50)), 0u8));
    assert_eq!(
        guarded::<(Blob<List>, u8)>(&deep_blob, &LIMITS).unwrap().1,
        0
    );
    let err = refused::<(Blob<List>, u8)>(&deep_blob, &limits(1 << 16, 40));
    assert_too_deep(err, 40);

    let units = encode(&vec![Blob(vec![(); 600]), Blob(vec![(); 600])]);
    assert_eq!(
        guarded::<Vec<Blob<Vec<()>>>>(&units, &LIMITS)
            .unwrap()
            .len(),
        2
    );
    // Per blob: its slot (24), its 3 bytes, the nested `Vec<()>` (24, a value
    // outside the outer one) and its 600 elements: the second blob's elements
    // are refused at once, 1302 bytes in.
    let err = refused::<Vec<Blob<Vec<()>>>>(&units, &limits(1000, 8));
    assert_too_large(err, 1302, 1000);

    // Where the nested limits are the tighter ones, they apply.
    let deeper_blob = encode(&(Blob(list(200)), 0u8));
    let err = refused::<(Blob<List>, u8)>(&deeper_blob, &limits(1 << 16, 1000));
    assert_too_deep(err, 128);

    // Nothing is left behind: a fresh decode gets its full limits.
    guarded::<List>(&list_bytes(3), &limits(LIST_3_COST, 3)).unwrap();
}

#[test]
fn nothing_is_left_behind_after_an_error_or_a_panic() {
    let bytes = list_bytes(3);
    assert!(guarded::<List>(&list_bytes(100), &limits(10, 3)).is_err());
    take_stashed();
    guarded::<List>(&bytes, &limits(LIST_3_COST, 3)).unwrap();
    assert_eq!(charged(), LIST_3_COST);
    let err = refused::<List>(&bytes, &limits(LIST_3_COST - 1, 3));
    assert_too_large(err, LIST_3_COST as u64, LIST_3_COST - 1);

    struct Panics;
    impl<'de> Deserialize<'de> for Panics {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            u8::deserialize(deserializer)?;
            panic!("deserialize panics two levels deep");
        }
    }
    let panicking = encode(&vec![Some(1u8)]);
    let caught = std::panic::catch_unwind(|| guarded::<Vec<Option<Panics>>>(&panicking, &LIMITS));
    assert!(caught.is_err());
    guarded::<List>(&bytes, &limits(LIST_3_COST, 3)).unwrap();
}
