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
    /// Also what could not be observed without changing the verdict.
    pub verbose: bool,
}

impl Style {
    /// No colour, 100 columns: files, pipes, tests.
    pub const PLAIN: Style = Style {
        color: false,
        width: 100,
        verbose: true,
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
/// `cont`. A command in backticks is never broken, so that it can be copied: when it does not
/// fit on the current line it goes on a line of its own, indented, even past the width.
pub fn wrap_block(
    w: &mut dyn Write,
    width: usize,
    text: &str,
    first: &str,
    cont: &str,
) -> io::Result<()> {
    let mut line = String::from(first);
    let mut empty = true;
    for word in tokens(text) {
        let long = word.chars().count();
        if !empty && line.chars().count() + 1 + long > width {
            writeln!(w, "{line}")?;
            line = cont.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(&word);
        empty = false;
    }
    writeln!(w, "{line}")
}

/// Words, with a backtick span (and the punctuation stuck to it) kept as one token.
fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    for word in text.split_whitespace() {
        if open {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(word);
            }
        } else {
            out.push(word.to_string());
        }
        if word.matches('`').count() % 2 == 1 {
            open = !open;
        }
    }
    out
}

/// The width of the output: COLUMNS when set, else the terminal's, else 100 (files, pipes);
/// never below MIN_WIDTH, so that prose stays readable.
pub fn output_width(is_terminal: bool) -> usize {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0);
    let measured = columns.or_else(|| is_terminal.then(terminal_columns).flatten());
    measured.unwrap_or(Style::PLAIN.width).max(MIN_WIDTH)
}

/// Prose narrower than this is hard to read; a narrower terminal wraps it itself.
pub const MIN_WIDTH: usize = 60;

/// Columns of the terminal on stdout (TIOCGWINSZ).
fn terminal_columns() -> Option<usize> {
    use nix::libc;
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the winsize we own; stdout's fd stays open for the call.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(text: &str, width: usize) -> String {
        let mut out = Vec::new();
        wrap_block(&mut out, width, text, "  ", "    ").unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn commands_are_never_broken() {
        let cmd = "`ip netns exec bnginx sysctl -w net.core.somaxconn=8192`";
        let text = format!(
            "raise net.core.somaxconn to 8192 in the network namespace bnginx: {cmd}; keep it"
        );
        for width in [40, 60, 80, 100] {
            let out = wrapped(&text, width);
            assert!(
                out.lines().any(|l| l.contains(cmd)),
                "width {width}: the command was split:\n{out}"
            );
            for l in out.lines().filter(|l| !l.contains('`')) {
                assert!(l.chars().count() <= width, "width {width}: {l:?}");
            }
        }
        // Plain prose still wraps at the width.
        assert!(
            wrapped(&"word ".repeat(40), 60)
                .lines()
                .all(|l| l.len() <= 60)
        );
    }
}
