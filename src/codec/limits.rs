//! Decode limits: what bad input may cost at most.

/// Bounds on what decoding untrusted bytes may cost.
///
/// The defaults suit bytes from another process of the same application.
/// Lower them for bytes from the network.
///
/// # Example
/// ```
/// let limits = serfn::Limits::default().max_bytes(1 << 20).max_depth(32);
/// assert_eq!(limits.get_max_bytes(), 1 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub(crate) max_bytes: usize,
    pub(crate) max_depth: usize,
}

impl Limits {
    /// The default size limit: 64 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
    /// The default nesting limit: 128 levels, as in serde_json.
    pub const DEFAULT_MAX_DEPTH: usize = 128;

    /// The defaults: [`DEFAULT_MAX_BYTES`](Self::DEFAULT_MAX_BYTES) and
    /// [`DEFAULT_MAX_DEPTH`](Self::DEFAULT_MAX_DEPTH).
    pub const fn new() -> Self {
        Limits {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }

    /// No limits: for in-memory data of this process's own making.
    pub(crate) const fn unlimited() -> Self {
        Limits {
            max_bytes: usize::MAX,
            max_depth: usize::MAX,
        }
    }

    /// Sets the largest input accepted, in bytes.
    ///
    /// Inputs and length prefixes above it are refused with
    /// [`Error::TooLarge`](crate::Error::TooLarge) before anything is
    /// allocated; what decoding allocates stays within a small multiple of it.
    pub const fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets how deeply the input may nest (structs in structs, sequences in
    /// sequences, functions in captures) before decoding stops with
    /// [`Error::TooDeep`](crate::Error::TooDeep) instead of overflowing the stack.
    pub const fn max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// The size limit in bytes.
    pub const fn get_max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The nesting limit.
    pub const fn get_max_depth(&self) -> usize {
        self.max_depth
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new()
    }
}
