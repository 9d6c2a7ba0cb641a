//! What the documents show is what the code does: every program output
//! quoted in README.md or the other documents, under a marker
//! `<!-- output: cargo run --example NAME -->`, is the output of that
//! example today, and a document cannot quote one without the marker's check.

mod support;

use std::process::Command;

/// The documents a user reads, by name and text.
const DOCS: [(&str, &str); 5] = [
    ("README.md", include_str!("../README.md")),
    ("ARCHITECTURE.md", include_str!("../ARCHITECTURE.md")),
    ("BENCHMARKS.md", include_str!("../BENCHMARKS.md")),
    ("SECURITY.md", include_str!("../SECURITY.md")),
    ("CHANGELOG.md", include_str!("../CHANGELOG.md")),
];

const MARKER: &str = "<!-- output: ";

/// One quoted output: the command named by its marker and the text of the
/// fenced block that follows it.
#[derive(Debug)]
struct Quoted {
    doc: &'static str,
    command: String,
    text: String,
}

/// Every quoted output of `doc`; panics on a marker without a block after it.
fn quoted(doc: &'static str, text: &str) -> Vec<Quoted> {
    let mut found = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(command) = line.trim().strip_prefix(MARKER) else {
            continue;
        };
        let command = command.trim_end_matches("-->").trim().to_owned();
        let fence = lines.next().map(str::trim);
        assert_eq!(
            fence,
            Some("```text"),
            "{doc}: `{MARKER}{command}` must be followed by a ```text block"
        );
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        found.push(Quoted {
            doc,
            command,
            text: block.join("\n") + "\n",
        });
    }
    found
}

/// Runs `cargo run --example NAME` with this test's features and profile;
/// returns its stdout.
fn run(command: &str) -> String {
    let example = command
        .strip_prefix("cargo run --example ")
        .unwrap_or_else(|| {
            panic!("only `cargo run --example NAME` outputs are checked: `{command}`")
        });
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cargo = Command::new(cargo);
    cargo
        .args(["run", "--quiet", "--example", example])
        .args(support::format_flags())
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    let output = cargo.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "`{command}` failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// The documents quote the default format's sizes (bincode); postcard's
/// differ by a byte here and there, so under postcard a table's `bytes`
/// column is left out of the comparison, and everything else still counts.
fn in_this_format(text: &str) -> String {
    let postcard = cfg!(feature = "postcard") || !cfg!(feature = "bincode");
    let mut column = None;
    let mut out = String::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(at) = words.iter().position(|w| *w == "bytes") {
            column = Some((at, words.len()));
        }
        match column {
            Some((at, width)) if postcard && words.len() == width && words[at] != "bytes" => {
                let mut words = words;
                words[at] = "_";
                out.push_str(&words.join(" "));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn every_quoted_output_is_what_its_command_prints_today() {
    let all: Vec<Quoted> = DOCS
        .iter()
        .flat_map(|(doc, text)| quoted(doc, text))
        .collect();
    // The README's roundtrip output at least: a marker lost in an edit
    // would otherwise turn this test into one that checks nothing.
    assert!(
        all.iter()
            .any(|q| q.doc == "README.md" && q.command == "cargo run --example roundtrip"),
        "README.md quotes the roundtrip example's output under its marker"
    );
    for quoted in &all {
        let printed = run(&quoted.command);
        assert_eq!(
            in_this_format(&printed),
            in_this_format(&quoted.text),
            "{} quotes `{}` as printing the second text; it prints the first",
            quoted.doc,
            quoted.command
        );
    }
}

#[test]
fn a_marker_without_its_block_is_refused() {
    let text = "intro\n<!-- output: cargo run --example roundtrip -->\n```text\na\nb\n```\nafter\n";
    let found = quoted("x.md", text);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].command, "cargo run --example roundtrip");
    assert_eq!(found[0].text, "a\nb\n");
    let missing = std::panic::catch_unwind(|| {
        quoted("x.md", "<!-- output: cargo run --example x -->\nno block\n")
    });
    assert!(missing.is_err());
}
