//! `registry::trace_all`: every registered function's layout traced at
//! start-up, the untraceable ones listed, and pool workers tracing before
//! they take work.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Deserializer, Serialize};
use serfn::{Pool, SerFn};

serfn::test_support!();

/// Traceable: plain data.
#[derive(Serialize, Deserialize)]
struct Scale {
    factor: f64,
}

#[serfn::register(name = "trace::scale")]
impl serfn::Call<f64> for Scale {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x * self.factor
    }
}

/// Its `Deserialize` refuses the tracer's zero: the capture is untraced.
#[derive(Serialize, Deserialize)]
struct Every {
    step: NonZeroU32,
}

#[serfn::register(name = "trace::every")]
impl serfn::Call<u32> for Every {
    type Output = bool;
    fn call(&self, n: u32) -> bool {
        n % self.step.get() == 0
    }
}

/// A traceable capture whose argument type is not: the argument is untraced.
#[derive(Serialize, Deserialize)]
struct Halve;

#[serfn::register(name = "trace::halve")]
impl serfn::Call<NonZeroU32> for Halve {
    type Output = u32;
    fn call(&self, n: NonZeroU32) -> u32 {
        n.get() / 2
    }
}

/// Whether a `Watched` capture was deserialized by the tracer in this process.
static WATCHED_TRACED: AtomicBool = AtomicBool::new(false);

/// A capture that notes when the tracer (on its own thread) runs its
/// `Deserialize`, and panics there: a panicking `Deserialize` leaves the
/// type untraced and the caller unharmed.
#[derive(Serialize)]
struct Watched {
    n: u8,
}

impl<'de> Deserialize<'de> for Watched {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = u8::deserialize(deserializer)?;
        if std::thread::current().name() == Some("serfn-trace") {
            WATCHED_TRACED.store(true, Ordering::SeqCst);
            panic!("no made-up values here");
        }
        Ok(Watched { n })
    }
}

#[serfn::register(name = "trace::watched")]
impl serfn::Call<u8> for Watched {
    type Output = u8;
    fn call(&self, x: u8) -> u8 {
        x.wrapping_add(self.n)
    }
}

#[test]
fn trace_all_lists_exactly_the_untraceable_parts() {
    let untraced = serfn::registry::trace_all();
    let mut found: Vec<(&str, &str)> = untraced
        .iter()
        .map(|u| (u.registration().name(), u.part()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("trace::every", "capture"),
            ("trace::halve", "argument"),
            ("trace::watched", "capture"),
        ]
    );
    let watched = untraced
        .iter()
        .find(|u| u.registration().name() == "trace::watched")
        .unwrap();
    assert_eq!(watched.reason(), "a Deserialize impl panicked");
    assert_eq!(
        watched.to_string(),
        "`trace::watched`: the layout of its capture is not checked: a Deserialize impl panicked"
    );
    assert!(WATCHED_TRACED.load(Ordering::SeqCst));

    // Traced once: a second call finds the same, and the traceable ones
    // have their layout.
    assert_eq!(serfn::registry::trace_all().len(), untraced.len());
    let scale = serfn::registry::get("trace::scale").unwrap();
    assert_eq!(scale.layout().unwrap().description(), Ok("{6:factor:f64}"));

    // Untraced functions still encode, decode and run.
    let every = SerFn::new(Every {
        step: NonZeroU32::new(3).unwrap(),
    });
    let decoded = SerFn::<u32, bool>::from_bytes(&every.to_bytes().unwrap()).unwrap();
    assert!(decoded.call(9));
}

#[test]
fn pool_workers_trace_every_function_before_their_first_task() {
    // Asks the worker whether `Watched`, which nothing there decodes, was
    // already traced when the task ran.
    let traced: SerFn<(), bool> = serfn::closure!(
        "was_traced",
        [],
        move |(): ()| -> bool { WATCHED_TRACED.load(Ordering::SeqCst) },
        name = "trace::was_traced"
    );
    let pool = Pool::builder().workers(1).build().unwrap();
    assert!(pool.call(&traced, ()).unwrap());
}
