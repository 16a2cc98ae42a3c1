//! `doctor --all-netns`: every distinct network namespace on the host, each diagnosed on a
//! thread of its own that enters it before opening anything (namespaces are per thread), with
//! the processes and containers it holds. "Which pod is dropping connections", without BPF.

use std::io::Write;

use serde::Serialize;

use crate::doctor::{self, Report, Severity};
use crate::error::{Error, Result};
use crate::model::Gap;
use crate::record::{self, Plan, Scope};
use crate::render;
use crate::source::netns::{self, Found};

/// Namespaces diagnosed at the same time (each mostly sleeps through its window).
const PARALLEL: usize = 8;

#[derive(Serialize)]
struct Entry {
    #[serde(flatten)]
    ns: Found,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct AllReport {
    verdict: Severity,
    namespaces: Vec<Entry>,
    /// Processes whose namespace, name or cgroup could not be read, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gaps: Vec<Gap>,
}

pub fn run(
    scope: Scope,
    plan: Plan,
    json: bool,
    color: bool,
    out: &mut dyn Write,
) -> Result<Severity> {
    let (found, gaps) = netns::all();
    if found.is_empty() {
        return Err(Error::Permission {
            what: "listing network namespaces".into(),
            hint: "neither /run/netns nor /proc/*/ns/net could be read; run as root".into(),
        });
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut first_error: Option<Error> = None;
    for chunk in found.chunks(PARALLEL) {
        let handles: Vec<_> = chunk
            .iter()
            .map(|ns| {
                let (path, scope) = (ns.path.clone(), scope.clone());
                std::thread::spawn(move || -> Result<Report> {
                    netns::enter(&netns::Which::Named(path.to_string_lossy().into_owned()))?;
                    let snap = record::record(&scope, &plan)?;
                    Ok(doctor::diagnose(&snap))
                })
            })
            .collect();
        for (ns, h) in chunk.iter().zip(handles) {
            let (report, error) = match h.join() {
                Ok(Ok(r)) => (Some(r), None),
                Ok(Err(e)) => {
                    let text = e.to_string();
                    first_error.get_or_insert(e);
                    (None, Some(text))
                }
                Err(_) => (None, Some("internal error while diagnosing".into())),
            };
            entries.push(Entry {
                ns: ns.clone(),
                report,
                error,
            });
        }
    }
    // Not one could be entered (no privilege): that is the error, not a report.
    if entries.iter().all(|e| e.error.is_some())
        && let Some(e) = first_error
    {
        return Err(e);
    }
    let verdict = entries
        .iter()
        .filter_map(|e| e.report.as_ref())
        .map(|r| r.verdict)
        .max()
        .unwrap_or(Severity::Ok);
    // Troubled namespaces first.
    entries.sort_by_key(|e| std::cmp::Reverse(e.report.as_ref().map(|r| r.verdict)));
    if json {
        let all = AllReport {
            verdict,
            namespaces: entries,
            gaps,
        };
        serde_json::to_writer_pretty(&mut *out, &all).map_err(|e| Error::Output(e.into()))?;
        writeln!(out).map_err(Error::Output)?;
        return Ok(verdict);
    }
    let w = |r: std::io::Result<()>| r.map_err(Error::Output);
    let mut quiet = Vec::new();
    for e in &entries {
        match (&e.report, &e.error) {
            (Some(r), _) if r.listeners.is_empty() && r.findings.is_empty() => {
                quiet.push(describe(&e.ns))
            }
            (Some(r), _) => {
                w(writeln!(out, "=== {}", describe(&e.ns)))?;
                render::text(out, r, color)?;
                w(writeln!(out))?;
            }
            (None, Some(err)) => w(writeln!(
                out,
                "=== {}\nnot diagnosed: {err}\n",
                describe(&e.ns)
            ))?,
            (None, None) => {}
        }
    }
    if !quiet.is_empty() {
        w(writeln!(
            out,
            "{} namespace(s) without TCP listeners in scope:",
            quiet.len()
        ))?;
        for q in quiet {
            w(writeln!(out, "  {q}"))?;
        }
    }
    if !gaps.is_empty() {
        w(writeln!(out, "Not observed:"))?;
        for g in &gaps {
            let text = format!("- {}: {}", g.what, g.reason);
            w(render::wrap_block(out, &text, "  ", "    "))?;
        }
    }
    w(out.flush())?;
    Ok(verdict)
}

/// `network namespace 4026532177 "blue": nginx[123], sleep[456] (container 3f2a9c1b0d4e)`.
fn describe(ns: &Found) -> String {
    let mut s = format!("network namespace {}", ns.inode);
    if !ns.names.is_empty() {
        s.push_str(&format!(" ({})", ns.names.join(", ")));
    }
    let procs: Vec<String> = ns
        .processes
        .iter()
        .take(5)
        .map(|p| match &p.comm {
            Some(comm) => format!("{comm}[{}]", p.pid),
            None => format!("pid {}", p.pid),
        })
        .collect();
    if !procs.is_empty() {
        s.push_str(&format!(": {}", procs.join(", ")));
        if ns.processes.len() > 5 {
            s.push_str(&format!(" and {} more", ns.processes.len() - 5));
        }
    }
    let mut containers: Vec<&str> = ns
        .processes
        .iter()
        .filter_map(|p| p.container.as_deref())
        .collect();
    containers.sort_unstable();
    containers.dedup();
    match containers.as_slice() {
        [] => {}
        [one] => s.push_str(&format!(" (container {})", &one[..12])),
        many => s.push_str(&format!(
            " ({} containers: {})",
            many.len(),
            many.iter().map(|c| &c[..12]).collect::<Vec<_>>().join(", ")
        )),
    }
    if let Some(cg) = ns
        .processes
        .iter()
        .filter_map(|p| p.cgroup.as_deref())
        .find(|c| !c.is_empty() && *c != "/")
    {
        if containers.is_empty() {
            s.push_str(&format!(" [cgroup {cg}]"));
        }
    }
    s
}
