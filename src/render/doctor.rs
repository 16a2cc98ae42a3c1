//! doctor's report into a writer, as a readable text report or as JSON. Formats only: every
//! decision was taken by `doctor`.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table, presets};

use super::{Style, paint, severity_word, wrap};
use crate::doctor::{Finding, ListenerView, Report, RuleId, Severity};
use crate::error::{Error, Result};
use crate::model::{NetnsLabel, Where, window_length};

/// Findings of one rule printed in full before the rest are only listed.
const FULL_PER_RULE: usize = 5;
/// The listener table shows every listener up to this many, else the TABLE_TOP most troubled.
const TABLE_ALL_UP_TO: usize = 40;
const TABLE_TOP: usize = 20;
/// Addresses listed for the rest.
const LIST_AT_MOST: usize = 50;

pub fn json(w: &mut dyn Write, report: &Report) -> Result<()> {
    serde_json::to_writer_pretty(&mut *w, report).map_err(|e| Error::Output(io::Error::from(e)))?;
    w.write_all(b"\n").map_err(Error::Output)
}

pub fn text(w: &mut dyn Write, report: &Report, style: Style) -> Result<()> {
    write_text(w, report, style).map_err(Error::Output)
}

/// The report's page, top to bottom: the verdict's line, the listeners, the findings, what
/// could not be observed.
fn write_text(w: &mut dyn Write, r: &Report, style: Style) -> io::Result<()> {
    wrap(w, style.width, &heading(r, style.color), "")?;
    writeln!(w)?;
    if !only_servers(r) {
        listeners(w, r, style)?;
    }
    servers(w, r, style)?;
    findings(w, r, style)?;
    notes(w, r, style)?;
    gaps(w, r, style)
}

/// What was seen below a finding's bar: in full with --verbose, else counted in one line.
fn notes(w: &mut dyn Write, r: &Report, style: Style) -> io::Result<()> {
    if r.notes.is_empty() {
        return Ok(());
    }
    writeln!(w)?;
    if !style.verbose {
        let n = r.notes.len();
        return writeln!(
            w,
            "{n} note(s) below a finding's bar: --verbose shows them."
        );
    }
    writeln!(w, "Notes (below a finding's bar):")?;
    for n in &r.notes {
        wrap(
            w,
            style.width,
            &format!("- {}: {}", n.id.as_str(), n.summary),
            "  ",
        )?;
    }
    Ok(())
}

/// `CRITICAL: 2 problems on 1 listener(s) (700 ms window, 71 samples; kernel 6.18; host network
/// namespace)`.
fn heading(r: &Report, color: bool) -> String {
    let problems = r
        .findings
        .iter()
        .filter(|f| f.severity > Severity::Ok)
        .count();
    let window = if r.window_ms == 0 {
        "one sample".to_string()
    } else {
        format!(
            "{} window, {} samples",
            window_length(r.window_ms),
            r.samples_taken
        )
    };
    let scope = match (r.servers.len(), only_servers(r)) {
        (0, _) => format!("{} listener(s)", r.listeners.len()),
        (n, true) => format!("{n} server(s) this namespace connects to"),
        (n, false) => format!(
            "{} listener(s) and {n} server(s) it connects to",
            r.listeners.len()
        ),
    };
    format!(
        "{}: {} on {scope} ({window}; kernel {}; {})",
        paint(severity_word(r.verdict), r.verdict, color),
        match problems {
            0 => "no problem found".to_string(),
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        },
        r.kernel.as_deref().unwrap_or("unknown"),
        Where::of(&r.netns).label(NetnsLabel::Heading(r.netns.inode)),
    )
}

/// Every target is a server this namespace connects to: no listener of its own was asked for.
fn only_servers(r: &Report) -> bool {
    r.listeners.is_empty()
        && !r.targets.is_empty()
        && r.servers.iter().filter(|v| v.named).count() == r.targets.len()
}

/// The listener table, or a line saying there is none.
fn listeners(w: &mut dyn Write, r: &Report, style: Style) -> io::Result<()> {
    if r.listeners.is_empty() {
        let unix = r
            .targets
            .iter()
            .any(|t| matches!(t, crate::model::Target::Unix(_)));
        return writeln!(
            w,
            "{}",
            if unix {
                "No listener in scope."
            } else {
                "No TCP listener in scope."
            }
        );
    }
    let shown = table_rows(r);
    let table = listener_table(&shown, style.width).to_string();
    // Rows end without the table's padding.
    let lines: Vec<&str> = table.lines().map(str::trim_end).collect();
    if lines.iter().all(|l| l.chars().count() <= style.width) {
        for line in lines {
            writeln!(w, "{line}")?;
        }
    } else {
        stacked_table(w, &shown, style.width)?;
    }
    if shown.len() < r.listeners.len() {
        writeln!(
            w,
            "... and {} more listener(s), quieter (--json lists every one)",
            r.listeners.len() - shown.len()
        )?;
    }
    caps(w, &shown, style)
}

