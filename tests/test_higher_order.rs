//! A function inside a capture: the inner function travels in the outer
//! one's bytes and is called in the worker.

serfn::test_support!();

use serfn::{Pool, SerFn};

fn twice(f: SerFn<f64, f64>) -> SerFn<f64, f64> {
    serfn::closure!("higher::twice", [f: SerFn<f64, f64>], move |x: f64| -> f64 {
        f.call(f.call(x))
    })
}

#[test]
fn a_closure_capturing_a_function_runs_in_a_worker() {
    let pool = Pool::builder().workers(2).build().expect("pool starts");
    let offset = 1.5;
    let shift: SerFn<f64, f64> =
        serfn::closure!("higher::shift", [offset: f64], move |x: f64| -> f64 { x + offset });
    let square: SerFn<f64, f64> =
        serfn::closure!("higher::square", [], move |x: f64| -> f64 { x * x });

    let results: Vec<f64> = pool
        .map(&twice(shift), vec![0.0, 1.0, 2.0])
        .collect::<serfn::Result<_>>()
        .unwrap();
    assert_eq!(results, [3.0, 4.0, 5.0]);
    // Nested twice: the inner function is itself a higher-order one.
    assert_eq!(pool.call(&twice(twice(square)), 2.0).unwrap(), 65536.0);
}
