//! `doctor --all-netns`: every distinct network namespace on the host, each recorded and
//! diagnosed by the collection layer's fan-out (workers that enter namespace after namespace,
//! one deadline, who each namespace belongs to), with the same sampling, SYN_RECV and owner
//! policy as a single `doctor`. "Which pod is dropping connections", without BPF.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::collect::{Deadline, Kernel, Namespaces, Owners, Sampling, fan_out};
use crate::doctor::{Report, Severity};
use crate::error::Result;
use crate::model::{Gap, Identity, Scope};
use crate::pipeline;
use crate::source::netns::Member;

/// Namespaces diagnosed at the same time: each mostly sleeps through its window.
const PARALLEL: usize = 8;

/// Time for listing, naming and diagnosing, on top of one window per round of namespaces.
const SLACK: Duration = Duration::from_secs(30);

#[derive(Serialize)]
pub struct Entry {
    pub inode: Option<u64>,
    pub names: Vec<String>,
    pub processes: Vec<Member>,
    /// The pod whose namespace this is, when kubelet's cgroups and logs say so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
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

pub(crate) fn diagnose(scope: &Scope, sampling: Sampling, owners: Owners) -> Result<AllReport> {
    let scope = scope.clone();
    let (mut done, gaps) = fan_out(
        &Namespaces::All,
        Deadline {
            base: SLACK,
            per_round: sampling.window,
        },
        PARALLEL,
        Arc::new(Kernel::default),
        Arc::new(move |k: Kernel| pipeline::live(k, &scope, sampling, owners, false)),
        None,
    )?;
    // Not one could be entered (no privilege): that is the error, not a report.
    if done.iter().all(|d| d.value.is_none())
        && let Some(e) = done.iter_mut().find_map(|d| d.error.take())
    {
        return Err(e);
    }
    let mut entries: Vec<Entry> = done
        .into_iter()
        .map(|d| Entry {
            inode: d.inode,
            names: d.names,
            processes: d.processes,
            pod: pod(&d.identity),
            report: d.value.map(|v| v.report),
            error: d.error.map(|e| e.to_string()),
        })
        .collect();
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

fn pod(id: &Identity) -> Option<Pod> {
    (!id.pod.is_empty()).then(|| Pod {
        namespace: id.pod_namespace.clone(),
        name: id.pod.clone(),
        uid: id.pod_uid.clone(),
    })
}
