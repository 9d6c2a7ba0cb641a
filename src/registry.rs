//! Every function this binary registers, by name.
//!
//! The macros submit one [`Registration`] per function through `inventory`,
//! at link time: there is no set-up call. Decoding looks names up here, so
//! only functions compiled into this binary can ever be called.

use std::fmt;
use std::sync::{Arc, OnceLock};

use fnv::FnvHashMap;

use crate::codec::Limits;
use crate::erased::SerializableFn;
use crate::error::{Error, Result};
use crate::schema::Layout;
use crate::signature::Signature;

/// Decodes a capture's bytes into its function.
#[doc(hidden)]
pub type DecodeFn = fn(&[u8], &Limits) -> Result<Arc<dyn SerializableFn>>;

/// One registered function: its name, version, signature, capture layout
/// and decoder.
///
/// Listed by [`functions`]; built only by serfn's macros.
pub struct Registration {
    name: &'static str,
    version: u32,
    signature: Option<fn() -> Signature>,
    layout: Option<fn() -> &'static Layout>,
    decode: DecodeFn,
    file: &'static str,
    line: u32,
    fingerprints: OnceLock<Fingerprints>,
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
            fingerprints: OnceLock::new(),
        }
    }

    /// The registered name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The registered `version = N` of the capture's layout (1 by default).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The signature, or `None` for serfn's own combinators (`then`,
    /// `bind`), whose signature depends on the functions they hold.
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
    /// test can assert `layout().unwrap().description().is_ok()`.
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

    /// Where the registration is in the source, as `file:line`.
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
        limits: &Limits,
    ) -> Result<Arc<dyn SerializableFn>> {
        (self.decode)(capture, limits)
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

/// What the macros submit to `inventory`.
#[doc(hidden)]
pub struct Registered(pub &'static Registration);

inventory::collect!(Registered);

enum Entry {
    Unique(&'static Registration),
    Duplicate(Vec<&'static Registration>),
}

fn table() -> &'static FnvHashMap<&'static str, Entry> {
    // Names are this binary's own, not attacker-chosen keys: a fast hash is safe.
    static TABLE: OnceLock<FnvHashMap<&'static str, Entry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = FnvHashMap::default();
        for Registered(registration) in inventory::iter::<Registered> {
            table
                .entry(registration.name)
                .and_modify(|entry| match entry {
                    Entry::Unique(first) => *entry = Entry::Duplicate(vec![first, registration]),
                    Entry::Duplicate(all) => all.push(registration),
                })
                .or_insert(Entry::Unique(registration));
        }
        table
    })
}

/// Looks a name up, refusing unknown and ambiguous names.
pub(crate) fn lookup(name: &str) -> Result<&'static Registration> {
    match table().get(name) {
        Some(Entry::Unique(registration)) => Ok(registration),
        Some(Entry::Duplicate(all)) => Err(duplicate_error(all)),
        None => Err(Error::UnknownFunction { name: name.into() }),
    }
}

fn duplicate_error(all: &[&'static Registration]) -> Error {
    let locations: Vec<String> = all.iter().map(|r| r.location()).collect();
    Error::DuplicateFunction {
        name: all[0].name.into(),
        locations: locations.join(", "),
    }
}

/// Every function registered in this binary, sorted by name.
///
/// # Example
/// ```
/// for registration in serfn::registry::functions() {
///     println!("{} v{}: {:?}", registration.name(), registration.version(), registration.signature());
/// }
/// ```
pub fn functions() -> Vec<&'static Registration> {
    let mut all: Vec<&'static Registration> = inventory::iter::<Registered>
        .into_iter()
        .map(|Registered(registration)| *registration)
        .collect();
    all.sort_by_key(|registration| registration.name);
    all
}

/// Looks up a registered function by name.
///
/// # Errors
/// [`Error::UnknownFunction`] if no function has that name,
/// [`Error::DuplicateFunction`] if several do.
pub fn get(name: &str) -> Result<&'static Registration> {
    lookup(name)
}

/// Checks that no two registrations share a name.
///
/// typetag only notices a duplicate when it decodes one; call this at
/// start-up (or in a test) to learn of it at once.
///
/// # Errors
/// [`Error::DuplicateFunction`] for the first duplicated name, by name order,
/// listing where each registration is.
///
/// # Example
/// ```
/// serfn::registry::check()?;
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn check() -> Result<()> {
    let mut duplicated: Vec<&Vec<&'static Registration>> = table()
        .values()
        .filter_map(|entry| match entry {
            Entry::Duplicate(all) => Some(all),
            Entry::Unique(_) => None,
        })
        .collect();
    duplicated.sort_by_key(|all| all[0].name);
    match duplicated.first() {
        Some(all) => Err(duplicate_error(all)),
        None => Ok(()),
    }
}
