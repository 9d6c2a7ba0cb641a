//! The typed traits a capture struct implements.
//!
//! A capture struct implements exactly one of them and is registered with
//! [`#[serfn::register]`](crate::register). They mirror `Fn`, `FnMut` and
//! `FnOnce`; several arguments are passed as one tuple.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A function called through `&self`, any number of times, like [`Fn`].
///
/// # Example
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Scale {
///     factor: f64,
/// }
///
/// #[serfn::register]
/// impl serfn::Call<f64> for Scale {
///     type Output = f64;
///     fn call(&self, x: f64) -> f64 {
///         x * self.factor
///     }
/// }
///
/// let f = serfn::SerFn::new(Scale { factor: 2.0 });
/// assert_eq!(f.call(21.0), 42.0);
/// ```
pub trait Call<A>: Serialize + DeserializeOwned + Send + Sync + 'static
where
    A: Serialize + DeserializeOwned + 'static,
{
    /// What the function returns.
    type Output: Serialize + DeserializeOwned + 'static;

    /// Calls the function.
    fn call(&self, args: A) -> Self::Output;
}

/// A function called through `&mut self`, like [`FnMut`]: its capture is
/// state, and the state a call leaves is what gets encoded next.
///
/// # Example
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Sum {
///     total: i64,
/// }
///
/// #[serfn::register]
/// impl serfn::CallMut<i64> for Sum {
///     type Output = i64;
///     fn call_mut(&mut self, x: i64) -> i64 {
///         self.total += x;
///         self.total
///     }
/// }
///
/// let mut f = serfn::SerFnMut::new(Sum { total: 0 });
/// f.call_mut(40);
/// let mut g: serfn::SerFnMut<i64, i64> = serfn::SerFnMut::from_bytes(&f.to_bytes()?)?;
/// assert_eq!(g.call_mut(2), 42);
/// # Ok::<(), serfn::Error>(())
/// ```
pub trait CallMut<A>: Serialize + DeserializeOwned + Send + Sync + 'static
where
    A: Serialize + DeserializeOwned + 'static,
{
    /// What the function returns.
    type Output: Serialize + DeserializeOwned + 'static;

    /// Calls the function, which may change its state.
    fn call_mut(&mut self, args: A) -> Self::Output;
}

/// A function consumed by its call, like [`FnOnce`].
///
/// # Example
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Greeting {
///     text: String,
/// }
///
/// #[serfn::register]
/// impl serfn::CallOnce<()> for Greeting {
///     type Output = String;
///     fn call_once(self, (): ()) -> String {
///         self.text
///     }
/// }
///
/// let f = serfn::SerFnOnce::new(Greeting { text: "hi".into() });
/// assert_eq!(f.call_once(()), "hi");
/// ```
pub trait CallOnce<A>: Serialize + DeserializeOwned + Send + Sync + 'static
where
    A: Serialize + DeserializeOwned + 'static,
{
    /// What the function returns.
    type Output: Serialize + DeserializeOwned + 'static;

    /// Calls the function, consuming it.
    fn call_once(self, args: A) -> Self::Output;
}

/// A function called through `&self` and awaited, any number of times: an
/// async [`Fn`]. Its handle is [`AsyncSerFn`](crate::AsyncSerFn).
///
/// The future must be `Send`, so that a multi-threaded runtime can run it;
/// it may borrow the capture (`&self`).
///
/// # Example
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Greet {
///     greeting: String,
/// }
///
/// #[serfn::register]
/// impl serfn::AsyncCall<String> for Greet {
///     type Output = String;
///     async fn call(&self, name: String) -> String {
///         format!("{}, {name}", self.greeting)
///     }
/// }
///
/// let f = serfn::AsyncSerFn::new(Greet { greeting: "hello".into() });
/// let g: serfn::AsyncSerFn<String, String> = serfn::AsyncSerFn::from_bytes(&f.to_bytes()?)?;
/// # let _ = g;
/// # Ok::<(), serfn::Error>(())
/// ```
pub trait AsyncCall<A>: Serialize + DeserializeOwned + Send + Sync + 'static
where
    A: Serialize + DeserializeOwned + Send + 'static,
{
    /// What the function's future gives.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Calls the function: a future of its output.
    fn call(&self, args: A) -> impl std::future::Future<Output = Self::Output> + Send;
}
