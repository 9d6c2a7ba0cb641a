//! Where a caught panic happened.
//!
//! A panic's payload says only what went wrong; where, and the stack, are
//! known only to the panic hook. Workers install [`install_hook`], which
//! notes both on the panicking thread before unwinding starts; serfn's catch
//! sites ([`catch`]) take the note with the payload.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::codec::Panic;

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
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let backtrace = Backtrace::capture();
            let noted = Noted {
                message: crate::handle::panic_message(info.payload()),
                location: info
                    .location()
                    .map(|at| format!("{}:{}:{}", at.file(), at.line(), at.column())),
                backtrace: (backtrace.status() == BacktraceStatus::Captured)
                    .then(|| backtrace.to_string()),
            };
            // `try_with`: a panic while the thread's locals are torn down is
            // still passed on.
            let _ = NOTED.try_with(|cell| cell.set(Some(Box::new(noted))));
            previous(info);
        }));
    });
}

/// Runs `f`, turning a panic into a [`Panic`] of function `name` with the
/// location the hook noted, if it is installed.
pub(crate) fn catch<R>(name: &str, f: impl FnOnce() -> R) -> Result<R, Panic> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| caught(name, &*payload))
}

fn caught(name: &str, payload: &(dyn Any + Send)) -> Panic {
    let message = crate::handle::panic_message(payload);
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
    fn the_hook_notes_the_location_and_runs_the_hook_before_it() {
        static RAN: AtomicBool = AtomicBool::new(false);
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if crate::handle::panic_message(info.payload()) == "noted" {
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
