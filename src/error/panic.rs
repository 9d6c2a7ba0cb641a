//! Where a caught panic happened.
//!
//! A panic's payload says only what went wrong; where, and the stack, are
//! known only to the panic hook. Workers install [`install_hook`], which
//! notes both on the panicking thread before unwinding starts; serfn's catch
//! sites ([`catch`]) take the note with the payload.

use std::any::Any;
#[cfg(unix)]
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
#[cfg(unix)]
use std::sync::Once;

use serde::{Deserialize, Serialize};

use super::Error;

/// What the hook noted about the last panic on this thread.
struct Noted {
    /// The panic's message, to tell this panic's note from a stale one.
    message: String,
    location: Option<String>,
    backtrace: Option<String>,
}

thread_local! {
    static NOTED: Cell<Option<Box<Noted>>> = const { Cell::new(None) };
}

/// Installs, once per process, a panic hook that notes each panic's location
/// (and its backtrace, when `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` enable
/// one) and then runs the hook that was installed before, so what the
/// default hook prints, or what the user's hook does, is unchanged.
///
/// A hook the program sets after this one replaces it: panics then carry no
/// location, nothing else changes.
// Installed by workers only: the pool is Unix-only.
#[cfg(unix)]
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let backtrace = Backtrace::capture();
            let noted = Noted {
                message: message(info.payload()),
                location: info
                    .location()
                    .map(|at| format!("{}:{}:{}", at.file(), at.line(), at.column())),
                backtrace: (backtrace.status() == BacktraceStatus::Captured)
                    .then(|| from_the_panic(&backtrace.to_string())),
            };
            // `try_with`: a panic while the thread's locals are torn down is
            // still passed on.
            let _ = NOTED.try_with(|cell| cell.set(Some(Box::new(noted))));
            previous(info);
        }));
    });
}

/// A panic caught by [`catch`], carried in a call's output in place of
/// its result.
#[derive(Serialize, Deserialize)]
pub(crate) struct Panic {
    pub(crate) name: String,
    pub(crate) message: String,
    pub(crate) location: Option<String>,
    pub(crate) backtrace: Option<String>,
}

/// What a [`Panic`]'s location starts with when it stands for an item that
/// timed out, followed by the timeout in nanoseconds: an async chunk's
/// answer has one error form per item, a panic's, and a timeout travels in
/// it. No location the hook notes starts with a NUL.
#[cfg(unix)]
const TIMEOUT_MARK: &str = "\0serfn-timeout:";

#[cfg(all(unix, feature = "tokio"))]
impl Panic {
    /// An async item of function `name` dropped past its `timeout`.
    pub(crate) fn timeout(name: &str, timeout: std::time::Duration) -> Panic {
        Panic {
            name: name.into(),
            message: format!("ran past its timeout of {timeout:?}"),
            location: Some(format!("{TIMEOUT_MARK}{}", timeout.as_nanos())),
            backtrace: None,
        }
    }
}

impl From<Panic> for Error {
    fn from(
        Panic {
            name,
            message,
            location,
            backtrace,
        }: Panic,
    ) -> Self {
        #[cfg(unix)]
        if let Some(nanos) = location
            .as_deref()
            .and_then(|at| at.strip_prefix(TIMEOUT_MARK))
            .and_then(|nanos| nanos.parse::<u64>().ok())
        {
            let timeout = std::time::Duration::from_nanos(nanos);
            return Error::Timeout { name, timeout };
        }
        Error::Panicked {
            name,
            message,
            location,
            backtrace,
        }
    }
}

/// The panic's message: its payload if that is a string.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "(a panic payload that is not a string)".to_owned()
    }
}

/// The frames below the panic machinery (this hook, std's panic entry),
/// renumbered from 0, as the default hook prints them; all of `text` if the
/// marker frame is not found (no symbols).
#[cfg(unix)]
fn from_the_panic(text: &str) -> String {
    let frame = |line: &str| {
        let (number, _) = line.trim_start().split_once(": ")?;
        number.parse::<usize>().ok()
    };
    let lines: Vec<&str> = text.lines().collect();
    let Some(marker) = lines
        .iter()
        .position(|line| frame(line).is_some() && line.contains("__rust_end_short_backtrace"))
    else {
        return text.to_owned();
    };
    let Some(start) = (marker + 1..lines.len()).find(|&i| frame(lines[i]).is_some()) else {
        return text.to_owned();
    };
    let mut out = String::with_capacity(text.len());
    let mut next = 0;
    for line in &lines[start..] {
        match frame(line) {
            Some(_) => {
                let (_, rest) = line.trim_start().split_once(": ").unwrap_or_default();
                out.push_str(&format!("{next:>4}: {rest}\n"));
                next += 1;
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Runs `f`, turning a panic into a [`Panic`] of function `name` with the
/// location the hook noted, if it is installed. Always inlined: a worker
/// runs a chunk's calls inside it, and left out of line (as the compiler's
/// split of the crate decided, by the code around it) each call of a
/// pipeline's stages went through it: 1 ms more per 100,000 items.
#[inline(always)]
pub(crate) fn catch<R>(name: &str, f: impl FnOnce() -> R) -> Result<R, Panic> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| caught(name, &*payload))
}

fn caught(name: &str, payload: &(dyn Any + Send)) -> Panic {
    let message = message(payload);
    let noted = NOTED.try_with(Cell::take).ok().flatten();
    // The note is of another panic when this one skipped the hook
    // (`resume_unwind` of a new payload) after one that `f` caught itself.
    let (location, backtrace) = match noted {
        Some(noted) if noted.message == message => (noted.location, noted.backtrace),
        _ => (None, None),
    };
    Panic {
        name: name.into(),
        message,
        location,
        backtrace,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn a_backtrace_starts_below_the_panic_machinery() {
        let text = "   0: serfn::hook\n             at src/error/panic.rs:1:1\n   \
                    1: std::sys::backtrace::__rust_end_short_backtrace\n   \
                    2: __rustc::rust_begin_unwind\n   3: user::f\n             at src/f.rs:2:3\n";
        assert_eq!(
            from_the_panic(text),
            "   0: __rustc::rust_begin_unwind\n   1: user::f\n             at src/f.rs:2:3\n"
        );
        let unsymbolized = "   0: <unknown>\n   1: <unknown>\n";
        assert_eq!(from_the_panic(unsymbolized), unsymbolized);
    }

    #[test]
    fn the_hook_notes_the_location_and_runs_the_hook_before_it() {
        static RAN: AtomicBool = AtomicBool::new(false);
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if message(info.payload()) == "noted" {
                RAN.store(true, Ordering::SeqCst);
            }
            previous(info);
        }));
        install_hook();

        let line = line!() + 1;
        let caught = catch("f", || panic!("noted")).unwrap_err();
        assert!(RAN.load(Ordering::SeqCst), "the hook installed before ran");
        let location = caught.location.expect("a location");
        assert!(
            location.starts_with(&format!("{}:{line}:", file!())),
            "{location}"
        );

        // A panic that skips the hook is not given the location of one
        // that the function caught itself.
        let caught = catch("f", || {
            let _ = panic::catch_unwind(|| panic!("inner"));
            panic::resume_unwind(Box::new("outer"))
        })
        .unwrap_err();
        assert_eq!((caught.message.as_str(), caught.location), ("outer", None));
    }
}