/// The servers this namespace connects to: what its own connections to each showed.
fn servers(w: &mut dyn Write, r: &Report, style: Style) -> io::Result<()> {
    if r.servers.is_empty() {
        return Ok(());
    }
    if !only_servers(r) {
        writeln!(w)?;
    }
    writeln!(w, "Connections from this namespace to servers:")?;
    for n in &r.resolved {
        let addrs: Vec<String> = n.addrs.iter().map(|a| a.to_string()).collect();
        let line = format!("- {} resolved to {}", n.name, addrs.join(", "));
        wrap(w, style.width, &line, "  ")?;
    }
    for v in &r.servers {
        let parts = server_parts(v);
        // A server no target named is listed for its trouble, or because --trace saw it.
        let named = if !v.named && v.in_trouble() {
            " (in trouble)"
        } else {
            ""
        };
        wrap(
            w,
            style.width,
            &format!("- {}{named}: {parts}", v.label()),
            "  ",
        )?;
    }
    Ok(())
}

/// One server's line: what was seen of its connections at the peaks, zeros left out.
fn server_parts(v: &crate::doctor::client::ServerView) -> String {
    let mut parts = Vec::new();
    if v.syn_sent_peak > 0 {
        parts.push(format!("{} connecting", v.syn_sent_peak));
        if v.syn_retried_peak > 0 {
            parts.push(format!(
                "{} of them sent again (up to {}x)",
                v.syn_retried_peak, v.syn_retrans_max
            ));
        }
    }
    match v.established_peak {
        Some(n) if n > 0 => parts.push(format!("{n} established")),
        _ => {}
    }
    if v.completed_late > 0 {
        parts.push(format!("{} completed late", v.completed_late));
    }
    if v.unacked_peak > 0 {
        parts.push(format!("{} unacknowledged", v.unacked_peak));
    }
    if v.time_wait_peak.is_some_and(|n| n > 0) {
        parts.push(format!("{} local ports held", v.ports_held_peak));
    }
    let traced = v.traced.as_ref().map(traced_parts).unwrap_or_default();
    if parts.is_empty() {
        return match traced.is_empty() {
            true => "no connection in trouble seen in the window".into(),
            false => format!("traced: {}", traced.join(", ")),
        };
    }
    let traced = match traced.is_empty() {
        true => String::new(),
        false => format!("; traced: {}", traced.join(", ")),
    };
    let unread = if v.established_peak.is_none() {
        "; established ones not read: nothing was sent again"
    } else {
        ""
    };
    format!("{} (peaks{unread}){traced}", parts.join(", "))
}

/// What `--trace` saw of one server's connections: connects, resets, errors by name.
fn traced_parts(t: &crate::model::TracedRemote) -> Vec<String> {
    let mut parts = Vec::new();
    if t.connected > 0 {
        parts.push(format!("{} connected", t.connected));
    }
    if t.syn_retransmits > 0 {
        parts.push(format!("{} SYNs sent again", t.syn_retransmits));
    }
    if t.resets_received > 0 {
        parts.push(format!("{} reset by it", t.resets_received));
    }
    for (errno, n) in &t.errors {
        let name = match *errno {
            104 => "ECONNRESET".to_string(),
            110 => "ETIMEDOUT".to_string(),
            111 => "ECONNREFUSED".to_string(),
            e => format!("errno {e}"),
        };
        parts.push(format!("{n} {name} to their owners"));
    }
    parts
}

/// What the owners of the listeners shown serve at once, read from their settings.
fn caps(w: &mut dyn Write, shown: &[&ListenerView], style: Style) -> io::Result<()> {
    let capped: Vec<(&ListenerView, &str)> = shown
        .iter()
        .filter_map(|v| Some((*v, v.cap.as_ref()?.text.as_str())))
        .collect();
    if capped.is_empty() {
        return Ok(());
    }
    writeln!(w)?;
    writeln!(w, "Concurrency caps, read from the running processes:")?;
    for (v, text) in capped {
        wrap(w, style.width, &format!("- {}: {text}", v.local), "  ")?;
    }
    Ok(())
}

