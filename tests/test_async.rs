//! Async functions in this process: the three ways to write one, their
//! handle's calls, encodings and compositions with sync functions, and the
//! typed errors between the two kinds.

use serde::{Deserialize, Serialize};
use serfn::{AsyncSerFn, DynFn, Error, Kind, SerFn};

#[derive(Serialize, Deserialize)]
struct Greet {
    greeting: String,
}

#[serfn::register(name = "test_async::Greet")]
impl serfn::AsyncCall<String> for Greet {
    type Output = String;
    async fn call(&self, name: String) -> String {
        tokio::task::yield_now().await;
        format!("{}, {name}", self.greeting)
    }
}

#[serfn::function(name = "test_async::lookup")]
async fn lookup(#[capture] table: &Vec<u32>, index: usize, fallback: u32) -> u32 {
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    table.get(index).copied().unwrap_or(fallback)
}

fn add(n: i64) -> AsyncSerFn<i64, i64> {
    serfn::closure!("test_async::add", [n: i64], async move |x: i64| -> i64 {
        tokio::task::yield_now().await;
        x + n
    })
}

fn double() -> SerFn<i64, i64> {
    serfn::closure!("test_async::double", [], move |x: i64| -> i64 { 2 * x })
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn each_form_calls_typed_and_decoded() {
    let greet = AsyncSerFn::new(Greet {
        greeting: "hello".into(),
    });
    assert_eq!(block_on(greet.call("ann".into())), "hello, ann");
    let back = AsyncSerFn::<String, String>::from_bytes(&greet.to_bytes().unwrap()).unwrap();
    assert_eq!(block_on(back.call("bo".into())), "hello, bo");

    let f = lookup(vec![7, 8, 9]);
    assert_eq!(f.signature().kind(), Kind::Async);
    assert_eq!(block_on(f.call((1, 0))), 8);
    let back: AsyncSerFn<(usize, u32), u32> =
        serfn::from_bytes(&serfn::to_bytes(&f).unwrap()).unwrap();
    assert_eq!(block_on(back.call((5, 42))), 42);

    assert_eq!(block_on(add(3).call(4)), 7);
}

#[test]
fn a_future_owns_what_it_needs_and_runs_when_polled() {
    let f = add(1);
    let future = f.call(1);
    drop(f);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(
        runtime.block_on(async { tokio::spawn(future).await.unwrap() }),
        2
    );
}

#[test]
fn then_composes_both_ways_typed_and_decoded() {
    // async, sync, async, sync: ((x + 1) * 2 + 10) * 2
    let pipeline = add(1).then(double()).then(add(10)).then(double());
    let from_sync = double().then_async(add(1)); // x * 2 + 1
    assert_eq!(block_on(pipeline.call(1)), 28);
    assert_eq!(block_on(from_sync.call(5)), 11);
    assert_eq!(pipeline.signature().to_string(), "Async(i64) -> i64");

    // Decoded, the stages pass values through the erased pipeline.
    let back = AsyncSerFn::<i64, i64>::from_bytes(&pipeline.to_bytes().unwrap()).unwrap();
    assert_eq!(block_on(back.call(1)), 28);
    assert_eq!(block_on(back.try_call(2)).unwrap(), 32);
    let back = AsyncSerFn::<i64, i64>::from_bytes(&from_sync.to_bytes().unwrap()).unwrap();
    assert_eq!(block_on(back.call(5)), 11);
    // Re-encoding a decoded pipeline gives the same bytes.
    assert_eq!(back.to_bytes().unwrap(), from_sync.to_bytes().unwrap());
}

#[test]
fn a_long_chain_calls_in_constant_stack() {
    let less = serfn::closure!("test_async::less", [], move |x: i64| -> i64 { x - 1 });
    let mut f = add(0);
    for _ in 0..500 {
        f = f.then(add(2)).then(less.clone());
    }
    let decoded = AsyncSerFn::<i64, i64>::from_bytes(&f.to_bytes().unwrap()).unwrap();
    assert_eq!(block_on(f.call(5)), 505);
    assert_eq!(block_on(decoded.call(5)), 505);
}

#[test]
fn sync_and_async_bytes_are_refused_as_each_other() {
    let sync_bytes = double().to_bytes().unwrap();
    let async_bytes = add(1).to_bytes().unwrap();
    assert!(matches!(
        AsyncSerFn::<i64, i64>::from_bytes(&sync_bytes),
        Err(Error::SignatureMismatch { .. })
    ));
    assert!(matches!(
        SerFn::<i64, i64>::from_bytes(&async_bytes),
        Err(Error::SignatureMismatch { .. })
    ));
    assert!(matches!(
        serfn::SerFnOnce::<i64, i64>::from_bytes(&async_bytes),
        Err(Error::SignatureMismatch { .. })
    ));
    // A pipeline's kind is checked too.
    let pipeline = double().then_async(add(1)).to_bytes().unwrap();
    assert!(matches!(
        SerFn::<i64, i64>::from_bytes(&pipeline),
        Err(Error::SignatureMismatch { .. })
    ));
    // Through a DynFn: the types come back only as the right kind.
    let untyped: DynFn = serfn::from_bytes(&async_bytes).unwrap();
    assert_eq!(untyped.signature().kind(), Kind::Async);
    assert!(matches!(
        SerFn::<i64, i64>::try_from(untyped.clone()),
        Err(Error::SignatureMismatch { .. })
    ));
    let typed = AsyncSerFn::<i64, i64>::try_from(untyped.clone()).unwrap();
    assert_eq!(block_on(typed.call(1)), 2);
    // A sync call of an async function is an error, not a panic.
    let args = serfn::codec::encode_value(&1i64).unwrap();
    assert!(matches!(
        untyped.call_bytes(&args),
        Err(Error::SignatureMismatch { .. })
    ));
}

#[test]
fn a_panic_in_the_future_is_the_callers() {
    let boom = serfn::closure!("test_async::boom", [], async move |x: i64| -> i64 {
        tokio::task::yield_now().await;
        assert!(x >= 0, "negative: {x}");
        x
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let joined = runtime.block_on(async { tokio::spawn(boom.call(-1)).await });
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(runtime.block_on(boom.call(1)), 1);
}

static PARSED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn nothing_runs_until_polled_even_a_decoded_pipelines_sync_stage() {
    use std::sync::atomic::Ordering;
    let parse = serfn::closure!("test_async::parse", [], move |s: String| -> i64 {
        PARSED.fetch_add(1, Ordering::SeqCst);
        s.parse().unwrap()
    });
    let typed = parse.then_async(add(1));
    let decoded = AsyncSerFn::<String, i64>::from_bytes(&typed.to_bytes().unwrap()).unwrap();
    let pending = [typed.call("1".into()), decoded.call("2".into())];
    assert_eq!(PARSED.load(Ordering::SeqCst), 0);
    let [a, b] = pending;
    assert_eq!((block_on(a), block_on(b)), (2, 3));
    assert_eq!(PARSED.load(Ordering::SeqCst), 2);
}
