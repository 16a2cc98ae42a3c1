//! The diagnosis pipeline that `doctor`, `doctor --all-netns` and `lab` share: record (or
//! load) → name the owners the policy asks for → diagnose once. Rendering is the caller's.
//! Every option means the same in every mode: a namespace of `--all-netns` is recorded with
//! the same sampling, SYN_RECV and owner policy as a single live run.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use crate::catalogue::{ACTIVE_OPENS, OUT_RSTS};
use crate::collect::{self, OwnerCache, Owners, Recorded, Sampling, Sources, listener_inodes};
use crate::doctor::{self, Report};
use crate::error::Result;
use crate::model::{Gap, Netns, Scope, Snapshot, Target};
use crate::source::diag::{Outbound, Query};
use crate::store;

/// A diagnosis and the snapshot it was made from.
pub struct Diagnosis {
    pub snapshot: Snapshot,
    pub report: Report,
}

impl Recorded for Diagnosis {
    fn netns(&self) -> &Netns {
        &self.snapshot.netns
    }
}

/// Records the namespace `sources` read, naming every listener's process unless the policy
/// says not to (`snapshot`).
pub fn record<S: Sources>(
    sources: S,
    scope: &Scope,
    sampling: Sampling,
    owners: Owners,
) -> Result<Snapshot> {
    let (mut snap, mut sources) = collect::record(sources, scope, &sampling)?;
    other_listeners(&mut sources, &mut snap);
    own_connections(&mut sources, &mut snap, owners != Owners::None);
    match owners {
        Owners::None => skipped_owners(&mut snap),
        Owners::All | Owners::TroubledBeyond(_) => {
            let all = listener_inodes(&snap);
            name(&mut sources, &mut snap, &all);
        }
    }
    Ok(snap)
}

fn name<S: Sources>(sources: &mut S, snap: &mut Snapshot, inodes: &HashSet<u64>) {
    OwnerCache::default().name(sources, snap, inodes, Instant::now());
}

fn skipped_owners(snap: &mut Snapshot) {
    snap.gaps.push(Gap::owners_not_looked_up());
}

/// Records the namespace `sources` read and diagnoses it. With many listeners, only the
/// processes of those with something to report are named: the rules classify before the
/// owners are read, and run once.
///
/// With `trace` (`doctor --trace`), every RST of the window is also traced one by one, and
/// the namespace's own connections by their events (errnos, SYNs sent again, resets received,
/// connect latency, connect() refused): the traces start before the first sample and stop
/// after the last. Without the tracepoints or the privilege, a gap says why and the counters
/// alone tell the causes.
pub fn live<S: Sources>(
    mut sources: S,
    scope: &Scope,
    sampling: Sampling,
    owners: Owners,
    trace: bool,
) -> Result<Diagnosis> {
    let tracing = trace.then(|| sources.start_reset_trace());
    let client = trace.then(|| sources.start_client_trace());
    let (mut snap, mut sources) = collect::record(sources, scope, &sampling)?;
    let traced = tracing.map(|started| {
        started.and_then(|()| {
            collect::traced_resets(
                &mut sources,
                snap.netns.inode,
                |a| snap.listens_at(a),
                snap.sysctls.ip_local_port_range,
            )
        })
    });
    match traced {
        None => {}
        Some(Ok(traced)) => snap.resets_traced = Some(traced),
        Some(Err(why)) => snap.gaps.push(Gap::new(
            "reset-trace",
            format!("{why}; the resets' causes come from the counters alone"),
        )),
    }
    if let Some(started) = client {
        traced_clients(&mut sources, &mut snap, started);
    }
    Ok(diagnose_recorded(&mut sources, snap, owners))
}

/// The connecting side's trace into the snapshot; what it could not trace becomes gaps
/// (`client-trace`), each saying which events are missing and what that leaves out.
fn traced_clients<S: Sources>(
    sources: &mut S,
    snap: &mut Snapshot,
    started: std::result::Result<Vec<String>, crate::source::trace::TraceError>,
) {
    let gap = |why: String| Gap::new("client-trace", why);
    match started.and_then(|notes| Ok((notes, collect::traced_clients(sources, snap)?))) {
        Ok((notes, (traced, untied))) => {
            snap.gaps.extend(notes.into_iter().map(gap));
            if untied > 0 {
                snap.gaps.push(gap(format!(
                    "{untied} connect() call(s) refused with EAGAIN or EADDRNOTAVAIL by tasks that \
                     exited before they could be tied to a namespace: not counted"
                )));
            }
            snap.client_traced = Some(traced);
        }
        Err(why) => snap.gaps.push(gap(format!(
            "{why}; the connecting side comes from its sockets and counters alone"
        ))),
    }
}

