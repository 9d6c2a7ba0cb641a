//! Tracing every registered function's layout at once ([`trace_all`]),
//! and the functions whose layout could not be traced ([`Untraced`]).

use std::fmt;

use super::{functions, Registration};

/// A registered function whose layout, or its argument's or output's,
/// could not be traced: changes to it are not caught by the layout check,
/// so bump its `version` by hand. Listed by [`trace_all`].
#[derive(Clone, Copy, Debug)]
pub struct Untraced {
    registration: &'static Registration,
    part: &'static str,
    reason: &'static str,
}

impl Untraced {
    /// The function.
    pub fn registration(&self) -> &'static Registration {
        self.registration
    }

    /// What could not be traced: `"capture"`, `"argument"` or `"output"`.
    pub fn part(&self) -> &'static str {
        self.part
    }

    /// Why, as the tracer said it.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for Untraced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, part, reason) = (self.registration.name(), self.part, self.reason);
        write!(
            f,
            "`{name}`: the layout of its {part} is not checked: {reason}"
        )
    }
}

/// Traces the layout of every registered function now (its capture's, its
/// argument's and its output's), instead of at its first encode or decode,
/// and returns those that could not be traced, by name. See [the module
/// docs](super#layout-tracing) for what tracing runs.
///
/// Pool and Redis workers call it before they take work. Call it at the
/// start of a program to pay for tracing there, or in a test to learn which
/// functions' layouts go unchecked. Tracing is done once per type per
/// process: a second call costs a lookup per type.
///
/// # Example
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Every {
///     // Its `Deserialize` refuses the tracer's zero: not traceable.
///     step: std::num::NonZeroU32,
/// }
///
/// #[serfn::register(name = "docs::Every")]
/// impl serfn::Call<u32> for Every {
///     type Output = bool;
///     fn call(&self, n: u32) -> bool { n % self.step.get() == 0 }
/// }
///
/// let untraced = serfn::registry::trace_all();
/// let names: Vec<&str> = untraced.iter().map(|u| u.registration().name()).collect();
/// assert_eq!(names, ["docs::Every"]);
/// assert_eq!(untraced[0].part(), "capture");
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn trace_all() -> Vec<Untraced> {
    // One thread traces every type in place, instead of a thread per type.
    crate::schema::trace_on_own_thread(trace_each).unwrap_or_else(trace_each)
}

fn trace_each() -> Vec<Untraced> {
    let mut untraced = Vec::new();
    for registration in functions() {
        // What an encode or a decode would compute first.
        let _ = registration.fingerprints();
        let capture = registration.layout().map(|layout| ("capture", layout));
        let types = registration.signature().map(|signature| {
            [
                ("argument", signature.args().layout()),
                ("output", signature.output().layout()),
            ]
        });
        for (part, layout) in capture.into_iter().chain(types.into_iter().flatten()) {
            if let Err(reason) = layout.description() {
                untraced.push(Untraced {
                    registration,
                    part,
                    reason,
                });
            }
        }
    }
    untraced
}