/// Every finding. On a big host one rule can fire on thousands of listeners: the first few
/// are printed in full, the rest listed by address (all are in --json).
fn findings(w: &mut dyn Write, r: &Report, style: Style) -> io::Result<()> {
    // Sockets of an SO_REUSEPORT group share the address: name the socket too.
    let mut per_addr: HashMap<String, usize> = HashMap::new();
    let mut printed = HashSet::new();
    for v in &r.listeners {
        *per_addr.entry(v.local.to_string()).or_default() += 1;
    }
    let mut shown: HashMap<(RuleId, Severity), usize> = HashMap::new();
    let mut held: Vec<&Finding> = Vec::new();
    for f in &r.findings {
        let n = shown.entry((f.id, f.severity)).or_default();
        *n += 1;
        if *n > FULL_PER_RULE {
            held.push(f);
            continue;
        }
        writeln!(w)?;
        finding(w, f, &per_addr, &mut printed, style)?;
    }
    held_back(w, &held, style)
}

/// The findings beyond FULL_PER_RULE of their rule: one line per rule, then their addresses.
fn held_back(w: &mut dyn Write, held: &[&Finding], style: Style) -> io::Result<()> {
    let mut rules: Vec<(RuleId, Severity)> = held.iter().map(|f| (f.id, f.severity)).collect();
    rules.dedup();
    for (id, sev) in rules {
        let rest: Vec<&str> = held
            .iter()
            .filter(|f| (f.id, f.severity) == (id, sev))
            .flat_map(|f| f.listeners.iter().map(String::as_str))
            .collect();
        writeln!(w)?;
        let label = format!("{:<8}", severity_word(sev));
        writeln!(
            w,
            "{} {}  on {} more listener(s), as above (--json has each):",
            paint(&label, sev, style.color),
            id.as_str(),
            rest.len()
        )?;
        wrap(w, style.width, &address_list(&rest), "  ")?;
    }
    Ok(())
}

/// What could not be observed; the routine gaps only when verbose.
fn gaps(w: &mut dyn Write, r: &Report, style: Style) -> io::Result<()> {
    let gaps: Vec<_> = r
        .gaps
        .iter()
        .filter(|g| style.verbose || !g.routine())
        .collect();
    if !gaps.is_empty() {
        writeln!(w)?;
        writeln!(w, "Not observed:")?;
        for g in gaps {
            wrap(w, style.width, &format!("- {}: {}", g.what, g.reason), "  ")?;
        }
    }
    Ok(())
}

/// All listeners up to TABLE_ALL_UP_TO; beyond, the TABLE_TOP most troubled (queue seen full,
/// dropping, fullest), in their original order.
fn table_rows(r: &Report) -> Vec<&ListenerView> {
    if r.listeners.len() <= TABLE_ALL_UP_TO {
        return r.listeners.iter().collect();
    }
    let mut ranked = ListenerView::most_troubled(&r.listeners, TABLE_TOP);
    ranked.sort_by_key(|(i, _)| *i);
    ranked.into_iter().map(|(_, v)| v).collect()
}

/// One listener's cells: listener, process, Recv-Q now/peak, Send-Q, peak fill, drops, SYN_RECV
/// peak. A Unix listener has no drop counter at all (`n/a`, not `unknown`) and no SYN queue.
fn cells(v: &ListenerView) -> [String; 7] {
    let process = v.process().unwrap_or_else(|| "?".to_string());
    let drops = match (v.drops_delta, v.drops) {
        _ if v.local.is_unix() => "n/a".to_string(),
        (Some(d), Some(t)) => format!("{d}/{t}"),
        (None, Some(t)) => format!("-/{t}"),
        _ => "unknown".to_string(),
    };
    let local = if v.present_at_end {
        v.local.to_string()
    } else {
        format!("{} (closed)", v.local)
    };
    [
        local,
        process,
        format!("{}/{}", v.recv_q, v.recv_q_peak),
        v.send_q.to_string(),
        format!("{}%", v.peak_fill_pct()),
        drops,
        v.syn_recv_peak
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into()),
    ]
}

