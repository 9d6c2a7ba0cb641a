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
    /// The least memory budget, whatever `max_bytes`: a small value takes
    /// more memory than its encoding (a function's name is copied, its
    /// capture boxed), and it should decode under a `max_bytes` that admits
    /// its encoding. Zero only in unit tests of exact budgets.
    pub(crate) min_budget: usize,
}

impl Limits {
    /// The default size limit: 64 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
    /// The default nesting limit: 128 levels, as in serde_json.
    pub const DEFAULT_MAX_DEPTH: usize = 128;

    /// The defaults: [`DEFAULT_MAX_BYTES`](Self::DEFAULT_MAX_BYTES) and
    /// [`DEFAULT_MAX_DEPTH`](Self::DEFAULT_MAX_DEPTH).
    ///
    /// # Example
    /// ```
    /// use serfn::Limits;
    ///
    /// // `const`, for a `static` shared by a program's readers.
    /// static NETWORK: Limits = Limits::new().max_bytes(1 << 20);
    /// assert_eq!(Limits::new(), Limits::default());
    /// assert_eq!(NETWORK.get_max_depth(), Limits::DEFAULT_MAX_DEPTH);
    /// ```
    pub const fn new() -> Self {
        Limits {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_depth: Self::DEFAULT_MAX_DEPTH,
            min_budget: MIN_BUDGET,
        }
    }

    /// No limits: for in-memory data of this process's own making.
    pub(crate) const fn unlimited() -> Self {
        Limits {
            max_bytes: usize::MAX,
            max_depth: usize::MAX,
            min_budget: MIN_BUDGET,
        }
    }

    /// Sets the largest input accepted, and the memory budget of a decode,
    /// in bytes.
    ///
    /// Inputs above it are refused with
    /// [`Error::TooLarge`](crate::Error::TooLarge) before anything is
    /// allocated. Decoding charges the memory the value takes to the budget
    /// before allocating it: each sequence element its type's size (a byte
    /// at least, so that a `Vec<()>` of 2^60 elements is refused at once),
    /// each map entry its key's and value's sizes and 16 bytes, each boxed
    /// value its size, each string its length. So a decode under
    /// `max_bytes = M`, accepted or refused, requests at most
    /// `8 * max(M, 4 KiB) + 64 KiB` bytes from the allocator at any moment
    /// (the budget is 4 KiB at least, so that small values decode under a
    /// `max_bytes` equal to their length): 8 covers growth by doubling,
    /// hash table and B-tree overhead, and boxes. Captures are decoded
    /// typed, so this holds inside them too. Not covered: memory a
    /// `Deserialize` impl allocates beyond its value, and the allocator's
    /// own per-block overhead.
    ///
    /// A value in memory larger than its encoding (small integers, zero-sized
    /// or skipped fields) may need a budget above its encoded size.
    ///
    /// # Example
    /// ```
    /// use serfn::{codec, Error, Limits};
    ///
    /// let bytes = codec::encode_value(&vec![7u8; 10_000])?;
    /// let tight = Limits::default().max_bytes(1_000);
    /// assert!(matches!(codec::decode_value::<Vec<u8>>(&bytes, &tight), Err(Error::TooLarge { .. })));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub const fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets how deeply the input may nest (structs in structs, sequences in
    /// sequences, functions in captures) before decoding stops with
    /// [`Error::TooDeep`](crate::Error::TooDeep) instead of overflowing the stack.
    ///
    /// Decoding recurses once per level on the calling thread: the default
    /// fits a 256 KiB stack optimized, 1 MiB in a debug build
    /// (`tests/test_stack.rs`). A higher limit needs a thread with a
    /// proportionally larger stack (about 4 KiB a level, in debug).
    ///
    /// # Example
    /// ```
    /// use serfn::{codec, Error, Limits};
    ///
    /// let nested = codec::encode_value(&vec![vec![vec![1u8]]])?; // 3 levels
    /// let shallow = Limits::default().max_depth(2);
    /// assert!(matches!(codec::decode_value::<Vec<Vec<Vec<u8>>>>(&nested, &shallow), Err(Error::TooDeep { .. })));
    /// assert!(codec::decode_value::<Vec<Vec<Vec<u8>>>>(&nested, &Limits::default()).is_ok());
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub const fn max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// The size limit in bytes.
    ///
    /// # Example
    /// ```
    /// assert_eq!(serfn::Limits::default().get_max_bytes(), 64 << 20);
    /// ```
    pub const fn get_max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The nesting limit.
    ///
    /// # Example
    /// ```
    /// assert_eq!(serfn::Limits::default().max_depth(16).get_max_depth(), 16);
    /// ```
    pub const fn get_max_depth(&self) -> usize {
        self.max_depth
    }
}

/// The least memory budget of a decode: 4 KiB.
pub(crate) const MIN_BUDGET: usize = 4 << 10;

impl Limits {
    /// The memory budget of a decode.
    pub(crate) const fn budget(&self) -> usize {
        if self.max_bytes > self.min_budget {
            self.max_bytes
        } else {
            self.min_budget
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new()
    }
}
