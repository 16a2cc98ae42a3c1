//! Renderers: every report of every command into a writer — doctor's text and JSON, all
//! namespaces, watch's table, lines and JSON, lab, explain, Prometheus metrics, the SVG timelines. They only
//! format; every decision was taken before. Writing goes through `&mut dyn Write`, so a closed
//! pipe surfaces as an error value (handled in `main`) and output is testable into a `Vec<u8>`.

pub mod allns;
pub mod doctor;
pub mod explain;
pub mod lab;
pub mod metrics;
pub mod plot;
pub mod pretty;
pub mod watch;

use std::io::{self, Write};

use crate::doctor::Severity;

pub use doctor::{json, text};

/// How text output looks: decided once, by the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
    /// Columns prose is wrapped to, measured by the options (COLUMNS, the terminal), never here.
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

/// A client's wait so far, in four characters up to 99 hours, cut down (a client shown `2.9s` has
/// waited at least that): `0s`, `0.4s`, `2.9s`, `38s`, `12m`, `3h`. watch's cells and lines
/// and its summary say a wait this way.
pub(crate) fn wait_short(ms: u32) -> String {
    let tenths = ms / 100;
    if ms == 0 {
        "0s".into()
    } else if tenths < 100 {
        format!("{}.{}s", tenths / 10, tenths % 10)
    } else if ms < 100_000 {
        format!("{}s", ms / 1000)
    } else if ms < 6_000_000 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}h", ms / 3_600_000)
    }
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
        let long = visible_len(&word);
        // A command too long for the indent gets a line of its own, indented less (down to
        // none), so that it can still be copied whole from one line.
        let indent = visible_len(cont);
        if indent + long > width && visible_len(&line) + 1 + long > width {
            if !empty || visible_len(&line) > indent {
                writeln!(w, "{}", line.trim_end())?;
            }
            let room = width.saturating_sub(long).min(indent);
            writeln!(w, "{}{word}", " ".repeat(room))?;
            line = cont.to_string();
            empty = true;
            continue;
        }
        if !empty && visible_len(&line) + 1 + long > width {
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
    if empty && visible_len(&line) == visible_len(cont) && line == cont {
        return Ok(());
    }
    writeln!(w, "{line}")
}

/// Words, with a backtick span (and the punctuation stuck to it) kept as one token. A
/// backtick with no closing one later (a process name may hold one) opens nothing.
fn tokens(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let odd = |w: &str| w.matches('`').count() % 2 == 1;
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    for (i, word) in words.iter().enumerate() {
        if open {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(word);
            }
        } else {
            out.push(word.to_string());
        }
        if odd(word) && (open || words[i + 1..].iter().any(|w| odd(w))) {
            open = !open;
        }
    }
    out
}

/// Columns a string takes on a terminal: ANSI colour sequences take none.
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut escape = false;
    for c in s.chars() {
        match (escape, c) {
            (false, '\x1b') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_fits_four_characters_and_never_rounds_up() {
        let said: Vec<String> = [0, 50, 450, 2_999, 9_999, 10_000, 99_999, 100_000, 5_999_999]
            .into_iter()
            .chain([6_000_000, u32::MAX])
            .map(wait_short)
            .collect();
        assert_eq!(
            said,
            [
                "0s", "0.0s", "0.4s", "2.9s", "9.9s", "10s", "99s", "1m", "99m", "1h", "1193h"
            ]
        );
    }

    fn wrapped(text: &str, width: usize) -> String {
        let mut out = Vec::new();
        wrap_block(&mut out, width, text, "  ", "    ").unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_command_too_wide_for_its_indent_is_indented_less_to_fit() {
        // 58 columns: it fits at 60 only with an indent of 2 or less.
        let cmd = "`nsenter -t 12345 -n sysctl -w net.core.somaxconn=4096abc`";
        assert_eq!(cmd.chars().count(), 58);
        let out = wrapped(&format!("raise it: {cmd}; then check"), 60);
        assert!(out.lines().all(|l| l.chars().count() <= 60), "{out}");
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(cmd)),
            "{out}"
        );
        // One that fits nowhere starts its line and stays whole.
        let long = format!("`{}`", "x".repeat(70));
        let out = wrapped(&format!("run {long} now"), 60);
        assert!(out.lines().any(|l| l == long), "{out}");
        assert!(
            out.lines().all(|l| !l.trim().is_empty()),
            "no empty line: {out}"
        );
    }

    #[test]
    fn commands_are_never_broken() {
        let cmd = "`ip netns exec bwebsrv sysctl -w net.core.somaxconn=8192`";
        let text = format!(
            "raise net.core.somaxconn to 8192 in the network namespace bwebsrv: {cmd}; keep it"
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
        // A lone backtick (a process name may hold one) does not stop the wrapping.
        let lone = format!("py`thon {}", "word ".repeat(40));
        assert!(
            wrapped(&lone, 60).lines().all(|l| l.len() <= 60),
            "{}",
            wrapped(&lone, 60)
        );
        // Colour takes no columns.
        let painted = format!("\x1b[1;31mCRITICAL\x1b[0m {}", "word ".repeat(20));
        assert!(wrapped(&painted, 60).lines().next().unwrap().len() > 60);
        // Plain prose still wraps at the width.
        assert!(
            wrapped(&"word ".repeat(40), 60)
                .lines()
                .all(|l| l.len() <= 60)
        );
    }
}
