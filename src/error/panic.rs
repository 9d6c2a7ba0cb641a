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
    // A panic that `f` caught itself leaves a note: drop it, so that a
    // panic that skips the hook (`resume_unwind`) is not given its location.
    let _ = NOTED.try_with(Cell::take);
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| caught(name, &*payload))
}

fn caught(name: &str, payload: &(dyn Any + Send)) -> Panic {
    let noted = NOTED.try_with(Cell::take).ok().flatten();
    let (location, backtrace) = match noted {
        Some(noted) => (noted.location, noted.backtrace),
        None => (None, None),
    };
    Panic {
        name: name.into(),
        message: crate::handle::panic_message(payload),
        location,
        backtrace,
    }
}
