//! Renderers: every report of every command into a writer — doctor's text and JSON, all
//! namespaces, watch's table, lines and JSON, lab, explain, Prometheus metrics. They only
//! format; every decision was taken before. Writing goes through `&mut dyn Write`, so a closed
//! pipe surfaces as an error value (handled in `main`) and output is testable into a `Vec<u8>`.

pub mod allns;
pub mod doctor;
pub mod explain;
pub mod lab;
pub mod metrics;
pub mod watch;

use std::io::{self, Write};

use crate::doctor::Severity;

pub use doctor::{json, text};

/// How text output looks: decided once, by the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
    /// Columns prose is wrapped to.
    pub width: usize,
}

impl Style {
    /// No colour, 100 columns: files, pipes, tests.
    pub const PLAIN: Style = Style {
        color: false,
        width: 100,
    };
}

pub(crate) fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Ok => "OK",
        Severity::Warning => "WARNING",
        Severity::Critical => "CRITICAL",
    }
}

pub(crate) fn paint(text: &str, s: Severity, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let code = match s {
        Severity::Ok => "32",
        Severity::Warning => "33",
        Severity::Critical => "1;31",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Greedy word wrap at `width` columns; continuation lines get `indent` plus two spaces.
fn wrap(w: &mut dyn Write, width: usize, text: &str, indent: &str) -> io::Result<()> {
    wrap_block(w, width, text, indent, &format!("{indent}  "))
}

/// Greedy word wrap at `width` columns: the first line starts with `first`, the others with
/// `cont`.
pub fn wrap_block(
    w: &mut dyn Write,
    width: usize,
    text: &str,
    first: &str,
    cont: &str,
) -> io::Result<()> {
    let mut line = String::from(first);
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > width {
            writeln!(w, "{line}")?;
            line = cont.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    writeln!(w, "{line}")
}
