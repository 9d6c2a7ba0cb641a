//! Bytes encoded here are decoded and called by another binary of the crate
//! (the `roundtrip` example in `--serve` mode), which links the same
//! definitions from `examples/shared/functions.rs`.

#[path = "../examples/shared/functions.rs"]
mod functions;
mod support;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serfn::{codec, Limits, SerFn};

/// Registered in this test binary only: the example cannot decode it.
#[derive(Serialize, Deserialize)]
struct OnlyHere;

#[serfn::register(name = "tests::OnlyHere")]
impl serfn::Call<f64> for OnlyHere {
    type Output = f64;
    fn call(&self, x: f64) -> f64 {
        x
    }
}

/// The example binary, brought up to date with this test's wire format (one
/// left by a run with other features would refuse these bytes).
fn example() -> PathBuf {
    let dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let path = dir
        .join("examples")
        .join(format!("roundtrip{}", std::env::consts::EXE_SUFFIX));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--example", "roundtrip"])
        .args(support::format_flags())
        .status()
        .unwrap();
    assert!(status.success());
    path
}

fn frame(bytes: &[u8]) -> Vec<u8> {
    [&(bytes.len() as u32).to_le_bytes()[..], bytes].concat()
}

/// Sends `(function, args)` pairs to a fresh child; returns its answers and stderr.
fn serve(calls: &[(Vec<u8>, Vec<u8>)]) -> (Vec<Vec<u8>>, bool, String) {
    let mut child = Command::new(example())
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = Vec::new();
    for (function, args) in calls {
        input.extend(frame(function));
        input.extend(frame(args));
    }
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    let mut answers = Vec::new();
    let mut rest = &stdout[..];
    while rest.len() >= 4 {
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        answers.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    (answers, status.success(), stderr)
}

fn arg(x: f64) -> Vec<u8> {
    codec::encode_value(&x).unwrap()
}

#[test]
fn another_binary_decodes_and_calls() {
    let scale = SerFn::new(functions::Scale { factor: 4.0 });
    let line = functions::affine(2.0, 1.0);
    let mut mean = functions::running_mean(0, 0.0);
    mean.call_mut(10.0);
    let calls = vec![
        (scale.to_bytes().unwrap(), arg(1.5)),
        (line.to_bytes().unwrap(), arg(3.0)),
        (scale.then(line).to_bytes().unwrap(), arg(1.0)),
        (mean.to_bytes().unwrap(), arg(20.0)),
        (functions::checked_sqrt().to_bytes().unwrap(), arg(-1.0)),
    ];
    let (answers, success, stderr) = serve(&calls);
    assert!(success, "{stderr}");
    let results: Vec<serfn::Result<f64>> = answers
        .iter()
        .map(|answer| codec::decode_result::<f64>(answer, &Limits::default()))
        .collect();
    assert_eq!(results[0].as_ref().unwrap(), &6.0);
    assert_eq!(results[1].as_ref().unwrap(), &7.0);
    assert_eq!(results[2].as_ref().unwrap(), &9.0);
    assert_eq!(results[3].as_ref().unwrap(), &15.0);
    match &results[4] {
        Err(serfn::Error::Panicked { name, message, .. }) => {
            assert_eq!(name, "examples::checked_sqrt");
            assert_eq!(message, "square root of negative number -1");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn another_binary_refuses_a_function_it_does_not_register() {
    let calls = vec![(SerFn::new(OnlyHere).to_bytes().unwrap(), arg(1.0))];
    let (answers, success, stderr) = serve(&calls);
    assert!(answers.is_empty());
    assert!(!success);
    assert!(
        stderr.contains("function `tests::OnlyHere` is not registered in this binary"),
        "{stderr}"
    );
}
