//! `explain` into a writer: the list of known names, or one entry with its value here.

use std::io::{self, Write};

use super::{Style, wrap_block};
use crate::catalogue::{ENTRIES, Entry, Kind};

pub fn list(out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "Known names (backlogctl explain NAME):")?;
    for e in ENTRIES {
        writeln!(out, "  {}", e.name)?;
    }
    Ok(())
}

/// One entry: its full name, what it means, its value in this namespace when it has one, and
/// the section of the project's kernel reference it rests on.
pub fn entry(out: &mut dyn Write, e: &Entry, value: Option<&str>, style: Style) -> io::Result<()> {
    let full = match e.kind {
        Kind::Counter(k) | Kind::Sysctl(k) => k,
        Kind::Field => e.name,
    };
    writeln!(out, "{full}")?;
    wrap_block(out, style.width, e.text, "  ", "  ")?;
    if let Some(v) = value {
        writeln!(out, "  Now, in this network namespace: {v}")?;
    }
    writeln!(out, "  Source: docs/kernel.md ({})", e.reference)
}
