//! The benches' command-line flags: `--flag value` or `--flag=value`;
//! anything else (cargo's `--bench`, filters) is the caller's to ignore.

/// The flags after the program's name.
pub struct Flags(std::iter::Skip<std::env::Args>);

impl Flags {
    pub fn new() -> Self {
        Flags(std::env::args().skip(1))
    }

    /// The next flag, and its value when it was given as `--flag=value`.
    pub fn next_flag(&mut self) -> Option<(String, Option<String>)> {
        let arg = self.0.next()?;
        Some(match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (arg, None),
        })
    }

    /// A flag's value: given inline, or the next argument.
    pub fn value(&mut self, inline: Option<String>) -> Option<String> {
        inline.or_else(|| self.0.next())
    }
}

/// A positive number (underscores allowed), or a panic naming the flag.
pub fn number(flag: &str, value: Option<String>) -> usize {
    value
        .as_deref()
        .and_then(|v| v.replace('_', "").parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| panic!("{flag} needs a positive number"))
}

/// A comma-separated list of workload names.
pub fn names(flag: &str, value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_else(|| panic!("{flag} needs workload names"))
        .split(',')
        .map(String::from)
        .collect()
}
