//! The procedural macros of [serfn](https://docs.rs/serfn): use them through
//! serfn, as `#[serfn::register]`, `#[serfn::function]`,
//! `serfn::closure!` and `#[serfn::main]`.
//!
//! The code they generate names serfn's hidden `__private` module, which is
//! not public API: serfn pins this crate with `=` so that both always change
//! together.

mod ast;
mod closure;
mod function;
mod hygiene;
mod main_attr;
mod parse;
mod register;
mod symbol;
mod valid;

use proc_macro::TokenStream;

/// Registers a capture struct's impl of `serfn::Call`, `serfn::CallMut` or
/// `serfn::CallOnce`, so that it can be encoded, decoded and called.
///
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
/// assert_eq!(f.name(), concat!(module_path!(), "::Scale"));
/// let g: serfn::SerFn<f64, f64> = serfn::from_bytes(&serfn::to_bytes(&f)?)?;
/// assert_eq!(g.call(21.0), 42.0);
/// # Ok::<(), serfn::Error>(())
/// ```
///
/// # Arguments
/// - `name = "..."`: the registered name, which the bytes carry. By default
///   it is the module path and the type as written (`my_crate::jobs::Scale`),
///   which changes when the type is renamed or moved; an explicit name
///   survives that. Two explicit names alike in one module do not compile.
/// - `version = N` (default 1): raise it when the capture's layout changes,
///   so that old bytes fail with `serfn::Error::VersionMismatch` instead of
///   decoding into garbage.
/// - `crate = path` (default `::serfn`): where serfn is, for crates that
///   re-export it.
///
/// ```
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Count { seen: u64 }
/// #[serfn::register(name = "jobs::count", version = 2)]
/// impl serfn::CallMut<u64> for Count {
///     type Output = u64;
///     fn call_mut(&mut self, n: u64) -> u64 {
///         self.seen += n;
///         self.seen
///     }
/// }
/// # assert_eq!(serfn::registry::get("jobs::count")?.version(), 2);
/// # Ok::<(), serfn::Error>(())
/// ```
///
/// The impl must be concrete: typetag registers one type per name. Register
/// each instance of a generic capture struct with `serfn::register_instance!`.
#[proc_macro_attribute]
pub fn register(args: TokenStream, input: TokenStream) -> TokenStream {
    register::expand(args.into(), input.into()).into()
}

/// Turns a plain fn into a serializable function whose leading `#[capture]`
/// parameters are bound when it is made: Python's top-level function plus
/// `functools.partial`.
///
/// ```
/// use serfn::SerFn;
///
/// /// `slope * x + intercept`.
/// #[serfn::function]
/// pub fn affine(#[capture] slope: &f64, #[capture] intercept: &f64, x: f64) -> f64 {
///     slope * x + intercept
/// }
///
/// let f: SerFn<f64, f64> = affine(3.0, 1.0);
/// assert_eq!(f.call(2.0), 7.0);
/// let g = SerFn::<f64, f64>::from_bytes(&f.to_bytes()?)?;
/// assert_eq!(g.call(2.0), 7.0);
/// # Ok::<(), serfn::Error>(())
/// ```
///
/// The fn becomes a constructor of the same name, visibility and docs,
/// taking the captures and returning the function: here
/// `pub fn affine(slope: f64, intercept: f64) -> SerFn<f64, f64>`. The
/// captures become the fields of a capture struct, also named `affine`
/// (structs and fns live in different namespaces), which must implement
/// serde's `Serialize` and `Deserialize`.
///
/// The remaining parameters are the arguments: none is `()`, one `x: X` is
/// `X`, several are the tuple `(X, Y, ...)`. How the captures are declared
/// picks the kind, as for a Rust closure:
///
/// | captures                       | trait            | constructor returns |
/// |--------------------------------|------------------|---------------------|
/// | all `&T` (or none)             | `serfn::Call`    | `serfn::SerFn`      |
/// | some `&mut T`, the rest `&T`   | `serfn::CallMut` | `serfn::SerFnMut`   |
/// | some `T`                       | `serfn::CallOnce`| `serfn::SerFnOnce`  |
///
/// ```
/// #[serfn::function]
/// fn count(#[capture] seen: &mut u32, n: u32) -> u32 {
///     *seen += n;
///     *seen
/// }
///
/// let mut f = count(0);
/// f.call_mut(2);
/// assert_eq!(f.call_mut(3), 5);
/// ```
///
/// The name defaults to the module path and the fn's name; `name = "..."`,
/// `version = N` and `crate = path` work as for
/// [`#[serfn::register]`](macro@register). An `async fn` makes an
/// `AsyncSerFn`, its captures taken as `&T`. Generic, `const` and
/// `unsafe` fns, `self` and `impl Trait` are not supported: a registered
/// function has one concrete signature.
#[proc_macro_attribute]
pub fn function(args: TokenStream, input: TokenStream) -> TokenStream {
    function::expand(args.into(), input.into()).into()
}

