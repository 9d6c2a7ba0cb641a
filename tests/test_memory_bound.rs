//! The decode budget bounds memory: adversarial payloads, crafted byte by
//! byte, decoded under a counting global allocator, must make decoding
//! request at most `8 * max_bytes + SLACK` bytes at any moment (the bound
//! stated on `Limits::max_bytes`), and forged lengths of zero-sized elements
//! must fail before the first element. A long `then` chain costs a bounded
//! number of bytes per stage, from its building to its decoding.
//!
//! The counters are global, and only allocations of the measuring thread are
//! counted: the tests take turns (`serial`), and one of them runs every
//! decode case in turn.

// `GlobalAlloc` is an unsafe trait; this impl only forwards to `System`,
// with the same layouts and pointers, and counts sizes on the side.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serfn::codec::decode_value;
use serfn::{Error, Limits, SerFn};

mod support;

struct Counting;

static CURRENT: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn measuring() -> bool {
    MEASURING.try_with(Cell::get).unwrap_or(false)
}

fn grow(bytes: usize) {
    let now = CURRENT.fetch_add(bytes as isize, Relaxed) + bytes as isize;
    PEAK.fetch_max(now, Relaxed);
}

fn shrink(bytes: usize) {
    CURRENT.fetch_sub(bytes as isize, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() && measuring() {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() && measuring() {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if measuring() {
            shrink(layout.size());
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    // Counted as the old and the new block both live, as when realloc moves.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let counted = measuring();
        if counted {
            grow(new_size);
        }
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if counted {
            shrink(if new.is_null() {
                new_size
            } else {
                layout.size()
            });
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The budget of every case: small, so that the test is quick.
const M: usize = 1 << 20;
/// The factor of the stated bound.
const K: usize = 8;
/// The constant of the stated bound.
const SLACK: usize = 64 << 10;

fn limits() -> Limits {
    Limits::default().max_bytes(M)
}

/// Decodes `bytes` as `T` under `limits()`, and returns the result and the
/// most bytes requested from the allocator at once during the decode
/// (dropping the value included).
fn measure<T: DeserializeOwned>(bytes: &[u8]) -> (Result<(), Error>, usize) {
    CURRENT.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    MEASURING.with(|m| m.set(true));
    let result = decode_value::<T>(bytes, &limits()).map(drop);
    MEASURING.with(|m| m.set(false));
    (result, PEAK.load(Relaxed).max(0) as usize)
}

/// What the cases found: (name, peak bytes, accepted).
type Report = Vec<(String, usize, bool)>;

/// Decodes `bytes` as `T`, checks the peak against the bound and the
/// outcome against `accept`, and records the case.
fn case<T: DeserializeOwned>(
    report: &mut Report,
    name: &str,
    bytes: &[u8],
    accept: bool,
) -> Option<Error> {
    assert!(
        bytes.len() <= M,
        "{name}: the input itself exceeds the budget"
    );
    let (result, peak) = measure::<T>(bytes);
    report.push((name.to_owned(), peak, result.is_ok()));
    assert!(
        peak <= K * M + SLACK,
        "{name}: {peak} bytes at the peak, over {K} * {M} + {SLACK}"
    );
    match result {
        Ok(()) => {
            assert!(accept, "{name}: accepted");
            None
        }
        Err(err) => {
            assert!(!accept, "{name}: refused: {err:?}");
            Some(err)
        }
    }
}

fn too_large(err: Option<Error>, name: &str) -> u64 {
    match err {
        Some(Error::TooLarge { len, limit }) if limit == M => len,
        other => panic!("{name}: {other:?}"),
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serfn::codec::encode_value(value).unwrap()
}

/// A length prefix, in the build's wire format.
fn len(n: u64) -> Vec<u8> {
    encode(&n)
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A `()` that counts how many of it were decoded.
#[derive(Debug)]
struct Counted;

thread_local! {
    static HANDED: Cell<u64> = const { Cell::new(0) };
}

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer)?;
        HANDED.with(|n| n.set(n.get() + 1));
        Ok(Counted)
    }
}

fn handed() -> u64 {
    HANDED.with(|n| n.replace(0))
}

#[derive(Deserialize, Debug)]
struct Empty {}

#[derive(Debug)]
struct Pad(#[allow(dead_code, reason = "only its size matters")] [u8; 256]);

impl Default for Pad {
    fn default() -> Self {
        Pad([0; 256])
    }
}

/// 256 bytes of memory, no bytes on the wire.
#[derive(Deserialize, Debug)]
struct Skipped {
    #[serde(skip)]
    _pad: Pad,
}

/// A chain of boxes as deep as the depth limit lets it.
#[derive(Deserialize, Debug)]
struct Link(#[allow(dead_code, reason = "only decoded")] Option<Box<Link>>);

#[derive(Deserialize, Debug)]
enum Chain {
    More(#[allow(dead_code, reason = "only decoded")] Box<Chain>),
    End,
}

/// Nested vectors, as deep as the input says.
#[derive(Deserialize, Debug)]
struct Nest(#[allow(dead_code, reason = "only decoded")] Vec<Nest>);

/// One measuring test at a time: the counters are global.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Heap bytes per stage of a `then` chain built by appending, called,
/// encoded, decoded and called again, all alive at the end: the chain's
/// `Vec` of stages (16), its bytes (41), the decoded chain (16 + 16 per
/// stage), with room for the `Vec`s' doubling. At 1,000,000 stages that is
/// under 200 MB, malloc's overhead included.
const CHAIN_BYTES_PER_STAGE: usize = 160;

#[test]
fn a_then_chain_costs_a_bounded_number_of_bytes_per_stage() {
    let _serial = serial();
    const STAGES: u64 = 100_000;
    let inc: SerFn<u64, u64> = serfn::closure!("memory::inc", [], move |x: u64| -> u64 { x + 1 });
    // Layouts traced and the registry built before measuring: once per process.
    let warm: SerFn<u64, u64> =
        serfn::from_bytes(&inc.clone().then(inc.clone()).to_bytes().unwrap()).unwrap();
    assert_eq!(warm.call(0), 2);

    CURRENT.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    MEASURING.with(|m| m.set(true));
    let mut chain = inc.clone();
    for _ in 1..STAGES {
        chain = chain.then(inc.clone());
    }
    assert_eq!(chain.call(0), STAGES);
    let bytes = chain.to_bytes().unwrap();
    let decoded: SerFn<u64, u64> = Limits::default()
        .max_bytes(1 << 30)
        .from_bytes(&bytes)
        .unwrap();
    assert_eq!(decoded.call(1), STAGES + 1);
    MEASURING.with(|m| m.set(false));
    let peak = PEAK.load(Relaxed).max(0) as usize;
    drop((chain, bytes, decoded));

    let per_stage = peak / STAGES as usize;
    eprintln!("a {STAGES}-stage chain: {peak} bytes at the peak, {per_stage} per stage");
    assert!(
        per_stage <= CHAIN_BYTES_PER_STAGE,
        "{per_stage} bytes per stage at the peak, over {CHAIN_BYTES_PER_STAGE}"
    );
}

#[test]
fn decoding_stays_within_the_stated_bound() {
    let _serial = serial();
    let mut report = Report::new();
    let huge = len(1 << 60);
    let n = M as u64;

    // Zero-sized elements: a byte each; a forged length fails at once.
    for (name, bytes, accept) in [
        ("Vec<()> of 2^60", huge.clone(), false),
        ("Vec<()> of M + 1", len(n + 1), false),
        ("Vec<()> of M", len(n), true),
    ] {
        let err = case::<Vec<Counted>>(&mut report, name, &bytes, accept);
        if !accept {
            assert!(too_large(err, name) > n);
        }
        let expected = if accept { n } else { 0 };
        assert_eq!(handed(), expected, "{name}: elements handed out");
    }
    let err = case::<Vec<Empty>>(&mut report, "Vec<Empty> of 2^60", &huge, false);
    assert_eq!(too_large(err, "Vec<Empty>"), 1 << 60);
    case::<Vec<Empty>>(&mut report, "Vec<Empty> of M", &len(n), true);

    // Elements of skipped fields: 256 bytes each, none on the wire.
    let per = n / 256;
    case::<Vec<Skipped>>(&mut report, "Vec<Skipped> of 2^60", &huge, false);
    case::<Vec<Skipped>>(&mut report, "Vec<Skipped> of M/256", &len(per), true);
    case::<Vec<Skipped>>(
        &mut report,
        "Vec<Skipped> of M/256 + 1",
        &len(per + 1),
        false,
    );
    let per = n / (256 + 8);
    case::<Vec<Box<Skipped>>>(&mut report, "Vec<Box<Skipped>> of 2^60", &huge, false);
    case::<Vec<Box<Skipped>>>(&mut report, "Vec<Box<Skipped>> of M/264", &len(per), true);
    case::<Vec<Box<Skipped>>>(
        &mut report,
        "Vec<Box<Skipped>> of M/264 + 1",
        &len(per + 1),
        false,
    );

    // Boxed primitives: the slot pays the pointer, the value its own size
    // unless the slot covers it.
    let ones = |count: u64| concat(&[&len(count), &vec![1u8; count as usize]]);
    case::<Vec<Box<u128>>>(&mut report, "Vec<Box<u128>> of M/24", &ones(n / 24), true);
    case::<Vec<Box<u128>>>(
        &mut report,
        "Vec<Box<u128>> of M/24 + 1",
        &ones(n / 24 + 1),
        false,
    );
    case::<Vec<Box<u64>>>(&mut report, "Vec<Box<u64>> of M/8", &ones(n / 8), true);
    case::<Vec<Box<u64>>>(
        &mut report,
        "Vec<Box<u64>> of M/8 + 1",
        &ones(n / 8 + 1),
        false,
    );
    case::<Vec<u64>>(&mut report, "Vec<u64> of M/8", &ones(n / 8), true);
    case::<Vec<u8>>(&mut report, "Vec<u8> of M - 5", &ones(n - 5), true);

    // Nested vectors, each level claiming what the budget has left or 2^60,
    // then the input ends: no level may pre-allocate from its claim.
    let claims = |claim: &dyn Fn(u64) -> u64| {
        let mut bytes = Vec::new();
        for level in 0..60 {
            bytes.extend(len(claim(level)));
        }
        bytes
    };
    let under = claims(&|level| n / 2 - 64 * level);
    case::<Nest>(&mut report, "Nest: 60 levels claiming M/2", &under, false);
    case::<Nest>(
        &mut report,
        "Nest: 60 levels claiming 2^60",
        &claims(&|_| 1 << 60),
        false,
    );
    let mut vvv = len(1);
    vvv.extend(len(1));
    vvv.extend(len(n / 8 - 64));
    case::<Vec<Vec<Vec<u64>>>>(&mut report, "Vec<Vec<Vec<u64>>> claiming M/8", &vvv, false);

    // Maps and sets of tiny or zero-sized keys and values.
    let err = case::<HashMap<(), ()>>(&mut report, "HashMap<(), ()> of 2^60", &huge, false);
    too_large(err, "HashMap");
    let err = case::<BTreeMap<(), ()>>(&mut report, "BTreeMap<(), ()> of 2^60", &huge, false);
    too_large(err, "BTreeMap");
    let entries = n / 18;
    case::<HashMap<(), ()>>(&mut report, "HashMap<(), ()> of M/18", &len(entries), true);
    case::<BTreeMap<(), ()>>(
        &mut report,
        "BTreeMap<(), ()> of M/18 + 1",
        &len(entries + 1),
        false,
    );
    let distinct = |count: u64, width: usize| {
        let mut bytes = len(count);
        for key in 0..count {
            let key = encode(&key);
            assert!(key.len() <= width);
            bytes.extend(key);
        }
        bytes
    };
    // u32 keys: 4 + 16 + 1 bytes an entry; their varints fit 3 bytes.
    let entries = n / 21;
    // A `()` value takes no bytes after its key.
    let keys = |count| distinct(count, 3);
    case::<HashMap<u32, ()>>(
        &mut report,
        "HashMap<u32, ()> of M/21",
        &keys(entries),
        true,
    );
    case::<BTreeMap<u32, ()>>(
        &mut report,
        "BTreeMap<u32, ()> of M/21",
        &keys(entries),
        true,
    );
    case::<HashMap<u32, ()>>(
        &mut report,
        "HashMap<u32, ()> of M/21 + 1",
        &keys(entries + 1),
        false,
    );
    // As many u32 as the input can hold: 4 bytes each, 800,000 in all.
    let many = distinct(200_000, 5);
    case::<HashSet<u32>>(&mut report, "HashSet<u32> of 200,000", &many, true);
    case::<BTreeSet<u32>>(&mut report, "BTreeSet<u32> of 200,000", &many, true);
    case::<HashSet<u16>>(
        &mut report,
        "HashSet<u16> of 2^16",
        &distinct(1 << 16, 3),
        true,
    );
    case::<BTreeSet<u16>>(
        &mut report,
        "BTreeSet<u16> of 2^16",
        &distinct(1 << 16, 3),
        true,
    );

    // Chains of boxes: as long as the depth limit allows, in many slots.
    let links = |count: u64, depth: usize| {
        let mut bytes = len(count);
        for _ in 0..count {
            bytes.extend(vec![1u8; depth]);
            bytes.push(0);
        }
        bytes
    };
    let depth = Limits::DEFAULT_MAX_DEPTH / 2 - 1;
    // 8 bytes for the slot, 16 per link: 1016 bytes an element.
    case::<Vec<Link>>(
        &mut report,
        "Vec<Link> of M/1016, 63 deep",
        &links(n / 1016, depth),
        true,
    );
    let over = links(n / 1016 + 1, depth);
    case::<Vec<Link>>(
        &mut report,
        "Vec<Link> of M/1016 + 1, 63 deep",
        &over,
        false,
    );
    let chains = |count: u64, depth: usize| {
        let mut bytes = len(count);
        for _ in 0..count {
            bytes.extend(vec![0u8; depth]);
            bytes.push(1);
        }
        bytes
    };
    let depth = Limits::DEFAULT_MAX_DEPTH - 2;
    // 8 bytes for the slot, 8 per link: 1016 bytes an element.
    case::<Vec<Chain>>(
        &mut report,
        "Vec<Chain> of M/1016, 126 deep",
        &chains(n / 1016, depth),
        true,
    );
    let over = chains(n / 1016 + 1, depth);
    case::<Vec<Chain>>(
        &mut report,
        "Vec<Chain> of M/1016 + 1, 126 deep",
        &over,
        false,
    );
    let somes = |count: u64| concat(&[&len(count), &[1, 1].repeat(count as usize)]);
    case::<Vec<Option<Box<u64>>>>(
        &mut report,
        "Vec<Option<Box<u64>>> of M/8",
        &somes(n / 8),
        true,
    );

    // Strings: the slot and the bytes copied.
    let strings = |count: u64, each: usize| {
        let mut bytes = len(count);
        for _ in 0..count {
            bytes.extend(len(each as u64));
            bytes.extend(vec![b'x'; each]);
        }
        bytes
    };
    case::<Vec<String>>(
        &mut report,
        "Vec<String> of M/25 of 1 byte",
        &strings(n / 25, 1),
        true,
    );
    case::<Vec<String>>(
        &mut report,
        "Vec<String> of M/25 + 1 of 1 byte",
        &strings(n / 25 + 1, 1),
        false,
    );
    case::<String>(
        &mut report,
        "String of M - 16",
        &strings(1, M - 16)[1..],
        true,
    );
    case::<String>(
        &mut report,
        "String of 2^60",
        &concat(&[&huge, b"abc"]),
        false,
    );

    envelope_cases(&mut report);

    for (name, peak, accepted) in &report {
        let ratio = *peak as f64 / M as f64;
        let outcome = if *accepted { "ok" } else { "refused" };
        println!("{name:40} {outcome:8} peak {peak:>9} bytes = {ratio:.2} M");
    }
}

/// 256 bytes of memory, no bytes on the wire: a capture's elements.
#[derive(serde::Serialize, Deserialize, Debug, Default)]
struct Padded {
    #[serde(skip)]
    _pad: Pad,
}

impl serde::Serialize for Pad {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

#[derive(serde::Serialize, Deserialize)]
struct PaddedCapture {
    items: Vec<Padded>,
}

#[serfn::register(name = "memory::PaddedCapture")]
impl serfn::Call<()> for PaddedCapture {
    type Output = usize;
    fn call(&self, (): ()) -> usize {
        self.items.len()
    }
}

/// Forged envelopes: a registered function whose capture claims `count`
/// elements that take 256 bytes each and none on the wire, checksum valid.
fn envelope_cases(report: &mut Report) {
    // Traced and registered before measuring: that happens once per process.
    let honest = SerFn::new(PaddedCapture { items: Vec::new() });
    let wire = support::Wire::parse(&honest.to_bytes().unwrap());
    serfn::from_bytes::<SerFn<(), usize>>(&wire.seal()).unwrap();
    let forged = |count: u64| support::seal(&wire.with_capture(&len(count)));
    let n = M as u64;
    for (name, count, accept) in [
        ("envelope, capture of 2^60 padded", 1 << 60, false),
        ("envelope, capture of M/256 + 1 padded", n / 256 + 1, false),
        ("envelope, capture of M/300 padded", n / 300, true),
    ] {
        CURRENT.store(0, Relaxed);
        PEAK.store(0, Relaxed);
        MEASURING.with(|m| m.set(true));
        let result = limits().from_bytes::<SerFn<(), usize>>(&forged(count));
        let calls = result.map(|f| f.call(()));
        MEASURING.with(|m| m.set(false));
        let peak = PEAK.load(Relaxed).max(0) as usize;
        report.push((name.to_owned(), peak, calls.is_ok()));
        assert!(peak <= K * M + SLACK, "{name}: {peak} bytes at the peak");
        match &calls {
            Ok(items) => assert!(accept && *items == count as usize, "{name}: {items}"),
            Err(Error::TooLarge { limit, .. }) => assert!(!accept && *limit == M, "{name}"),
            Err(other) => panic!("{name}: {other:?}"),
        }
    }
}
