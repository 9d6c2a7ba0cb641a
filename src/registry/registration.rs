//! One registered function as the macros describe it ([`Registration`]),
//! and what the codec keeps of it once computed.

use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};

use super::SerializableFn;
use crate::codec::{Limits, Prefix};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::schema::Layout;
use crate::signature::Signature;

/// Decodes a capture's bytes into its function, under the limits given;
/// `None` when the capture's layout [is fixed](Layout::is_fixed) and no
/// decode is running on the thread, so there is nothing to guard.
#[doc(hidden)]
pub type DecodeFn = fn(&[u8], Option<&Limits>) -> Result<Arc<dyn SerializableFn>>;

/// One registered function: its name, version, signature, capture layout
/// and decoder.
///
/// Listed by [`functions`](super::functions); built only by serfn's macros.
pub struct Registration {
    name: &'static str,
    version: u32,
    signature: Option<fn() -> Signature>,
    layout: Option<fn() -> &'static Layout>,
    decode: DecodeFn,
    file: &'static str,
    line: u32,
    /// Whether a decoded function's allocation may be reused for the next
    /// decode of the same function: see [`Registration::recycled`].
    recycled: bool,
    fingerprints: OnceLock<Fingerprints>,
    direct: OnceLock<Option<Direct>>,
}

/// What the handles' direct path keeps of a function with static
/// fingerprints, built once: its envelope's fixed start, its signature, and
/// whether its capture can be decoded without the guard.
pub(crate) struct Direct {
    pub(crate) registration: &'static Registration,
    pub(crate) prefix: Prefix,
    pub(crate) signature: Signature,
    pub(crate) fixed: bool,
    /// The address of the last function building an expected signature
    /// that `signature` was found to satisfy: see `handle::wire`.
    pub(crate) accepted: AtomicUsize,
}

/// What an encoding carries to identify a function's meaning: the
/// fingerprint of its signature and that of its capture's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprints {
    pub(crate) signature: u64,
    pub(crate) layout: u64,
}

impl Registration {
    #[doc(hidden)]
    pub const fn new(
        name: &'static str,
        version: u32,
        signature: Option<fn() -> Signature>,
        layout: Option<fn() -> &'static Layout>,
        decode: DecodeFn,
        file: &'static str,
        line: u32,
    ) -> Self {
        Registration {
            name,
            version,
            signature,
            layout,
            decode,
            file,
            line,
            recycled: false,
            fingerprints: OnceLock::new(),
            direct: OnceLock::new(),
        }
    }

    /// Lets the handles decode this function into the allocation of one
    /// they decoded before and nobody holds any more (its
    /// `__serfn_decode_in_place`). Only for a capture type without drop
    /// glue, and small: keeping the last one alive is then unobservable.
    #[doc(hidden)]
    pub const fn recycled(mut self, recycled: bool) -> Self {
        self.recycled = recycled;
        self
    }

    /// See [`recycled`](Self::recycled).
    pub(crate) fn is_recycled(&self) -> bool {
        self.recycled
    }

    /// The registered name.
    ///
    /// # Example
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Scale(f64);
    ///
    /// #[serfn::register(name = "docs::Scale", version = 2)]
    /// impl serfn::Call<f64> for Scale {
    ///     type Output = f64;
    ///     fn call(&self, x: f64) -> f64 { x * self.0 }
    /// }
    ///
    /// let scale = serfn::registry::get("docs::Scale")?;
    /// assert_eq!(scale.name(), "docs::Scale");
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The registered `version = N` of the capture's layout (1 by default).
    ///
    /// # Example
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Scale(f64);
    ///
    /// #[serfn::register(name = "docs::Scale", version = 2)]
    /// impl serfn::Call<f64> for Scale {
    ///     type Output = f64;
    ///     fn call(&self, x: f64) -> f64 { x * self.0 }
    /// }
    ///
    /// let scale = serfn::registry::get("docs::Scale")?;
    /// assert_eq!(scale.version(), 2);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The signature, or `None` for serfn's own combinators (`then`,
    /// `bind`), whose signature depends on the functions they hold.
    ///
    /// # Example
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Scale(f64);
    ///
    /// #[serfn::register(name = "docs::Scale", version = 2)]
    /// impl serfn::Call<f64> for Scale {
    ///     type Output = f64;
    ///     fn call(&self, x: f64) -> f64 { x * self.0 }
    /// }
    ///
    /// let scale = serfn::registry::get("docs::Scale")?;
    /// assert_eq!(scale.signature().map(|s| s.to_string()).as_deref(), Some("Fn(f64) -> f64"));
    /// assert!(serfn::registry::get("serfn::then")?.signature().is_none());
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn signature(&self) -> Option<Signature> {
        self.signature.map(|signature| signature())
    }

