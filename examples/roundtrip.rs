//! The three ways to define a serializable function; each is encoded,
//! decoded and called, here and in a second process of this binary.
//!
//! `cargo run --example roundtrip`

#[path = "shared/functions.rs"]
mod functions;

use std::error::Error;
use std::io::{self, Read, Write};
use std::process::{Command, Stdio};

use serfn::{codec, DynFn, Limits, SerFn, SerFnMut};

use functions::{affine, running_mean, Scale};

fn main() -> Result<(), Box<dyn Error>> {
    if std::env::args().nth(1).as_deref() == Some("--serve") {
        if let Err(error) = serve() {
            eprintln!("roundtrip --serve: {error}");
            std::process::exit(1);
        }
        return Ok(());
    }

    // 1. A capture struct with a registered impl.
    let scale = SerFn::new(Scale { factor: 2.5 });
    // 2. A plain function with bound captures: `affine(slope, intercept)`.
    let line = affine(3.0, -1.0);
    // 3. A closure with an explicit capture list and a stable label.
    let offset = 0.25;
    let shift: SerFn<f64, f64> =
        serfn::closure!("shift", [offset: f64], move |x: f64| -> f64 { x + offset });
    // Composition is serializable too.
    let pipeline = scale.clone().then(line.clone()).then(shift.clone());

    serfn::registry::check()?;
    println!(
        "{:<22} {:>6}  {:>10}  {:>10}",
        "function", "bytes", "here", "child"
    );
    let mut child = Child::spawn()?;
    for f in [scale, line, shift, pipeline] {
        let bytes = f.to_bytes()?;
        let here = SerFn::<f64, f64>::from_bytes(&bytes)?.call(2.0);
        let there: f64 = codec::decode_result(
            &child.call(&bytes, &codec::encode_value(&2.0f64)?)?,
            &Limits::default(),
        )?;
        assert_eq!(here, there);
        println!(
            "{:<22} {:>6}  {:>10}  {:>10}",
            f.name(),
            bytes.len(),
            here,
            there
        );
    }

    // State travels: the child continues the mean where this process left it.
    let mut mean: SerFnMut<f64, f64> = running_mean(0, 0.0);
    mean.call_mut(1.0);
    mean.call_mut(2.0);
    let there: f64 = codec::decode_result(
        &child.call(&mean.to_bytes()?, &codec::encode_value(&6.0f64)?)?,
        &Limits::default(),
    )?;
    println!("running mean of 1, 2 (here) and 6 (child): {there}");
    assert_eq!(there, 3.0);

    // A panic in the child comes back as a typed error; the child lives on.
    let sqrt = functions::checked_sqrt();
    let output = child.call(&sqrt.to_bytes()?, &codec::encode_value(&-4.0f64)?)?;
    match codec::decode_result::<f64>(&output, &Limits::default()) {
        Err(error @ serfn::Error::Panicked { .. }) => println!("child reported: {error}"),
        other => return Err(format!("expected a panic, got {other:?}").into()),
    }
    child.finish()?;
    Ok(())
}

/// A second process of this binary, fed functions and arguments on stdin.
struct Child {
    process: std::process::Child,
}

impl Child {
    fn spawn() -> io::Result<Self> {
        let process = Command::new(std::env::current_exe()?)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        Ok(Child { process })
    }

    fn call(&mut self, function: &[u8], args: &[u8]) -> io::Result<Vec<u8>> {
        let stdin = self.process.stdin.as_mut().expect("piped");
        write_frame(stdin, function)?;
        write_frame(stdin, args)?;
        stdin.flush()?;
        read_frame(self.process.stdout.as_mut().expect("piped"))?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "child exited"))
    }

    fn finish(mut self) -> io::Result<()> {
        drop(self.process.stdin.take());
        let status = self.process.wait()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("child failed: {status}")))
        }
    }
}

/// The child: decode each function, call it on its arguments, answer with the result.
fn serve() -> Result<(), Box<dyn Error>> {
    let (mut stdin, mut stdout) = (io::stdin().lock(), io::stdout().lock());
    // Panics are returned to the parent; keep the child's stderr quiet about them.
    std::panic::set_hook(Box::new(|_| {}));
    while let Some(function) = read_frame(&mut stdin)? {
        let args = read_frame(&mut stdin)?.ok_or("arguments missing")?;
        let f = DynFn::from_bytes(&function)?;
        let output = f.call_bytes_once(&args)?;
        write_frame(&mut stdout, &output)?;
        stdout.flush()?;
    }
    Ok(())
}

fn write_frame(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(&(bytes.len() as u32).to_le_bytes())?;
    out.write_all(bytes)
}

/// One length-prefixed frame, or `None` at a clean end of input.
fn read_frame(input: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > Limits::DEFAULT_MAX_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut bytes = vec![0; len];
    input.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}
