//! Types that appear in serfn's signatures and bounds but that you seldom
//! name yourself.
//!
//! - [`Signature`], [`Kind`] and [`TypeInfo`]: what
//!   [`SerFn::signature`](crate::SerFn::signature) returns, and what
//!   [`Error::SignatureMismatch`](crate::Error::SignatureMismatch) prints;
//! - [`Layout`]: a capture's traced serde layout, from
//!   [`Registration::layout`](crate::registry::Registration::layout);
//! - [`ArgTuple`] and [`SplitFirst`]: the bounds of
//!   [`bind`](crate::SerFn::bind), implemented for tuples up to 8 elements.
//!
//! ```
//! use serfn::plumbing::Kind;
//!
//! let f = serfn::closure!("plumbing::add", [], move |x: i32, y: i32| -> i32 { x + y });
//! assert_eq!(f.signature().kind(), Kind::Fn);
//! assert_eq!(f.signature().args().name(), "(i32, i32)");
//! ```

pub use crate::compose::{ArgTuple, SplitFirst};
pub use crate::schema::Layout;
pub use crate::signature::{Kind, Signature, TypeInfo};
