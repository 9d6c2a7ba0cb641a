//! `bind` and `try_bind`, on every handle: partial application.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::target::Inner;
use super::{SerFn, SerFnMut, SerFnOnce};
use crate::compose::{self, SplitFirst};
use crate::error::Result;

macro_rules! handle_bind {
    ($handle:ident) => {
        impl<A, R> $handle<A, R>
        where
            A: Serialize + DeserializeOwned + 'static,
            R: Serialize + DeserializeOwned + 'static,
        {
            /// Binds the first element of the argument tuple: Python's
            /// `functools.partial`. A function of two arguments then takes
            /// the second alone (`SerFn<(A, B), R>` becomes `SerFn<B, R>`,
            /// as a closure of one argument is), of three or more the rest
            /// as a tuple (`SerFn<(A, B, C), R>` becomes `SerFn<(B, C), R>`),
            /// of one argument, `(A,)`, none: `SerFn<(), R>`.
            ///
            /// The value is encoded now and travels with the function. Plain
            /// data (numbers, strings, vectors, derived structs) always
            /// encodes, so this returns the function itself; for a value
            /// whose encoding can fail, [`try_bind`](Self::try_bind) returns
            /// the error instead, as [`try_call`](SerFn::try_call) does for
            /// [`call`](SerFn::call).
            ///
            /// # Panics
            /// If the value's `Serialize` impl fails: a poisoned `Mutex`, a
            /// `RefCell` borrowed mutably, a sequence whose length is not
            /// known in advance, `#[serde(flatten)]` (serfn's format needs
            /// every length first). Such a value could not be a capture or an
            /// argument sent to a worker either.
            ///
            /// # Example
            /// ```
            /// use serfn::SerFn;
            ///
            /// let power: SerFn<(f64, i32), f64> =
            ///     serfn::closure!("power", [], move |x: f64, n: i32| -> f64 { x.powi(n) });
            /// let two_to_the: SerFn<i32, f64> = power.bind(2.0);
            /// assert_eq!(two_to_the.call(10), 1024.0);
            ///
            /// // The bound value is part of the function's bytes.
            /// let decoded = SerFn::<i32, f64>::from_bytes(&two_to_the.to_bytes()?)?;
            /// assert_eq!(decoded.call(3), 8.0);
            ///
            /// // Three arguments: the other two stay a tuple.
            /// let volume: SerFn<(f64, f64, f64), f64> =
            ///     serfn::closure!("volume", [], move |x: f64, y: f64, z: f64| -> f64 { x * y * z });
            /// let area_times: SerFn<(f64, f64), f64> = volume.bind(2.0);
            /// let by: SerFn<f64, f64> = area_times.bind(3.0);
            /// assert_eq!(by.call(4.0), 24.0);
            /// # Ok::<(), serfn::Error>(())
            /// ```
            #[track_caller]
            pub fn bind(self, first: A::First) -> $handle<A::Rest, R>
            where
                A: SplitFirst,
                A::First: Serialize,
                A::Rest: Serialize + DeserializeOwned,
            {
                let name = self.name();
                // A `match`, not a closure: `#[track_caller]` then names the caller.
                match self.try_bind(first) {
                    Ok(bound) => bound,
                    Err(error) => {
                        panic!("cannot bind the first argument of serfn function `{name}`: {error}")
                    }
                }
            }

            /// [`bind`](Self::bind), returning the error it panics on.
            ///
            /// # Errors
            /// [`Error::Encode`](crate::Error::Encode) if the bound value's `Serialize` impl fails.
            ///
            /// # Example
            /// ```
            /// use serde::{Deserialize, Serialize, Serializer};
            /// use serfn::SerFn;
            ///
            /// /// Encodes its non-empty words: a count not known in advance.
            /// #[derive(Deserialize)]
            /// struct Words(Vec<String>);
            ///
            /// impl Serialize for Words {
            ///     fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            ///         s.collect_seq(self.0.iter().filter(|w| !w.is_empty()))
            ///     }
            /// }
            ///
            /// let longer: SerFn<(Words, usize), usize> = serfn::closure!(
            ///     "count_longer", [], move |words: Words, min: usize| -> usize {
            ///         words.0.iter().filter(|w| w.len() >= min).count()
            ///     }
            /// );
            /// let words = Words(vec!["serde".into(), String::new()]);
            /// assert!(matches!(longer.try_bind(words), Err(serfn::Error::Encode { .. })));
            /// ```
            pub fn try_bind(self, first: A::First) -> Result<$handle<A::Rest, R>>
            where
                A: SplitFirst,
                A::First: Serialize,
                A::Rest: Serialize + DeserializeOwned,
            {
                Ok($handle::from_arc(compose::bind(
                    self.inner.into_arc(),
                    &first,
                )?))
            }
        }
    };
}

handle_bind!(SerFn);
handle_bind!(SerFnMut);
handle_bind!(SerFnOnce);
