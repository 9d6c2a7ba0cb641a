//! `#[serfn::main]`, the warning of a late `worker::init()`, and workers of
//! a test binary: each checked on the output of a real process.

use std::process::{Command, Output};

serfn::test_support!();

/// Set in the children this file starts, to run their part of a test.
const CHILD: &str = "SERFN_TEST_MAIN_CHILD";

fn run(command: &mut Command) -> (String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    );
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// This test binary, running only `test`, with `CHILD` set.
fn this_binary(test: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1");
    command
}

#[test]
fn main_attribute_prints_the_banner_once() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--example", "banner"])
        .status()
        .unwrap();
    assert!(status.success());
    let dir = std::env::current_exe().unwrap();
    let example = dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(format!("banner{}", std::env::consts::EXE_SUFFIX));
    let (stdout, stderr) = run(&mut Command::new(example));
    assert_eq!(
        stdout,
        "banner: printed once\ndoubled: [2, 4, 6, 8, 10, 12, 14, 16], all in workers: true\n"
    );
    // `init()` came first: no warning.
    assert!(!stderr.contains("serfn:"), "{stderr}");
}

#[test]
fn late_init_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let thread = std::thread::spawn(std::thread::park);
    serfn::worker::init();
    serfn::worker::init();
    println!("returned twice");
    thread.thread().unpark();
    thread.join().unwrap();
}

#[test]
fn init_after_other_threads_warns_once() {
    let (stdout, stderr) = run(&mut this_binary("late_init_child"));
    assert!(stdout.contains("returned twice"), "{stdout}");
    if cfg!(target_os = "linux") {
        let warnings = stderr
            .matches("serfn: worker::init() was called while")
            .count();
        assert_eq!(warnings, 1, "{stderr}");
        assert!(
            stderr.contains("Everything before worker::init() runs again in every worker"),
            "{stderr}"
        );
    }
}

#[test]
fn pool_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let pool = serfn::Pool::builder().workers(2).build().unwrap();
    let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    let squares: Vec<u64> = pool
        .map(&square, 1..=6)
        .collect::<serfn::Result<_>>()
        .unwrap();
    println!("squares: {squares:?}");
}

#[test]
fn test_binary_workers_print_no_libtest_header() {
    let (stdout, stderr) = run(&mut this_binary("pool_child"));
    assert!(
        stdout.contains("squares: [1, 4, 9, 16, 25, 36]"),
        "{stdout}"
    );
    // The child's own libtest header, and none from its workers.
    assert_eq!(stdout.matches("running 1 test").count(), 1, "{stdout}");
    assert_eq!(stdout.matches("test result:").count(), 1, "{stdout}");
    assert!(!stderr.contains("serfn:"), "{stderr}");
}