/// The table for a width the one-line rows do not fit: each listener and its process on a line
/// of their own (a path is never cut: a longer one runs past the width), its numbers under it.
fn stacked_table(w: &mut dyn Write, listeners: &[&ListenerView], width: usize) -> io::Result<()> {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t.set_header(vec![
        "Recv-Q\nnow/peak",
        "Send-Q",
        "Peak\nfill",
        "Drops\nwindow/total",
        "SYN_RECV\npeak",
    ]);
    let rows: Vec<[String; 7]> = listeners.iter().map(|v| cells(v)).collect();
    for [.., recv, send, fill, drops, syn] in &rows {
        t.add_row(vec![recv, send, fill, drops, syn]);
    }
    for i in 0..5 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let text = t.to_string();
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    // The header is two lines; then one line per row, as no cell holds a line break.
    let (header, numbers) = lines.split_at(2.min(lines.len()));
    writeln!(w, " Listener  Process")?;
    // The numbers indented under their listener.
    for line in header {
        writeln!(w, "  {line}")?;
    }
    for ([local, process, ..], numbers) in rows.iter().zip(numbers) {
        if local.chars().count() + process.chars().count() + 3 <= width {
            writeln!(w, " {local}  {process}")?;
        } else {
            writeln!(w, " {local}")?;
            super::wrap_block(w, width, process, "   ", "     ")?;
        }
        writeln!(w, "  {numbers}")?;
    }
    Ok(())
}

fn listener_table(listeners: &[&ListenerView], width: usize) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t.set_content_arrangement(ContentArrangement::Dynamic);
    t.set_width(u16::try_from(width).unwrap_or(u16::MAX));
    // Narrow: headers on two lines, so that only the process column has to wrap.
    let narrow = width < 110;
    let header = |wide: &'static str, two: &'static str| if narrow { two } else { wide };
    t.set_header(vec![
        "Listener",
        "Process",
        header("Recv-Q now/peak", "Recv-Q\nnow/peak"),
        "Send-Q",
        header("Peak fill", "Peak\nfill"),
        header("Drops window/total", "Drops\nwindow/total"),
        header("SYN_RECV peak", "SYN_RECV\npeak"),
    ]);
    for v in listeners {
        t.add_row(cells(v).to_vec());
    }
    for i in 2..7 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    // An address or a number is never broken across lines; the process name wraps between
    // words only: its column is as wide as its longest word, and at least 10.
    let longest = listeners
        .iter()
        .filter_map(|v| v.process())
        .flat_map(|p| p.split_whitespace().map(|w| w.chars().count()).max())
        .max()
        .unwrap_or(0)
        .max(10);
    if let Some(c) = t.column_mut(1) {
        c.set_constraint(ColumnConstraint::LowerBoundary(comfy_table::Width::Fixed(
            u16::try_from(longest).unwrap_or(u16::MAX),
        )));
    }
    for i in [0, 2, 3, 4, 5, 6] {
        if let Some(c) = t.column_mut(i) {
            c.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    t
}

/// One finding. `shared`: addresses that several sockets (SO_REUSEPORT) share, named with
/// their inode. `printed`: plans whose steps an earlier finding printed in full.
fn finding(
    w: &mut dyn Write,
    f: &Finding,
    shared: &HashMap<String, usize>,
    printed: &mut HashSet<usize>,
    style: Style,
) -> io::Result<()> {
    let label = format!("{:<8}", severity_word(f.severity));
    let name = |addr: &str, inode: Option<u64>| match inode {
        Some(i) if shared.get(addr).is_some_and(|n| *n > 1) => format!("{addr} (socket inode {i})"),
        _ => addr.to_string(),
    };
    let whom = f
        .listener
        .as_deref()
        .or(f.target.as_deref())
        .map(|l| format!("  {}", name(l, f.inode)))
        .or_else(|| f.remote.as_deref().map(|s| format!("  server {s}")))
        .unwrap_or_default();
    let head = format!("{label} {}{whom}", f.id.as_str());
    let painted = paint(&label, f.severity, style.color);
    if head.chars().count() <= style.width || whom.is_empty() {
        writeln!(w, "{painted} {}{whom}", f.id.as_str())?;
    } else {
        // Too wide for one line: the listener goes under its finding's name.
        writeln!(w, "{painted} {}", f.id.as_str())?;
        wrap(w, style.width, whom.trim_start(), "  ")?;
    }
    wrap(w, style.width, &f.summary, "  ")?;
    if f.listeners.len() > 1 {
        let named: Vec<String> = f
            .listeners
            .iter()
            .zip(f.inodes.iter().map(Some).chain(std::iter::repeat(None)))
            .map(|(l, i)| name(l, i.copied()))
            .collect();
        wrap(
            w,
            style.width,
            &format!("Listeners: {}", address_list(&named)),
            "  ",
        )?;
    }
    if !f.evidence.is_empty() {
        let ev: Vec<String> = f
            .evidence
            .iter()
            .map(|e| format!("{} = {} ({})", e.name, plain(&e.value), e.source))
            .collect();
        wrap(
            w,
            style.width,
            &format!("Evidence: {}", ev.join("; ")),
            "  ",
        )?;
    }
    fix(w, f, printed, style)
}

/// A finding's fix: its steps, numbered, or a pointer to the same plan printed above.
fn fix(
    w: &mut dyn Write,
    f: &Finding,
    printed: &mut HashSet<usize>,
    style: Style,
) -> io::Result<()> {
    if let Some(plan) = f.fix.plan
        && !printed.insert(plan)
    {
        let target = f
            .fix
            .target_backlog
            .map(|n| format!(" (backlog {n})"))
            .unwrap_or_default();
        return wrap(
            w,
            style.width,
            &format!(
                "Fix: the same plan as above for {}{target}.",
                f.listener.as_deref().unwrap_or("it")
            ),
            "  ",
        );
    }
    match f.fix.text.as_slice() {
        [] => {}
        [one] => wrap(w, style.width, &format!("Fix: {one}"), "  ")?,
        many => {
            writeln!(w, "  Fix:")?;
            for (i, step) in many.iter().enumerate() {
                wrap(w, style.width, &format!("{}. {step}", i + 1), "    ")?;
            }
        }
    }
    Ok(())
}

/// `a, b, c, and 9,950 more`: at most LIST_AT_MOST addresses.
fn address_list<S: AsRef<str>>(all: &[S]) -> String {
    let mut list = all
        .iter()
        .take(LIST_AT_MOST)
        .map(|a| a.as_ref())
        .collect::<Vec<_>>()
        .join(", ");
    if all.len() > LIST_AT_MOST {
        list.push_str(&format!(", and {} more", all.len() - LIST_AT_MOST));
    }
    list
}

fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "unknown".into(),
        other => capped(other),
    }
}

