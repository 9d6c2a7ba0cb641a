//! Writes the seed corpora: `seeds [DIR]` (default `corpus`, next to this
//! crate's manifest) gets one directory per fuzz target, made from the
//! samples in `serfn_fuzz::samples`. Seeds are made, not committed: they
//! follow the format as it changes.

// Built by `cargo fuzz build` with the targets, so instrumented: libFuzzer
// provides the coverage callbacks the instrumentation calls.
extern crate libfuzzer_sys as _;

use std::path::PathBuf;

use serfn::__private::fuzz::{self, tags};
use serfn::Kind;

fn main() -> std::io::Result<()> {
    // The samples panic on purpose; those panics are not news.
    serfn_fuzz::install_panic_hook();
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let mut written = 0;
    let mut write = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        written += 1;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)
    };

    let samples = serfn_fuzz::samples();
    for (index, sample) in samples.iter().enumerate() {
        let label = sample.label;
        let envelope = &sample.envelope;
        // The seeds pass the oracle: a target that refuses them tests nothing.
        let decoded = serfn::DynFn::from_bytes(envelope).expect("a sample decodes");
        serfn_fuzz::check_decoded(envelope, &decoded);
        serfn_fuzz::decode_everything(envelope);
        sample
            .args
            .iter()
            .for_each(|args| (sample.check_args)(args));
        write("envelope", label, envelope)?;
        write("envelope_crc", label, &envelope[1..envelope.len() - 4])?;
        for (i, args) in sample.args.iter().enumerate() {
            let mut input = vec![index as u8];
            input.extend_from_slice(args);
            write("call_args", &format!("{label}-{i}"), &input)?;
        }

        // A session with the worker: load, call in each way the kind
        // allows, take the state back, forget.
        let id = 1u64.to_le_bytes();
        let task = |n: u64| n.to_le_bytes();
        let mut load = id.to_vec();
        load.extend_from_slice(envelope);
        let mut frames = fuzz::frame(tags::LOAD, &load);
        let items = fuzz::items(&sample.args);
        let count = sample.args.len() as u8;
        match sample.kind {
            Kind::Fn => {
                frames.extend(fuzz::frame(
                    tags::BATCH,
                    &[&task(1)[..], &id, &items].concat(),
                ));
                // A codec sequence: the length, then the elements.
                let mut seq =
                    serfn::codec::encode_value(&(sample.args.len() as u64)).expect("encodes");
                seq.extend(sample.args.concat());
                frames.extend(fuzz::frame(
                    tags::BATCH_SEQ,
                    &[&task(2)[..], &id, &seq].concat(),
                ));
                // A group: its items together, each as its own frame would
                // carry it, an items block of one (`seq` 0) or a codec
                // sequence of one (`seq` 1).
                for (seq, first) in [(0u8, 3u64), (1, 99)] {
                    let mut group = [&task(first)[..], &id, &[seq]].concat();
                    group.extend_from_slice(&(sample.args.len() as u32).to_le_bytes());
                    for args in &sample.args {
                        let block = if seq == 0 {
                            fuzz::items(std::slice::from_ref(args))
                        } else {
                            let mut one = serfn::codec::encode_value(&1u64).expect("encodes");
                            one.extend_from_slice(args);
                            one
                        };
                        group.extend_from_slice(&(block.len() as u32).to_le_bytes());
                        group.extend(block);
                    }
                    frames.extend(fuzz::frame(tags::GROUP, &group));
                }
            }
            Kind::FnMut => {
                frames.extend(fuzz::frame(
                    tags::BATCH_MUT,
                    &[&task(1)[..], &id, &items].concat(),
                ));
                frames.extend(fuzz::frame(tags::TAKE, &[&task(2)[..], &id].concat()));
            }
            Kind::FnOnce => {}
            Kind::Async => {
                // No timeout (0 ns), four items at once.
                frames.extend(fuzz::frame(
                    tags::ASYNC_BATCH,
                    &[
                        &task(1)[..],
                        &id,
                        &0u64.to_le_bytes(),
                        &4u32.to_le_bytes(),
                        &items,
                    ]
                    .concat(),
                ));
            }
        }
        let once_items = fuzz::items(&sample.args[..1]);
        let len = (envelope.len() as u32).to_le_bytes();
        frames.extend(fuzz::frame(
            tags::ONCE,
            &[&task(3)[..], &len, envelope, &once_items].concat(),
        ));
        frames.extend(fuzz::frame(tags::FORGET, &id));
        write("worker_frames", label, &frames)?;

        // What the worker answers, as the parent reads it.
        let answers = fuzz::worker_frames(&frames);
        if sample.output == 0 {
            let outcomes = fuzz::parent_answers::<i64>(&answers, u32::from(count));
            assert!(outcomes.iter().any(Result::is_ok), "{label}: {outcomes:?}");
        }
        let mut input = vec![sample.output, count];
        input.extend_from_slice(&answers);
        write("parent_answers", label, &input)?;
        let mut once = vec![sample.output, 1];
        once.extend_from_slice(&answers);
        write("parent_answers", &format!("{label}-one"), &once)?;
    }
    // A FAILED answer: a task for a function never loaded.
    let frames = fuzz::frame(
        tags::TAKE,
        &[&7u64.to_le_bytes()[..], &9u64.to_le_bytes()].concat(),
    );
    write("worker_frames", "unloaded", &frames)?;
    let mut input = vec![0, 3];
    input.extend(fuzz::worker_frames(&frames));
    write("parent_answers", "failed", &input)?;

    println!("wrote {written} seeds under {}", root.display());
    Ok(())
}
