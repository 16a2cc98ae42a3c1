//! `/proc/net/netstat` and `/proc/net/snmp`: a tolerant parser (pure, `parse`) and a thin
//! reader (`read`). Both files are pairs of lines, a header of names and a line of values, each
//! starting with the same `Section:` tag. We keep every counter present, including ones this
//! build has never heard of, and report nothing for a counter the kernel lacks: absent is
//! unknown, never 0. Malformed pairs become problems for the caller to record, not errors.
//!
//! The files are read through `/proc/thread-self/net/`: `/proc/net` is a link to `self/net`,
//! the *main thread's* namespace, which is wrong after a thread entered another netns.

use std::path::Path;

use crate::error::{Error, Result};
use crate::model::Counters;

/// Where the namespace-correct files live.
pub const NETSTAT: &str = "/proc/thread-self/net/netstat";
pub const SNMP: &str = "/proc/thread-self/net/snmp";

/// Parses one file into `counters`, returning a description of each line pair it could not use
/// fully. Never panics, whatever the input.
pub fn parse_into(text: &str, counters: &mut Counters) -> Vec<String> {
    let mut problems = Vec::new();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut i = 0;
    while i < lines.len() {
        let Some((section, names)) = split_tag(lines[i]) else {
            problems.push(format!(
                "line without a `Section:` tag: {:?}",
                truncate(lines[i])
            ));
            i += 1;
            continue;
        };
        if names.split_whitespace().next().is_some() && names.split_whitespace().all(is_number) {
            problems.push(format!("{section}: values without a header line; skipped"));
            i += 1;
            continue;
        }
        let values = match lines.get(i + 1).and_then(|l| split_tag(l)) {
            Some((tag, values)) if tag == section => values,
            Some(_) => {
                // The next line starts another section: this header lost its values.
                problems.push(format!("{section}: header without a line of values"));
                i += 1;
                continue;
            }
            None => {
                problems.push(format!(
                    "{section}: header without a line of values (truncated file?)"
                ));
                i += 1;
                continue;
            }
        };
        i += 2;
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        if names.len() != values.len() {
            problems.push(format!(
                "{section}: {} names but {} values; kept the first {}",
                names.len(),
                values.len(),
                names.len().min(values.len())
            ));
        }
        for (name, value) in names.iter().zip(values.iter()) {
            match value.parse::<u64>() {
                Ok(v) => {
                    if counters.insert(format!("{section}:{name}"), v).is_some() {
                        problems.push(format!(
                            "{section}:{name} appears twice; the last value is kept"
                        ));
                    }
                }
                // Tcp:MaxConn is -1 by definition ("dynamic"): a setting, not a counter.
                Err(_) if value.starts_with('-') && is_number(value) => {}
                Err(_) => problems.push(format!("{section}:{name}: unreadable value {value:?}")),
            }
        }
    }
    problems
}

/// Parses the text of `/proc/net/netstat` or `/proc/net/snmp` on its own.
pub fn parse(text: &str) -> (Counters, Vec<String>) {
    let mut counters = Counters::new();
    let problems = parse_into(text, &mut counters);
    (counters, problems)
}

/// Reads both files of the calling thread's network namespace. The result is an error only
/// when neither file can be read; a missing `snmp` alone is reported as a problem.
pub fn read() -> Result<(Counters, Vec<String>)> {
    read_from(Path::new(NETSTAT), Path::new(SNMP))
}

pub fn read_from(netstat: &Path, snmp: &Path) -> Result<(Counters, Vec<String>)> {
    let mut counters = Counters::new();
    let text = std::fs::read_to_string(netstat).map_err(|e| Error::read(netstat, e))?;
    let mut problems = parse_into(&text, &mut counters);
    match std::fs::read_to_string(snmp) {
        Ok(text) => problems.extend(parse_into(&text, &mut counters)),
        Err(e) => problems.push(format!("cannot read {}: {e}", snmp.display())),
    }
    Ok((counters, problems))
}

fn split_tag(line: &str) -> Option<(&str, &str)> {
    let (tag, rest) = line.split_once(':')?;
    let tag = tag.trim();
    let ok = !tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then_some((tag, rest))
}

fn is_number(field: &str) -> bool {
    let digits = field.strip_prefix('-').unwrap_or(field);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