/// Entries of a list the text shows; the rest are counted (JSON keeps them all).
const LIST_SHOWN: usize = 4;

/// A value as JSON with a space after each comma and colon (so that it wraps), every list
/// past `LIST_SHOWN` entries summarised: its length, its most frequent entries with their
/// counts (`127.0.0.1:9100 ×150`), how many more. One evidence line never carries an
/// unbounded list.
fn capped(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Array(items) if items.len() > LIST_SHOWN => summarised(items),
        Value::Array(items) => {
            let all: Vec<String> = items.iter().map(capped).collect();
            format!("[{}]", all.join(", "))
        }
        Value::Object(map) => {
            let all: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), capped(v)))
                .collect();
            format!("{{{}}}", all.join(", "))
        }
        other => other.to_string(),
    }
}

/// A long list as its length and its entries by frequency, equal ones counted once with
/// `×N`, the most frequent first (ties in the list's order).
fn summarised(items: &[serde_json::Value]) -> String {
    let mut groups: Vec<(String, usize)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for text in items.iter().map(capped) {
        match at.get(&text) {
            Some(&i) => groups[i].1 += 1,
            None => {
                at.insert(text.clone(), groups.len());
                groups.push((text, 1));
            }
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.1));
    let shown: Vec<String> = groups
        .iter()
        .take(LIST_SHOWN)
        .map(|(text, n)| match n {
            1 => text.clone(),
            n => format!("{text} ×{n}"),
        })
        .collect();
    let rest: usize = groups.iter().skip(LIST_SHOWN).map(|g| g.1).sum();
    let more = match rest {
        0 => String::new(),
        n => format!(", … {n} more"),
    };
    format!(
        "[{} entries: {}{more} (--json lists all)]",
        items.len(),
        shown.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evidence_lists_are_cut_and_counted_and_short_values_kept_as_json() {
        let short =
            json!({"busy": [{"listener": "127.0.0.1:8090", "recv_q_peak": 17}], "quiet": 0});
        assert_eq!(
            plain(&short),
            r#"{"busy": [{"listener": "127.0.0.1:8090", "recv_q_peak": 17}], "quiet": 0}"#
        );
        let events: Vec<serde_json::Value> = (0..162)
            .map(|i| {
                json!(format!(
                    "127.0.0.1:{}",
                    if i < 150 { 9100 } else { 9000 + i }
                ))
            })
            .collect();
        let text = plain(&json!({"events": events}));
        assert!(
            text.starts_with(
                r#"{"events": [162 entries: "127.0.0.1:9100" ×150, "127.0.0.1:9150", "#
            ),
            "{text}"
        );
        assert!(text.ends_with(", … 9 more (--json lists all)]}"), "{text}");
        let few: Vec<serde_json::Value> = (0..6).map(|i| json!(i % 2)).collect();
        assert_eq!(
            capped(&json!(few)),
            "[6 entries: 0 ×3, 1 ×3 (--json lists all)]"
        );
    }
}
