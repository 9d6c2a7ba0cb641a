//! The trybuild cases of `tests/ui`: each refuses one mistake, with an
//! error that points at it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
