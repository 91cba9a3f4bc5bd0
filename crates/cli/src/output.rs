//! The only place that writes to the terminal: results to stdout, the rest to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

/// Writes a result line to stdout.
pub(crate) fn result(text: &str) {
    println!("{text}");
}

/// Writes a message for the person at the terminal to stderr.
pub(crate) fn note(text: &str) {
    eprintln!("{text}");
}

/// Writes an error and its causes to stderr.
pub(crate) fn error(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}