    /// The capture's layout: its serde data model, which every encoding
    /// carries as a fingerprint, so that bytes from a build whose capture
    /// changed without a `version` bump fail with
    /// [`Error::LayoutChanged`] instead of decoding into garbage. `None` for
    /// serfn's own combinators.
    ///
    /// The layout is traced once, with `serde-reflection`. Types it cannot
    /// trace ([`Layout::description`] says why) are: types whose
    /// `Deserialize` validates (`NonZeroU32`, a hand-written impl that
    /// refuses the tracer's zeros and empty strings), types that need a
    /// self-describing format (`#[serde(flatten)]`, untagged or internally
    /// tagged enums, which bincode cannot decode either), and two different
    /// types of the same serde name in one capture. Their layout is not
    /// checked: bump `version` by hand when it changes. Variants of an enum
    /// nested in another enum's variant may be out of the tracer's reach
    /// ([`Layout::partial_enums`]); changes to those go unnoticed too. A
    /// test can assert `layout().unwrap().description().is_ok()`, or that
    /// [`trace_all`](super::trace_all) returns nothing.
    ///
    /// # Example
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Scale {
    ///     factor: f64,
    /// }
    ///
    /// #[serfn::register(name = "docs::layout::Scale")]
    /// impl serfn::Call<f64> for Scale {
    ///     type Output = f64;
    ///     fn call(&self, x: f64) -> f64 { x * self.factor }
    /// }
    ///
    /// let layout = serfn::registry::get("docs::layout::Scale")?.layout().unwrap();
    /// assert_eq!(layout.description(), Ok("{6:factor:f64}"));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn layout(&self) -> Option<&'static Layout> {
        self.layout.map(|layout| layout())
    }

    /// Where the registration is in the source, as `file:line`: what
    /// [`check`](super::check) names for a duplicate.
    ///
    /// # Example
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Scale(f64);
    ///
    /// #[serfn::register(name = "docs::Scale", version = 2)]
    /// impl serfn::Call<f64> for Scale {
    ///     type Output = f64;
    ///     fn call(&self, x: f64) -> f64 { x * self.0 }
    /// }
    ///
    /// let scale = serfn::registry::get("docs::Scale")?;
    /// assert!(scale.location().contains(".rs:"));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The fingerprints of a function with a static signature, computed once.
    pub(crate) fn fingerprints(&self) -> Option<Fingerprints> {
        let signature = self.signature?;
        Some(*self.fingerprints.get_or_init(|| Fingerprints {
            signature: signature().fingerprint(),
            layout: self.layout_fingerprint(),
        }))
    }

    /// The fingerprint of the capture's layout; for serfn's combinators, a
    /// constant of their name (their layout changes with the format version).
    pub(crate) fn layout_fingerprint(&self) -> u64 {
        match self.layout {
            Some(layout) => layout().fingerprint(),
            None => crate::schema::hash(&[b"combinator", self.name.as_bytes()]),
        }
    }

    pub(crate) fn decode(
        &self,
        capture: &[u8],
        limits: Option<&Limits>,
    ) -> Result<Arc<dyn SerializableFn>> {
        (self.decode)(capture, limits)
    }

    /// What the direct path keeps of this function, `init` building it once.
    pub(crate) fn direct(&self, init: impl FnOnce(&Self) -> Option<Direct>) -> Option<&Direct> {
        self.direct.get_or_init(|| init(self)).as_ref()
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Registration");
        out.field("name", &self.name)
            .field("version", &self.version);
        match self.signature() {
            Some(signature) => out.field("signature", &format_args!("{signature}")),
            None => out.field("signature", &format_args!("(depends on content)")),
        };
        out.field("location", &self.location()).finish()
    }
}
