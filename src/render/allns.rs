//! `doctor --all-netns` into a writer: each troubled namespace's report under a heading that
//! names its processes and containers, then the quiet ones in a list.

use std::io::Write;

use super::Style;
use crate::allns::{AllReport, Entry};
use crate::error::{Error, Result};
use crate::model::{NetnsLabel, Where};

pub fn json(out: &mut dyn Write, all: &AllReport) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, all).map_err(|e| Error::Output(e.into()))?;
    writeln!(out).map_err(Error::Output)
}

pub fn text(out: &mut dyn Write, all: &AllReport, style: Style) -> Result<()> {
    let entries = &all.namespaces;
    let w = |r: std::io::Result<()>| r.map_err(Error::Output);
    let mut quiet = Vec::new();
    for e in entries {
        match (&e.report, &e.error) {
            (Some(r), _) if r.listeners.is_empty() && r.findings.is_empty() => {
                quiet.push(describe(e))
            }
            (Some(r), _) => {
                w(writeln!(out, "=== {}", describe(e)))?;
                super::doctor::text(out, r, style)?;
                w(writeln!(out))?;
            }
            (None, Some(err)) => w(writeln!(out, "=== {}\nnot diagnosed: {err}\n", describe(e)))?,
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
    if !all.gaps.is_empty() {
        w(writeln!(out, "Not observed:"))?;
        for g in &all.gaps {
            let text = format!("- {}: {}", g.what, g.reason);
            w(super::wrap_block(out, style.width, &text, "  ", "    "))?;
        }
    }
    w(out.flush())
}

/// `network namespace 4026532177 "blue": nginx[123], sleep[456] (container 3f2a9c1b0d4e)`.
fn describe(ns: &Entry) -> String {
    let netns = crate::model::Netns {
        inode: ns.inode,
        names: ns.names.clone(),
        ..Default::default()
    };
    let mut s = Where::of(&netns).label(NetnsLabel::Heading(ns.inode));
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
    if let Some(pod) = &ns.pod {
        s.push_str(&format!(" (pod {}/{})", pod.namespace, pod.name));
    }
    s
}
