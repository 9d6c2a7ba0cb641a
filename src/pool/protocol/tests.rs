use std::collections::HashSet;
use std::error::Error as _;
use std::io;
use std::mem::discriminant;
use std::time::Duration;

use serde_reflection::{Tracer, TracerConfig};

use crate::codec::{self, Limits};
use crate::error::{Error, WireError};

/// One error of each variant, with fields that tell them apart.
fn one_of_each() -> Vec<Error> {
    let name = || "tests::f".to_owned();
    vec![
        Error::UnknownFunction { name: name() },
        Error::DuplicateFunction {
            name: name(),
            locations: "a.rs:1, b.rs:2".into(),
        },
        Error::SignatureMismatch {
            name: name(),
            expected: "Fn(f64) -> f64".into(),
            found: "Fn(u8) -> u8".into(),
        },
        Error::VersionMismatch {
            name: name(),
            registered: 3,
            found: 4,
        },
        Error::LayoutChanged {
            name: name(),
            version: 5,
        },
        Error::Version {
            found: 6,
            supported: 7,
        },
        Error::Checksum {
            stored: 0xdead_beef,
            computed: 0x1234_5678,
        },
        Error::Unauthenticated {
            reason: "unsigned".into(),
        },
        Error::Truncated { len: 8, min: 9 },
        Error::TooLarge {
            len: u64::MAX,
            limit: usize::MAX,
        },
        Error::TooDeep { limit: 10 },
        Error::decode("unexpected end of input"),
        Error::encode("a map of unknown length"),
        Error::io(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed")),
        Error::Panicked {
            name: name(),
            message: "boom".into(),
            location: Some("src/f.rs:1:2".into()),
            backtrace: Some("0: tests::f\n1: main".into()),
        },
        Error::WorkerDied {
            name: name(),
            pid: 11,
            status: "signal 9 (SIGKILL)".into(),
        },
        Error::Timeout {
            name: name(),
            timeout: Duration::new(12, 13),
        },
        Error::WorkerStart {
            reason: "no such file".into(),
        },
        Error::PoolClosed,
        Error::Broker {
            reason: "lost".into(),
        },
        Error::DeadLetter {
            name: "f".into(),
            deliveries: 6,
            reason: "too many deliveries".into(),
        },
    ]
}

/// What a worker's FAILED frame does to an error.
fn cross(error: &Error, worker: u32) -> Error {
    let bytes = codec::encode_value(&WireError::from(error)).unwrap();
    codec::decode_value::<WireError>(&bytes, &Limits::default())
        .unwrap()
        .into_error(Some(worker))
}

#[test]
fn the_samples_cover_every_variant() {
    let samples = one_of_each();
    // Tracing finds every variant of the wire form, which has one per
    // `Error` variant: a variant added to both fails here until sampled.
    let (_, variants) = Tracer::new(TracerConfig::default())
        .trace_simple_type::<WireError>()
        .unwrap();
    assert_eq!(samples.len(), variants.len());
    let distinct: HashSet<_> = samples.iter().map(discriminant).collect();
    assert_eq!(distinct.len(), samples.len());
}

#[test]
fn every_variant_crosses_from_a_worker_with_its_fields() {
    for error in one_of_each() {
        let back = cross(&error, 42);
        assert_eq!(discriminant(&back), discriminant(&error), "{error:?}");
        match error.source() {
            None => {
                assert_eq!(WireError::from(&back), WireError::from(&error));
                assert_eq!(back.to_string(), error.to_string());
            }
            Some(source) => {
                let back_source = back.source().expect("a source");
                assert_eq!(
                    back_source.to_string(),
                    format!("{source} (in worker process 42)")
                );
                assert_eq!(back.to_string(), format!("{error} (in worker process 42)"));
            }
        }
    }
}

#[test]
fn a_panic_crosses_with_or_without_its_location_and_backtrace() {
    let location = || Some("src/f.rs:1:2".to_owned());
    for (location, backtrace) in [(None, None), (location(), None)] {
        let error = Error::Panicked {
            name: "f".into(),
            message: "boom".into(),
            location,
            backtrace,
        };
        let back = cross(&error, 42);
        assert_eq!(WireError::from(&back), WireError::from(&error));
        assert_eq!(back.to_string(), error.to_string());
    }
}

#[test]
fn a_relayed_source_names_its_worker_once() {
    for error in one_of_each().into_iter().filter(|e| e.source().is_some()) {
        let once = cross(&error, 42);
        // Copied, then relayed again by a worker that ran a pool itself.
        let twice = cross(&once.duplicate(), 43);
        assert_eq!(twice.to_string(), once.to_string());
        assert_eq!(twice.to_string().matches("in worker process").count(), 1);
    }
}

#[test]
fn an_io_error_keeps_its_kind() {
    for kind in [io::ErrorKind::BrokenPipe, io::ErrorKind::NotFound] {
        let back = cross(&Error::io(io::Error::new(kind, "gone")), 42);
        let Error::Io { source } = &back else {
            panic!("{back:?}")
        };
        let io = source.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(io.kind(), kind);
    }
    let os = Error::io(io::Error::from_raw_os_error(2));
    let back = cross(&os, 42);
    assert!(back.to_string().contains("(os error 2)"), "{back}");
}

#[test]
fn duplicate_copies_every_variant_as_it_is() {
    for error in one_of_each() {
        let copy = error.duplicate();
        assert_eq!(WireError::from(&copy), WireError::from(&error));
        assert_eq!(copy.to_string(), error.to_string());
    }
}

/// Takes at most `step` bytes a call, and is interrupted every third
/// call: a socket whose buffer is full.
struct Trickle {
    got: Vec<u8>,
    step: usize,
    calls: usize,
}

impl io::Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls % 3 == 0 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let mut room = self.step;
        for buf in bufs {
            let now = buf.len().min(room);
            self.got.extend_from_slice(&buf[..now]);
            room -= now;
        }
        Ok(self.step - room)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn flush_with_writes_the_buffer_then_the_tail_across_short_writes() {
    for (head, tail, step) in [
        (10, 100_000, 4_096),
        (5, 0, 1),
        (0, 7, 3),
        (70_000, 3, 65_536),
    ] {
        let mut buf: Vec<u8> = (0..head).map(|i| i as u8).collect();
        let tail: Vec<u8> = (0..tail).map(|i| (i * 7) as u8).collect();
        let mut want = buf.clone();
        want.extend_from_slice(&tail);
        let mut writer = Trickle {
            got: Vec::new(),
            step,
            calls: 0,
        };
        super::flush_with(&mut writer, &mut buf, &tail).unwrap();
        assert!(
            writer.got == want,
            "{head} + {tail:?} bytes, {step} a call",
            tail = tail.len()
        );
        assert!(buf.is_empty());
    }
}

#[test]
fn flush_with_fails_on_a_writer_that_takes_nothing() {
    let mut buf = vec![1, 2, 3];
    let mut full = Trickle {
        got: Vec::new(),
        step: 0,
        calls: 0,
    };
    let result = super::flush_with(&mut full, &mut buf, &[4]);
    assert_eq!(result.unwrap_err().kind(), io::ErrorKind::WriteZero);
}
