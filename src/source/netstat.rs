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
    parse_kept(text, counters, &|_| true)
}

/// `parse_into`, keeping only the counters `keep` takes (the exporter's: of some 250 per
/// namespace it writes 30).
pub fn parse_kept(text: &str, counters: &mut Counters, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    let mut key = String::new();
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
        // The fields are ASCII (`seq_printf`), and the Unicode-aware `split_whitespace` was a
        // tenth of reading 100 namespaces' counters.
        if names.split_ascii_whitespace().next().is_some()
            && names.split_ascii_whitespace().all(is_number)
        {
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
        let names: Vec<&str> = names.split_ascii_whitespace().collect();
        let values: Vec<&str> = values.split_ascii_whitespace().collect();
        if names.len() != values.len() {
            problems.push(format!(
                "{section}: {} names but {} values; kept the first {}",
                names.len(),
                values.len(),
                names.len().min(values.len())
            ));
        }
        for (name, value) in names.iter().zip(values.iter()) {
            // Some 300 counters per namespace, of which the exporter keeps 30: the key is
            // built without `format!`, and only a kept one's value is parsed.
            key.clear();
            key.push_str(section);
            key.push(':');
            key.push_str(name);
            if !keep(&key) {
                continue;
            }
            match value.parse::<u64>() {
                Ok(v) => {
                    if counters.insert(key.clone(), v).is_some() {
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
    read_through(&mut |path| std::fs::read_to_string(path), &|_| true)
}

/// `read`, each file read by `file` from its path (`NETSTAT`, `SNMP`, `CONNTRACK`): the
/// exporter's come from descriptors kept open in the namespace.
pub fn read_through(
    file: &mut dyn FnMut(&str) -> std::io::Result<String>,
    keep: &dyn Fn(&str) -> bool,
) -> Result<(Counters, Vec<String>)> {
    let mut counters = Counters::new();
    let text = file(NETSTAT).map_err(|e| Error::read(Path::new(NETSTAT), e))?;
    let mut problems = parse_kept(&text, &mut counters, keep);
    match file(SNMP) {
        Ok(text) => problems.extend(parse_kept(&text, &mut counters, keep)),
        Err(e) => problems.push(format!("cannot read {SNMP}: {e}")),
    }
    // Only where connection tracking is loaded: absent is not a problem.
    if let Ok(text) = file(CONNTRACK) {
        parse_conntrack(&text, &mut counters);
    }
    Ok((counters, problems))
}

/// Connection tracking's statistics, one line per CPU in hexadecimal under a header line.
pub const CONNTRACK: &str = "/proc/thread-self/net/stat/nf_conntrack";

/// The `drop`, `early_drop` and `insert_failed` columns of `/proc/net/stat/nf_conntrack`,
/// summed over the CPUs, as `Conntrack:NAME`. A line that does not parse is skipped; a file
/// without the columns adds nothing.
pub fn parse_conntrack(text: &str, counters: &mut Counters) {
    let mut lines = text.lines();
    let Some(header) = lines.next() else { return };
    let names: Vec<&str> = header.split_whitespace().collect();
    // The catalogue's keys name the columns: `Conntrack:drop` is the `drop` column.
    let keys = crate::catalogue::CONNTRACK;
    let wanted = keys.map(crate::catalogue::short);
    let mut sums = [None::<u64>; crate::catalogue::CONNTRACK.len()];
    for line in lines {
        let values: Vec<Option<u64>> = line
            .split_whitespace()
            .map(|v| u64::from_str_radix(v, 16).ok())
            .collect();
        if values.len() != names.len() {
            continue;
        }
        for (i, w) in wanted.iter().enumerate() {
            if let Some(Some(v)) = names.iter().position(|n| n == w).map(|at| values[at]) {
                sums[i] = Some(sums[i].unwrap_or(0).saturating_add(v));
            }
        }
    }
    for (key, sum) in keys.iter().zip(sums) {
        if let Some(v) = sum {
            counters.insert(key.to_string(), v);
        }
    }
}

/// `Tcp:RetransSegs` alone, of the text of `/proc/net/snmp`: whether anything was sent again
/// since the last look decides whether established connections are worth dumping.
pub fn retrans_segs_of(text: &str) -> Option<u64> {
    counter_of(text, crate::catalogue::RETRANS_SEGS)
}

/// One counter (`Section:Name`) alone, of the text of `/proc/net/snmp` or `netstat`.
pub fn counter_of(text: &str, key: &str) -> Option<u64> {
    let mut counters = Counters::new();
    parse_kept(text, &mut counters, &|k| k == key);
    counters.get(key).copied()
}

/// The namespace's socket counts of IPv4 and of IPv6 (`sockstat6`, absent without IPv6).
pub const SOCKSTAT: &str = "/proc/thread-self/net/sockstat";
pub const SOCKSTAT6: &str = "/proc/thread-self/net/sockstat6";

/// TIME_WAIT sockets of the namespace: `TCP: inuse 5 orphan 0 tw 12 alloc 7 mem 1` → 12.
pub fn parse_sockstat_tw(text: &str) -> Option<u64> {
    sockstat_field(text, "TCP:", "tw")
}

/// `inuse` of the `TCP:` line of `sockstat` (`TCP6:` of `sockstat6`): the TCP sockets of the
/// namespace in its hash tables, listeners and connections (`sock_prot_inuse_add` in
/// `__inet_hash` and `inet_ehash_nolisten`), request and TIME_WAIT sockets apart.
pub fn parse_sockstat_inuse(text: &str, tag: &str) -> Option<u64> {
    sockstat_field(text, tag, "inuse")
}

/// The number after `field` on the line of `text` that starts with `tag`.
fn sockstat_field(text: &str, tag: &str, field: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(tag))?;
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == field {
            return words.next()?.parse().ok();
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_columns_are_summed_over_cpus_in_hex() {
        let text = "entries  clashres  found  new  invalid  ignore  delete  chainlength  insert  insert_failed  drop  early_drop  icmp_error  expect_new  expect_create  expect_delete  search_restart\n\
            00000010  00000000  00000000  00000000  00000000  00000000  00000000  00000000  00000000  00000001  0000000a  00000002  00000000  00000000  00000000  00000000  00000000\n\
            00000010  00000000  00000000  00000000  00000000  00000000  00000000  00000000  00000000  00000000  00000006  00000000  00000000  00000000  00000000  00000000  00000000\n\
            garbage\n";
        let mut c = Counters::new();
        parse_conntrack(text, &mut c);
        assert_eq!(c.get("Conntrack:drop"), Some(&16));
        assert_eq!(c.get("Conntrack:early_drop"), Some(&2));
        assert_eq!(c.get("Conntrack:insert_failed"), Some(&1));
        let mut none = Counters::new();
        parse_conntrack("", &mut none);
        parse_conntrack("entries found\n0 0\n", &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn sockstat_gives_the_time_wait_count() {
        let text =
            "sockets: used 5\nTCP: inuse 5 orphan 0 tw 12 alloc 7 mem 1\nUDP: inuse 0 mem 0\n";
        assert_eq!(parse_sockstat_tw(text), Some(12));
        assert_eq!(parse_sockstat_tw("TCP: inuse 5 tw\n"), None);
        assert_eq!(parse_sockstat_tw(""), None);
    }
}