/// The second half of `live`, for a recording made another way (lab's, during its burst):
/// names the owners the policy asks for and diagnoses once.
pub fn diagnose_recorded<S: Sources>(
    sources: &mut S,
    mut snap: Snapshot,
    owners: Owners,
) -> Diagnosis {
    other_listeners(sources, &mut snap);
    own_connections(sources, &mut snap, owners != Owners::None);
    let triage = doctor::triage(&snap);
    match owners {
        Owners::None => skipped_owners(&mut snap),
        Owners::All => {
            let all = listener_inodes(&snap);
            name(sources, &mut snap, &all);
        }
        Owners::TroubledBeyond(n) => {
            let all = listener_inodes(&snap);
            if all.len() <= n {
                name(sources, &mut snap, &all);
            } else {
                let troubled = triage.troubled();
                let skipped = all.len() - troubled.len();
                name(sources, &mut snap, &troubled);
                snap.gaps
                    .push(Gap::owners_named_only_troubled(troubled.len(), skipped));
            }
        }
    }
    let report = triage.finish(&snap);
    Diagnosis {
        snapshot: snap,
        report,
    }
}

/// With targets, after a window in which the namespace sent RSTs: the namespace's other TCP
/// listeners, which the resets can belong to as much as the targets' (the counters name no
/// socket). One dump of listeners alone, no request sockets, so only when it can matter.
fn other_listeners<S: Sources>(sources: &mut S, snap: &mut Snapshot) {
    let tcp_targets = snap.targets.iter().any(|t| t.inet_port().is_some());
    let sent_resets = snap.counter_delta(OUT_RSTS).is_some_and(|n| n > 0);
    if !tcp_targets || !sent_resets {
        return;
    }
    let q = Query::TCP;
    // Best effort: without it the words say only that the counters are per namespace.
    let Ok(dump) = sources.listeners(&q) else {
        return;
    };
    let mut others: Vec<SocketAddr> = dump
        .listeners
        .iter()
        .filter(|l| !snap.targets.iter().any(|t| t.matches(l)))
        .filter_map(|l| l.local.inet())
        .collect();
    others.sort();
    others.dedup();
    snap.other_listeners = Some(others);
}

/// After a window in which the namespace sent RSTs and opened connections of its own
/// (ActiveOpens rose): the servers those connections go to, and with `name` the processes
/// holding them. The reset counters count a proxy's resets of its upstream connections as
/// much as its listeners' of their clients; this says that there is such a side, and whose.
/// One dump, kept in the kernel to sockets whose local port connect() chose, so accepted
/// connections never cross; best effort, like `other_listeners`.
fn own_connections<S: Sources>(sources: &mut S, snap: &mut Snapshot, name: bool) {
    let rose = |key| snap.counter_delta(key).is_some_and(|n| n > 0);
    if !snap.windowed() || !rose(OUT_RSTS) || !rose(ACTIVE_OPENS) {
        return;
    }
    let range = snap.sysctls.ip_local_port_range;
    let q = Query::outgoing(Outbound {
        established: true,
        closing: true,
        ports: &[],
        info: false,
        local_ports: range.and_then(|r| r.ports()),
    });
    let Ok(dump) = sources.listeners(&q) else {
        return;
    };
    let mut servers = collect::own_servers(&dump.outgoing);
    if name {
        let inodes: HashSet<u64> = servers
            .iter()
            .flat_map(|(_, i)| i.iter().copied())
            .collect();
        let (owners, _) = sources.owners(&inodes);
        for (server, inodes) in &mut servers {
            let mut names: Vec<String> = owners
                .iter()
                .filter(|o| inodes.contains(&o.inode))
                .map(|o| o.comm.clone())
                .collect();
            names.sort();
            names.dedup();
            server.processes = names;
        }
    }
    snap.own_connections = Some(servers.into_iter().map(|(s, _)| s).collect());
}

