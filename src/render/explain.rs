//! `explain` into a writer: the list of known names, or one entry with its value here.

use std::io::{self, Write};

use super::{Style, wrap_block};
use crate::catalogue::{ENTRIES, Entry, Kind};
use crate::model::Counters;

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

/// The entry's value in this namespace, as explain says it, from the counters and a sysctl
/// reader; None for a column, which has no one value.
pub(crate) fn now(
    e: &Entry,
    counters: Option<&Counters>,
    sysctl: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    match e.kind {
        Kind::Counter(key) => counters.map(|c| match c.get(key) {
            Some(v) => v.to_string(),
            None => "absent: this kernel does not have this counter".to_string(),
        }),
        Kind::Sysctl(name) => sysctl(name),
        Kind::Field => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::find;

    #[test]
    fn absent_counters_are_not_zero() {
        let e = find("ListenOverflows").unwrap();
        let none = Counters::new();
        assert!(now(e, Some(&none), |_| None).unwrap().starts_with("absent"));
        let some = Counters::from([("TcpExt:ListenOverflows".to_string(), 7)]);
        assert_eq!(now(e, Some(&some), |_| None).unwrap(), "7");
    }
}
