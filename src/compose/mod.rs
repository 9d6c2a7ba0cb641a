//! Composition: pipelines (`then`) and partial application (`bind`).
//!
//! Both are registered functions of serfn's own that hold other functions,
//! so a composed function encodes, decodes and runs like any other.

mod bind;
mod then;

pub(crate) use self::bind::{bind, check_nothing_bound};
pub use self::bind::{ArgTuple, SplitFirst};
pub(crate) use self::then::then;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::handle::wire;
use crate::registry::SerializableFn;

/// A function held by a combinator, encoded with the usual checks.
struct Stage(Arc<dyn SerializableFn>);

impl Serialize for Stage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StageRef(&*self.0).serialize(serializer)
    }
}

/// A held function, encoded in place.
struct StageRef<'a>(&'a dyn SerializableFn);

impl Serialize for StageRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        wire::serialize(self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Stage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        wire::deserialize(deserializer, None).map(Stage)
    }
}

impl fmt::Debug for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.name(), self.0.signature())
    }
}