/// A serializable closure: a `move` closure with a typed capture list and a
/// stable label.
///
/// ```
/// use serfn::{SerFn, SerFnMut, SerFnOnce};
///
/// let factor = 2.0;
/// let scale: SerFn<f64, f64> = serfn::closure!("scale", [factor: f64], move |x: f64| -> f64 { x * factor });
/// assert_eq!(scale.call(21.0), 42.0);
/// assert_eq!(scale.name(), concat!(module_path!(), "::scale"));
///
/// // `mut`: an `FnMut`, whose captures are state.
/// let mut count: SerFnMut<u32, u32> =
///     serfn::closure!(mut "count", [seen: u32 = 0], move |n: u32| -> u32 { *seen += n; *seen });
/// assert_eq!(count.call_mut(2), 2);
///
/// // `once`: an `FnOnce`, which may move its captures out.
/// let report = vec![1, 2, 3];
/// let take: SerFnOnce<(), Vec<i32>> = serfn::closure!(once "report", [report: Vec<i32>], move || -> Vec<i32> { report });
/// assert_eq!(take.call_once(()), [1, 2, 3]);
///
/// // Several arguments are one tuple.
/// let add: SerFn<(i32, i32), i32> = serfn::closure!("add", [], move |x: i32, y: i32| -> i32 { x + y });
/// assert_eq!(add.call((2, 3)), 5);
/// ```
///
/// # Syntax
/// `serfn::closure!([mut | once] "label", [captures], move |args| -> Output { body } [, options])`
///
/// - `mut` makes an `FnMut` (`serfn::SerFnMut`), `once` an `FnOnce`
///   (`serfn::SerFnOnce`); the default is an `Fn` (`serfn::SerFn`).
///   `async move |args| -> Output { body }` makes an async function
///   (`serfn::AsyncSerFn`), whose body sees each capture as `&T`.
/// - Each capture is `name: Type`, which moves the variable `name` in, or
///   `name: Type = value`. The capture types must implement serde's
///   `Serialize` and `Deserialize`. The body sees each capture as a closure
///   of that kind would: `&T` for an `Fn`, `&mut T` for an `FnMut`, `T` for
///   an `FnOnce`.
/// - The closure must be `move`, with a type on each argument and a return
///   type (`-> ()` for none): they make the registered signature. Several
///   arguments are passed as one tuple, none as `()`.
/// - `options` are `name = "..."`, `version = N` and `crate = path`, as for
///   [`#[serfn::register]`](macro@register).
///
/// The body can use only its captures, its arguments, its own bindings and
/// items: a local variable missing from the capture list is refused with
/// "cannot find value `offset` in this scope" (E0425) at the variable, as
/// rustc says of any name the body cannot see (with a note that a variable
/// of that name exists but is out of reach "due to macro hygiene"). Add it
/// to the capture list.
///
/// A capture is owned and concrete: its struct is an item of its own,
/// serialized and rebuilt in other processes. A reference or a lifetime in a
/// capture type is refused with the owned form to write (`ys: &[f64]`:
/// "write `ys: Vec<f64> = ys.to_vec()`"). A generic parameter of the
/// enclosing fn is out of the struct's reach: rustc refuses it with E0401,
/// "can't use generic parameters from outer item", at the capture's type;
/// name a concrete type (a type alias is fine), or write a generic capture
/// struct and register each instance with `serfn::register_instance!`. A
/// capture type must be serde data and `Send + Sync + 'static`: the first
/// error says so, at the type, when it is not. A variable used by two
/// closures is captured by each as a copy: `ys: Vec<f64> = ys.clone()` (to
/// rustc's suggestion `ys.clone(): Vec<f64>` the macro answers with that
/// form).
///
/// # Names
/// The registered name is the module path and the label:
/// `my_crate::jobs::scale`. It is not derived from the line and column of
/// the closure, because a name must be identical in the process that encodes
/// a function and in the one that decodes it, across builds and
/// deployments: line numbers change whenever code above the closure moves,
/// which would silently break every stored or in-flight payload. A label
/// stays the same until it is deliberately changed. Two closures with one
/// label in one module would share a name (a closure's items are local to
/// its block, so the compiler cannot see it): `serfn::registry::check()`
/// reports that, and decoding such a name fails with
/// `serfn::Error::DuplicateFunction`.
#[proc_macro]
pub fn closure(input: TokenStream) -> TokenStream {
    closure::expand(input.into()).into()
}

/// Makes a program's `main` ready to be a pool's worker: calls
/// `serfn::worker::init()` before anything else in it.
///
/// A pool starts its workers by running the program again; in a worker,
/// `init()` serves the pool and never returns. **Everything before
/// `worker::init()` runs again in every worker**, so it must come first:
/// with this attribute there is nothing to remember.
///
/// ```no_run
/// #[serfn::main]
/// fn main() -> Result<(), serfn::Error> {
///     println!("printed once, by the program: never by its workers");
///     let pool = serfn::Pool::new()?;
///     let double = serfn::closure!("double", [], move |x: u64| -> u64 { 2 * x });
///     let doubled: Vec<u64> = pool.map(&double, 1..=3).collect::<serfn::Result<_>>()?;
///     assert_eq!(doubled, [2, 4, 6]);
///     Ok(())
/// }
/// ```
///
/// `fn main() -> Result<..>` works the same way. The attribute goes on
/// `fn main` only, and not on an `async fn main`: an async runtime starts
/// threads that each worker would start again; call `init()` first in a
/// plain `main` and build the runtime after it. `crate = path` names serfn
/// for crates that re-export it.
#[proc_macro_attribute]
pub fn main(args: TokenStream, input: TokenStream) -> TokenStream {
    main_attr::expand(args.into(), input.into()).into()
}
