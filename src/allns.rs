//! `doctor --all-netns`: every distinct network namespace on the host, each diagnosed on a
//! thread of its own that enters it before opening anything (namespaces are per thread), with
//! the processes and containers it holds. "Which pod is dropping connections", without BPF.
//! Each namespace goes through the same pipeline as a single `doctor`, with the same options.

use serde::Serialize;

use crate::doctor::{Report, Severity};
use crate::error::{Error, Result};
use crate::model::{Gap, Scope};
use crate::options::{Owners, Sampling};
use crate::pipeline;
use crate::source::netns::{self, Found};

/// Namespaces diagnosed at the same time (each mostly sleeps through its window).
const PARALLEL: usize = 8;

#[derive(Serialize)]
pub struct Entry {
    #[serde(flatten)]
    pub ns: Found,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct AllReport {
    pub verdict: Severity,
    /// Troubled namespaces first.
    pub namespaces: Vec<Entry>,
    /// Processes whose namespace, name or cgroup could not be read, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
}

pub fn diagnose(scope: &Scope, sampling: Sampling, owners: Owners) -> Result<AllReport> {
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
                    Ok(pipeline::live(&scope, sampling, owners)?.report)
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
    entries.sort_by_key(|e| std::cmp::Reverse(e.report.as_ref().map(|r| r.verdict)));
    Ok(AllReport {
        verdict,
        namespaces: entries,
        gaps,
    })
}
