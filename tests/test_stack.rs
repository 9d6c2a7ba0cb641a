//! The depth limit alone keeps decoding within a small stack: the deepest
//! input the default limits accept decodes on a thread of [`SMALL_STACK`].
//!
//! serfn grows no stack segments of its own (no `stacker`): a decode
//! recurses once per level of nesting, and [`Limits::DEFAULT_MAX_DEPTH`]
//! bounds the levels. CI runs it in debug, whose frames are the largest,
//! and in release.

use serde::{Deserialize, Serialize};
use serfn::{DynFn, Error, Limits, SerFn};

/// Half the 2 MiB a `std::thread` gets by default, and the whole of
/// Windows' main thread, in a debug build: measured, the deepest chain of
/// functions needs 448-512 KiB there (about 3.5 KiB a level, 128 levels).
/// Optimized, it needs 64-128 KiB, so a release build is held to an eighth of
/// the default (and half of macOS's 512 KiB for threads made outside Rust).
const SMALL_STACK: usize = if cfg!(debug_assertions) {
    1024 * 1024
} else {
    256 * 1024
};

#[derive(Serialize, Deserialize)]
enum List {
    Cons(u8, Box<List>),
    Nil,
}

#[derive(Serialize, Deserialize)]
struct Deep {
    list: List,
}

#[serfn::register(name = "stack::Deep")]
impl serfn::Call<()> for Deep {
    type Output = usize;
    fn call(&self, (): ()) -> usize {
        let mut len = 0;
        let mut node = &self.list;
        while let List::Cons(_, next) = node {
            len += 1;
            node = next;
        }
        len
    }
}

/// Functions in captures: each level crosses typetag and erased-serde,
/// whose frames are the largest a decode has.
#[derive(Serialize, Deserialize)]
struct Nest {
    next: Option<DynFn>,
}

#[serfn::register(name = "stack::Nest")]
impl serfn::Call<()> for Nest {
    type Output = usize;
    fn call(&self, (): ()) -> usize {
        0
    }
}

fn list(len: usize) -> SerFn<(), usize> {
    let mut list = List::Nil;
    for _ in 0..len {
        list = List::Cons(7, Box::new(list));
    }
    SerFn::new(Deep { list })
}

fn nest(depth: usize) -> SerFn<(), usize> {
    let mut f = SerFn::new(Nest { next: None });
    for _ in 1..depth {
        f = SerFn::new(Nest {
            next: Some(f.into_dyn()),
        });
    }
    f
}

/// The encoding of the largest `n` whose `make(n)` the default limits
/// accept, found on this (large) stack; and that `n`.
fn deepest_accepted(make: fn(usize) -> SerFn<(), usize>) -> (usize, Vec<u8>) {
    let mut accepted = None;
    for n in 1.. {
        let bytes = make(n).to_bytes().unwrap();
        match SerFn::<(), usize>::from_bytes(&bytes) {
            Ok(_) => accepted = Some((n, bytes)),
            Err(Error::TooDeep { limit }) => {
                assert_eq!(limit, Limits::DEFAULT_MAX_DEPTH);
                return accepted.expect("the shallowest input is accepted");
            }
            Err(other) => panic!("{n}: {other:?}"),
        }
    }
    unreachable!()
}

/// Decodes `bytes` and calls the result on a thread of [`SMALL_STACK`].
fn decode_on_small_stack(bytes: Vec<u8>) -> usize {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || SerFn::<(), usize>::from_bytes(&bytes).map(|f| f.call(())))
        .unwrap()
        .join()
        .expect("the decode overflowed the small stack")
        .unwrap()
}

/// Runs `test` on a thread with a large stack: finding the deepest input
/// encodes and drops values deeper than the limit.
fn on_large_stack(test: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(test)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn the_deepest_accepted_data_decodes_on_a_small_stack() {
    on_large_stack(|| {
        let (len, bytes) = deepest_accepted(list);
        assert!(len >= 100, "{len}");
        assert_eq!(decode_on_small_stack(bytes), len);
    });
}

#[test]
fn the_deepest_accepted_chain_of_functions_decodes_on_a_small_stack() {
    on_large_stack(|| {
        let (depth, bytes) = deepest_accepted(nest);
        assert!(depth >= 10, "{depth}");
        assert_eq!(decode_on_small_stack(bytes), 0);
    });
}
