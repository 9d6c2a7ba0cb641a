//! What a serialized function's failure looks like to its caller: a
//! `Failure` returned with `?` keeps its message, source chain and type name
//! across the wire; a panic keeps where it happened, and its backtrace when
//! the worker's environment enables one.

serfn::test_support!();

use std::{fmt, io};

use serfn::{Error, Failure, Limits, Pool, SerFn};

/// An error with a source, wrapped in an `io::Error` as a reader would.
#[derive(Debug)]
struct BadSetting {
    text: String,
    source: std::num::ParseIntError,
}

impl fmt::Display for BadSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad setting `{}`", self.text)
    }
}

impl std::error::Error for BadSetting {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// `n` parses as it is; `io:n` as if read from a file.
#[serfn::function(name = "failure::setting")]
fn setting(text: String) -> Result<u32, Failure> {
    let Some(value) = text.strip_prefix("io:") else {
        return Ok(text.parse()?);
    };
    let parsed = value.parse().map_err(|source| BadSetting {
        text: value.into(),
        source,
    });
    Ok(parsed.map_err(|bad| io::Error::new(io::ErrorKind::InvalidData, bad))?)
}

#[serfn::function(name = "failure::explode")]
fn explode(x: u32) -> u32 {
    if x == 7 {
        panic!("exploded on {x}");
    }
    x
}

/// Checks the failures `setting` gives for a parse error and for an I/O
/// error with a source.
fn check_failures(call: impl Fn(&str) -> Result<u32, Failure>) {
    assert_eq!(call("12"), Ok(12));

    let parse = call("x").unwrap_err();
    assert_eq!(parse.message(), "invalid digit found in string");
    assert_eq!(parse.chain().count(), 1);
    assert!(parse.type_name().ends_with("ParseIntError"), "{parse:?}");

    let io = call("io:y").unwrap_err();
    assert_eq!(io.to_string(), "bad setting `y`");
    assert_eq!(
        io.chain().collect::<Vec<_>>(),
        ["bad setting `y`", "invalid digit found in string"]
    );
    assert_eq!(
        format!("{io:#}"),
        "bad setting `y`: invalid digit found in string"
    );
    assert!(io.type_name().contains("io::error::Error"), "{io:?}");
    // The same chain, walked as `dyn Error`.
    let as_error = io.as_error();
    assert_eq!(
        as_error.source().map(ToString::to_string).as_deref(),
        Some("invalid digit found in string")
    );
    let report = format!("{io:?}");
    assert!(
        report.contains("Caused by:\n    0: invalid digit found in string"),
        "{report}"
    );
}

#[test]
fn failures_keep_message_chain_and_type_through_a_pool() {
    let pool = Pool::builder().workers(1).build().expect("pool starts");
    let f = setting();
    check_failures(|text| {
        pool.call(&f, text.to_owned())
            .expect("the call itself succeeds")
    });
}

#[test]
fn failures_keep_message_chain_and_type_through_bytes_in_process() {
    let f =
        SerFn::<String, Result<u32, Failure>>::from_bytes(&setting().to_bytes().unwrap()).unwrap();
    // What a worker sends back: the result's bytes, decoded by the caller.
    let g = f.clone().into_dyn();
    check_failures(|text| {
        let args = serfn::codec::encode_value(&text.to_owned()).unwrap();
        let out = g.call_bytes(&args).unwrap();
        serfn::codec::decode_result(&out, &Limits::default()).unwrap()
    });
    check_failures(|text| f.call(text.to_owned()));
}

#[test]
fn a_failure_is_an_error_where_one_is_needed() {
    fn read() -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
        Ok(setting().call("io:z".into())?)
    }
    let boxed = read().unwrap_err();
    assert_eq!(boxed.to_string(), "bad setting `z`");
    assert_eq!(
        boxed.source().unwrap().to_string(),
        "invalid digit found in string"
    );
    let built = Failure::msg("no answer");
    assert_eq!(built.chain().collect::<Vec<_>>(), ["no answer"]);
    assert_eq!(built.clone(), built);
}

/// `Some((file, line))` of a panic's `file:line:column`.
fn file_and_line(location: &str) -> (String, usize) {
    let mut parts = location.rsplitn(3, ':');
    let (_column, line, file) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
    (file.to_owned(), line.parse().unwrap())
}

fn panic_of(pool: &Pool) -> (String, Option<String>, Option<String>, String) {
    match pool.call(&explode(), 7) {
        Err(
            ref error @ Error::Panicked {
                ref message,
                ref location,
                ref backtrace,
                ..
            },
        ) => (
            message.clone(),
            location.clone(),
            backtrace.clone(),
            error.to_string(),
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_panic_names_its_file_and_line() {
    // Backtraces off, whatever the environment of `cargo test`.
    let pool = Pool::builder()
        .workers(1)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .build()
        .expect("pool starts");
    let (message, location, backtrace, shown) = panic_of(&pool);
    assert_eq!(message, "exploded on 7");
    let location = location.expect("a location");
    let (file, line) = file_and_line(&location);
    assert!(file.ends_with("test_failure.rs"), "{location}");
    let source = std::fs::read_to_string(env!("CARGO_MANIFEST_DIR").to_owned() + "/" + &file)
        .expect("the file a location names");
    let panicking = source.lines().nth(line - 1).unwrap();
    assert!(
        panicking.contains(r#"panic!("exploded on {x}")"#),
        "{panicking}"
    );
    assert_eq!(backtrace, None);
    assert!(
        shown.ends_with(&format!("panicked at {location}: exploded on 7")),
        "{shown}"
    );
    // The worker lives on.
    assert_eq!(pool.call(&explode(), 1).unwrap(), 1);
}

#[test]
fn a_panic_carries_a_backtrace_when_enabled() {
    let pool = Pool::builder()
        .workers(1)
        .env("RUST_BACKTRACE", "1")
        .build()
        .expect("pool starts");
    let (_, location, backtrace, shown) = panic_of(&pool);
    assert!(location.is_some());
    let backtrace = backtrace.expect("a backtrace");
    assert!(backtrace.contains("explode"), "{backtrace}");
    // It starts where the default hook's does, below serfn's hook.
    assert!(!backtrace.contains("install_hook"), "{backtrace}");
    // Display keeps to one line.
    assert!(!shown.contains('\n'), "{shown}");
}

#[test]
fn a_long_chain_is_decoded_and_dropped_without_recursion() {
    // The wire form: the type name, then the chain's messages.
    let chain = vec![String::new(); 1_000_000];
    let bytes = serfn::codec::encode_value(&("t", &chain)).unwrap();
    let failure: Failure = serfn::codec::decode_value(&bytes, &Limits::default()).unwrap();
    assert_eq!(failure.chain().count(), chain.len());
    drop(failure.clone());
    // An empty chain, which serfn never writes, reads as an empty message.
    let bytes = serfn::codec::encode_value(&("t", Vec::<String>::new())).unwrap();
    let failure: Failure = serfn::codec::decode_value(&bytes, &Limits::default()).unwrap();
    assert_eq!(failure.chain().collect::<Vec<_>>(), [""]);
}

#[test]
fn a_panic_shows_its_location_but_not_its_backtrace() {
    let panicked = |location: Option<&str>| Error::Panicked {
        name: "f".into(),
        message: "boom".into(),
        location: location.map(Into::into),
        backtrace: Some("   0: f".into()),
    };
    assert_eq!(panicked(None).to_string(), "function `f` panicked: boom");
    assert_eq!(
        panicked(Some("a.rs:1:2")).to_string(),
        "function `f` panicked at a.rs:1:2: boom"
    );
}