/// Loads a recorded snapshot, narrowed to `scope` as if it had been recorded with it, and
/// diagnoses it.
pub fn from_file(path: &Path, scope: &Scope) -> Result<Diagnosis> {
    let mut snap = store::load(path)?;
    if !scope.targets.is_empty() {
        restrict(&mut snap, &scope.targets);
    }
    // -t / -x: the other family's listeners as if not recorded.
    for s in &mut snap.samples {
        s.listeners.retain(|l| {
            if l.local.is_unix() {
                scope.families.unix
            } else {
                scope.families.tcp
            }
        });
    }
    snap.set_aside_implausible();
    let mut report = doctor::diagnose(&snap);
    // Commands that name a PID name the process of the recording's time.
    if report.names_pids() {
        let gap = Gap::new(
            "recorded-pids",
            format!(
                "this snapshot was recorded {}: the PIDs in its commands (nsenter -t, kill -HUP, \
                 --pid) name the processes of then; check they still do before running them",
                crate::model::rfc3339(snap.started_unix_ms)
            ),
        );
        report.gaps.push(gap.clone());
        snap.gaps.push(gap);
    }
    Ok(Diagnosis {
        snapshot: snap,
        report,
    })
}

/// Narrows a recorded snapshot to the given targets, as if it had been recorded with them:
/// listeners on a target's port at other addresses go to `other_addresses`.
fn restrict(snap: &mut Snapshot, targets: &[Target]) {
    snap.targets = targets.to_vec();
    snap.resolve_socket_files();
    let targets = snap.targets.clone();
    let ports: HashSet<u16> = targets.iter().filter_map(Target::inet_port).collect();
    let mut others = std::mem::take(&mut snap.other_addresses);
    let mut rest = snap.other_listeners.take().unwrap_or_default();
    for s in &mut snap.samples {
        rest.extend(
            s.listeners
                .iter()
                .filter(|l| !targets.iter().any(|t| t.matches(l)))
                .filter_map(|l| l.local.inet()),
        );
        others.extend(
            s.listeners
                .iter()
                .filter(|l| !targets.iter().any(|t| t.matches(l)))
                .filter_map(|l| l.local.inet())
                .filter(|a| ports.contains(&a.port())),
        );
        s.listeners.retain(|l| targets.iter().any(|t| t.matches(l)));
    }
    others.retain(|a| ports.contains(&a.port()));
    others.sort();
    others.dedup();
    snap.other_addresses = others;
    rest.sort();
    rest.dedup();
    if snap.counter_delta(OUT_RSTS).is_some_and(|n| n > 0) {
        snap.other_listeners = Some(rest);
    }
    let inodes = listener_inodes(snap);
    snap.owners.retain(|o| inodes.contains(&o.inode));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fake::Fake;
    use crate::doctor::Severity;
    use crate::model::{GapKind, Owner};
    use std::time::Duration;

    /// Two resets of websrv's own thread, one of a thread gone since from the listener's
    /// address, one of the listening socket in softirq context, one of another namespace's.
    const TRACE: &str = "\
# entries-in-buffer/entries-written: 5/6   #P:2
           websrv-42      [000] ..... 100.000001: tcp_send_reset: skbaddr=0000000000000000 skaddr=ffff888000000007 src=127.0.0.1:8100 dest=127.0.0.1:40000 state=TCP_CLOSE reason=TCP_ABORT_ON_CLOSE
           websrv-42      [000] ..... 100.000002: tcp_send_reset: skbaddr=0000000000000000 skaddr=ffff888000000008 src=127.0.0.1:8100 dest=127.0.0.1:40002 state=TCP_CLOSE reason=TCP_ABORT_ON_CLOSE
           websrv-43      [001] ..... 100.000003: tcp_send_reset: skbaddr=0000000000000000 skaddr=ffff888000000009 src=127.0.0.1:8100 dest=127.0.0.1:40004 state=TCP_CLOSE reason=TCP_ABORT_ON_CLOSE
          <idle>-0       [001] ..s1. 100.000004: tcp_send_reset: skbaddr=ffff88810a061ce0 skaddr=ffff888000000001 src=127.0.0.1:8100 dest=127.0.0.1:40006 state=TCP_LISTEN reason=NOT_SPECIFIED
            curl-77      [000] ..s1. 100.000005: tcp_send_reset: skbaddr=ffff88810a061ce0 skaddr=0000000000000000 src=10.0.0.1:443 dest=10.0.0.2:5000 state=UNKNOWN reason=NO_SOCKET
";

    fn window() -> Sampling {
        Sampling {
            window: Duration::from_millis(20),
            interval: Duration::from_millis(1),
            syn_recv: false,
        }
    }

    fn websrv() -> Owner {
        Owner {
            inode: 7,
            pid: 42,
            comm: "websrv".into(),
            cmdline: "websrv: master process /usr/sbin/websrv".into(),
            ..Owner::default()
        }
    }

    #[test]
    fn doctor_on_fake_sources_finds_a_full_queue_and_names_its_owner() {
        // B = 5: six waiting is full.
        let fake = Fake {
            holders: vec![websrv()],
            ..Fake::queues(&[0, 6, 6, 2])
        };
        let d = live(fake, &Scope::default(), window(), Owners::All, false).unwrap();
        assert_eq!(d.report.verdict, Severity::Critical);
        assert_eq!(d.snapshot.owners, [websrv()]);
        assert!(d.report.listeners[0].recv_q_peak >= 6);
    }

    #[test]
    fn no_processes_is_a_routine_gap_and_a_queue_with_room_is_not_critical() {
        let fake = Fake {
            holders: vec![websrv()],
            ..Fake::queues(&[0, 1, 0])
        };
        let d = live(fake, &Scope::default(), window(), Owners::None, false).unwrap();
        assert!(d.snapshot.owners.is_empty());
        assert!(
            d.snapshot
                .gaps
                .iter()
                .any(|g| g.kind == GapKind::OwnersNotLookedUp && g.routine())
        );
        // B = 5 is small (a warning), but it never filled.
        assert_eq!(
            d.report.verdict,
            Severity::Warning,
            "{:?}",
            d.report.findings
        );
    }

    #[test]
    fn doctor_trace_on_fake_sources_keeps_the_namespace_s_resets() {
        // websrv (pid 42) lives in namespace 4026532001 and holds the listener whose socket is
        // ffff888000000001; thread 43 and curl are gone by the time the trace is read.
        let fake = Fake {
            holders: vec![websrv()],
            netns: Netns {
                inode: Some(4026532001),
                ..Netns::default()
            },
            trace: Some(TRACE.into()),
            sockets: vec![crate::source::trace::ListeningSocket {
                sk: 0xffff888000000001,
                port: 8100,
            }],
            ..Fake::queues(&[0, 1, 0])
        };
        let d = live(fake, &Scope::default(), window(), Owners::All, true).unwrap();
        // The fake refuses a trace started after the first sample, or finished unstarted.
        assert!(
            !d.snapshot.gaps.iter().any(|g| g.what == "reset-trace"),
            "{:?}",
            d.snapshot.gaps
        );
        let t = d.snapshot.resets_traced.expect("traced");
        assert_eq!((t.elsewhere, t.by_address, t.lost), (1, 1, 1));
        let resets: Vec<(&str, u64, &[String])> = t
            .resets
            .iter()
            .map(|r| (r.reason.as_str(), r.count, r.tasks.as_slice()))
            .collect();
        assert_eq!(
            resets,
            [
                ("TCP_ABORT_ON_CLOSE", 3, &["websrv".to_string()][..]),
                ("NOT_SPECIFIED", 1, &["<idle>".to_string()][..]),
            ]
        );
        assert!(t.resets.iter().all(|r| r.local.port() == 8100));
    }

    #[test]
    fn without_a_tracepoint_doctor_trace_says_why_and_diagnoses_from_the_counters() {
        let fake = Fake {
            trace: None,
            ..Fake::queues(&[0, 6, 6, 2])
        };
        let d = live(fake, &Scope::default(), window(), Owners::None, true).unwrap();
        assert_eq!(d.snapshot.resets_traced, None);
        let gap = d.snapshot.gaps.iter().find(|g| g.what == "reset-trace");
        assert_eq!(
            gap.map(|g| g.reason.as_str()),
            Some("the fake has no tracepoint; the resets' causes come from the counters alone")
        );
        assert_eq!(d.report.verdict, Severity::Critical);
    }
}
