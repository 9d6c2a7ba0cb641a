//! [`Failure`]: any error as plain data, for serialized functions that
//! return `Result`.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An error as data: its message, the messages of its source chain, and the
/// name of its type, so that a serialized function can return
/// `Result<T, Failure>` and use `?` on any error type.
///
/// A worker's `std::io::Error` or `ParseIntError` cannot cross a process
/// boundary as itself (it is not serde data, and the receiver may not know
/// the type); what crosses is what a person reads: the text of each error of
/// the chain, outermost first, and [`std::any::type_name`] of the error
/// that `?` converted. That type name is for messages and logs: it is not
/// stable across compiler versions, so do not match on it.
///
/// Like `anyhow::Error`, `Failure` has `From<E>` for every
/// [`std::error::Error`], so it cannot implement that trait itself (it
/// would then convert from itself twice). Use [`as_error`](Self::as_error)
/// or `AsRef<dyn Error>` for a `&dyn Error` view of the same chain, or
/// `Box<dyn Error + Send + Sync>::from(failure)` to own one; `?` in a
/// function returning `Result<_, Box<dyn Error + Send + Sync>>` does the
/// latter.
///
/// `{}` shows the message; `{:#}` shows the chain as `message: cause:
/// cause`; `{:?}` shows the message, a numbered `Caused by:` list and the
/// type name, as `anyhow` does.
///
/// # Example
/// ```
/// use serfn::{Failure, SerFn};
///
/// let parse: SerFn<String, Result<u32, Failure>> =
///     serfn::closure!("parse_u32", [], move |text: String| -> Result<u32, Failure> {
///         let n: u32 = text.trim().parse()?; // a ParseIntError becomes a Failure
///         if n == 0 {
///             return Err(Failure::msg("zero is not allowed"));
///         }
///         Ok(n)
///     });
///
/// // As a pool's worker would send it back, and the caller decodes it:
/// let bytes = serfn::codec::encode_value(&parse.call("x".into()))?;
/// let answer: Result<u32, Failure> = serfn::codec::decode_value(&bytes, &Default::default())?;
/// let failure = answer.unwrap_err();
/// assert_eq!(failure.to_string(), "invalid digit found in string");
/// assert!(failure.type_name().ends_with("ParseIntError"));
/// # Ok::<(), serfn::Error>(())
/// ```
pub struct Failure {
    head: Link,
    type_name: String,
}

/// One error of the chain; it implements [`std::error::Error`] so that the
/// chain can be walked as `dyn Error`.
struct Link {
    message: String,
    source: Option<Box<Link>>,
}

impl Drop for Link {
    /// Unlinks one at a time: a long decoded chain must not overflow the
    /// stack with nested drops.
    fn drop(&mut self) {
        let mut next = self.source.take();
        while let Some(mut link) = next {
            next = link.source.take();
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}

impl StdError for Link {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|link| link as &(dyn StdError + 'static))
    }
}

/// The wire form: flat, so decoding a long chain needs no recursion.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Failure")]
struct Flat<'a> {
    type_name: Cow<'a, str>,
    chain: Vec<Cow<'a, str>>,
}

impl Failure {
    /// A failure with only a message, such as a check that failed; its
    /// [`type_name`](Self::type_name) is the message's type.
    ///
    /// # Example
    /// ```
    /// let failure = serfn::Failure::msg(format!("{} items left", 3));
    /// assert_eq!(failure.to_string(), "3 items left");
    /// assert_eq!(failure.chain().count(), 1);
    /// ```
    pub fn msg<M: fmt::Display>(message: M) -> Self {
        Failure::from_parts(
            std::any::type_name::<M>().to_owned(),
            vec![message.to_string()],
        )
    }

    /// The failure of an error known only as `dyn Error` (such as the
    /// content of a `Box<dyn Error>`); its [`type_name`](Self::type_name) is
    /// `dyn std::error::Error`, as the concrete type is not known.
    ///
    /// `?` cannot convert a `Box<dyn Error>` by itself (the box is not an
    /// `Error`): `map_err(|e| Failure::from_dyn(&*e))` does.
    ///
    /// # Example
    /// ```
    /// use std::error::Error;
    ///
    /// let boxed: Box<dyn Error> = "12a".parse::<u8>().unwrap_err().into();
    /// let failure = serfn::Failure::from_dyn(&*boxed);
    /// assert_eq!(failure.message(), "invalid digit found in string");
    /// assert_eq!(failure.type_name(), "dyn std::error::Error");
    /// ```
    pub fn from_dyn(error: &(dyn StdError + '_)) -> Self {
        Failure::of(error, "dyn std::error::Error")
    }

    fn of(error: &(dyn StdError + '_), type_name: &str) -> Self {
        let mut chain = vec![error.to_string()];
        let mut source = error.source();
        while let Some(error) = source {
            chain.push(error.to_string());
            source = error.source();
        }
        Failure::from_parts(type_name.to_owned(), chain)
    }

    /// The head is `chain`'s first message (empty if there is none).
    fn from_parts(type_name: String, chain: Vec<String>) -> Self {
        let mut links = chain.into_iter().rev();
        let mut head = Link {
            message: links.next().unwrap_or_default(),
            source: None,
        };
        for message in links {
            head = Link {
                message,
                source: Some(Box::new(head)),
            };
        }
        Failure { head, type_name }
    }

    /// The outermost error's message, as `{}` shows it.
    ///
    /// # Example
    /// ```
    /// let failure = serfn::Failure::from("12x".parse::<u32>().unwrap_err());
    /// assert_eq!(failure.message(), "invalid digit found in string");
    /// ```
    pub fn message(&self) -> &str {
        &self.head.message
    }

    /// The messages of the error and of its sources, outermost first: never
    /// empty.
    ///
    /// # Example
    /// ```
    /// use std::{fmt, io};
    ///
    /// #[derive(Debug)]
    /// struct ConfigError(io::Error);
    ///
    /// impl fmt::Display for ConfigError {
    ///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    ///         f.write_str("cannot load config")
    ///     }
    /// }
    ///
    /// impl std::error::Error for ConfigError {
    ///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
    ///         Some(&self.0)
    ///     }
    /// }
    ///
    /// let failure = serfn::Failure::from(ConfigError(io::Error::other("disk on fire")));
    /// assert_eq!(failure.chain().collect::<Vec<_>>(), ["cannot load config", "disk on fire"]);
    /// assert_eq!(format!("{failure:#}"), "cannot load config: disk on fire");
    /// ```
    pub fn chain(&self) -> impl Iterator<Item = &str> {
        std::iter::successors(Some(&self.head), |link| link.source.as_deref())
            .map(|link| link.message.as_str())
    }

    /// [`std::any::type_name`] of the error that was converted, such as
    /// `std::io::error::Error`: for people, not for matching.
    ///
    /// # Example
    /// ```
    /// let failure = serfn::Failure::from("12x".parse::<u32>().unwrap_err());
    /// assert!(failure.type_name().ends_with("ParseIntError"));
    /// ```
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The chain as a `dyn Error`, whose `source()`s are the causes: for
    /// code that takes `&dyn Error` (loggers, error reporters).
    ///
    /// # Example
    /// ```
    /// let failure = serfn::Failure::from("x".parse::<u8>().unwrap_err());
    /// let error: &dyn std::error::Error = failure.as_error();
    /// assert_eq!(error.to_string(), "invalid digit found in string");
    /// assert!(error.source().is_none());
    /// ```
    pub fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &self.head
    }
}

impl<E: StdError> From<E> for Failure {
    /// Keeps the error's message, its sources' messages and its type name.
    fn from(error: E) -> Self {
        Failure::of(&error, std::any::type_name::<E>())
    }
}

impl From<Failure> for Box<dyn StdError + Send + Sync + 'static> {
    fn from(failure: Failure) -> Self {
        Box::new(failure.head)
    }
}

impl From<Failure> for Box<dyn StdError + 'static> {
    fn from(failure: Failure) -> Self {
        Box::new(failure.head)
    }
}

impl AsRef<dyn StdError + Send + Sync> for Failure {
    fn as_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self.as_error()
    }
}

impl AsRef<dyn StdError> for Failure {
    fn as_ref(&self) -> &(dyn StdError + 'static) {
        self.as_error()
    }
}

impl Clone for Failure {
    fn clone(&self) -> Self {
        Failure::from_parts(
            self.type_name.clone(),
            self.chain().map(str::to_owned).collect(),
        )
    }
}

impl PartialEq for Failure {
    fn eq(&self, other: &Self) -> bool {
        self.type_name == other.type_name && self.chain().eq(other.chain())
    }
}

impl Eq for Failure {}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())?;
        if f.alternate() {
            for cause in self.chain().skip(1) {
                write!(f, ": {cause}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Failure {
    /// `{:?}` as a report; `{:#?}` as a struct.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            return f
                .debug_struct("Failure")
                .field("type_name", &self.type_name)
                .field("chain", &self.chain().collect::<Vec<_>>())
                .finish();
        }
        f.write_str(self.message())?;
        if self.head.source.is_some() {
            f.write_str("\n\nCaused by:")?;
            for (n, cause) in self.chain().skip(1).enumerate() {
                write!(f, "\n    {n}: {cause}")?;
            }
        }
        write!(f, "\n\n(type {})", self.type_name)
    }
}

impl Serialize for Failure {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Flat {
            type_name: self.type_name.as_str().into(),
            chain: self.chain().map(Into::into).collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Failure {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // An empty chain (never encoded by serfn) reads as an empty message.
        let flat = Flat::deserialize(deserializer)?;
        Ok(Failure::from_parts(
            flat.type_name.into_owned(),
            flat.chain.into_iter().map(Cow::into_owned).collect(),
        ))
    }
}
