//! The connecting side's findings: what this namespace's own connections to a server say about
//! that server, judged by what the client's code gets (docs/kernel.md, "The client's side").
//! From the client alone the kernel tells: connects sent again for want of a SYN-ACK (SYN_SENT,
//! `idiag_retrans`), requests the server's kernel never acknowledged (ESTABLISHED, Send-Q above
//! 0, sent again), local ports held per server against `ip_local_port_range`, the namespace's
//! resets and failed connects (EstabResets, AttemptFails, which name no socket), a full
//! connection-tracking table, and with `--trace` each socket's errno by server.
//!
//! A server that is this namespace's own listener is left to the listener findings: they say
//! the same about the same connections, from the side where the fix is.

mod words;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;
use serde_json::json;

use super::remedy::{self, Action};
use super::rules::ev;
use super::{Finding, Fix, RuleId, Severity};
use crate::catalogue::{
    ATTEMPT_FAILS, CONNTRACK_DROP, CONNTRACK_EARLY_DROP, CONNTRACK_INSERT_FAILED, ESTAB_RESETS,
    OUT_RSTS, RETRANS_SEGS, SYN_RETRANS, TCP_TIMEOUTS,
};
use crate::model::{Snapshot, TracedRemote, is_local};

/// The share of the local port range one server's connections may hold before it is worth a
/// warning; all of it is the failure itself.
const PORTS_WARNING_PCT: u64 = 80;
/// A conntrack table this full drops new flows at the next burst.
const CONNTRACK_WARNING_PCT: u64 = 90;
/// errnos as `inet_sk_error_report` gives them.
pub(crate) const EADDRNOTAVAIL: i32 = 99;
pub(crate) const ECONNRESET: i32 = 104;
pub(crate) const ETIMEDOUT: i32 = 110;
pub(crate) const ECONNREFUSED: i32 = 111;

/// One server over the window, as this namespace's connections to it showed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerView {
    pub addr: SocketAddr,
    /// The host name target it was resolved from, as typed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A target named it.
    pub named: bool,
    /// Readings that listed it.
    pub readings: u32,
    /// The most connects waiting for a SYN-ACK at one reading, and of them sent again.
    pub syn_sent_peak: u32,
    pub syn_retried_peak: u32,
    /// The most times one connect had sent its SYN again.
    pub syn_retrans_max: u8,
    /// ESTABLISHED connections at the reading with the most; None when never read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established_peak: Option<u32>,
    /// Connects that completed while others to it were being sent again: the rises of its
    /// ESTABLISHED count between readings after the first SYN sent again (a lower bound; the
    /// connections that finished between two readings are not seen).
    pub completed_late: u32,
    /// The most connections at one reading whose request waited unacknowledged, sent again.
    pub unacked_peak: u32,
    pub unacked_retrans_max: u8,
    /// Of them, never acknowledged a byte; None when not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub never_acked_peak: Option<u32>,
    /// The most local ports held to it at one reading (TIME_WAIT included, when read).
    pub ports_held_peak: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_wait_peak: Option<u32>,
    /// `--trace`: its connections as the events saw them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traced: Option<TracedRemote>,
}

impl ServerView {
    fn new(addr: SocketAddr) -> ServerView {
        ServerView {
            addr,
            name: None,
            named: false,
            readings: 0,
            syn_sent_peak: 0,
            syn_retried_peak: 0,
            syn_retrans_max: 0,
            established_peak: None,
            completed_late: 0,
            unacked_peak: 0,
            unacked_retrans_max: 0,
            never_acked_peak: None,
            ports_held_peak: 0,
            time_wait_peak: None,
            traced: None,
        }
    }

    /// `10.200.0.1:9000 (db.internal)` for prose.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{} ({n})", self.addr),
            None => self.addr.to_string(),
        }
    }

    /// Some connects to it completed while others were being sent again: the server answers
    /// SYNs, late. Connections established before the trouble began do not count.
    pub fn got_through_late(&self) -> bool {
        // Traced, a connect that took a second or more waited out a SYN sent again.
        let slow = |t: &TracedRemote| t.connect_ms.is_some_and(|p| p.max >= 1000);
        self.completed_late > 0 || self.traced.as_ref().is_some_and(slow)
    }

    /// Its connects were sent again or its requests went unacknowledged.
    fn troubled(&self) -> bool {
        self.syn_retried_peak > 0 || self.unacked_peak > 0
    }

    /// Troubled, or `--trace` saw its connects sent again, reset or failed: what earns a
    /// server the report's "(in trouble)" when no target named it.
    pub fn in_trouble(&self) -> bool {
        let traced = |t: &TracedRemote| {
            t.syn_retransmits > 0 || t.resets_received > 0 || !t.errors.is_empty()
        };
        self.troubled() || self.traced.as_ref().is_some_and(traced)
    }

    fn traced_errors(&self, errno: i32) -> u64 {
        self.traced
            .as_ref()
            .and_then(|t| t.errors.get(&errno).copied())
            .unwrap_or(0)
    }
}

/// What a client-side rule found, typed; the words are `words.rs`'s.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFact {
    /// Connects to the server were sent again for want of a SYN-ACK.
    Unanswered {
        server: ServerView,
        schedule: SynSchedule,
    },
    /// Connected, the request sent, and the server's kernel did not acknowledge it.
    Unacknowledged { server: ServerView },
    /// Connections of this namespace were reset by their peer.
    Resets {
        count: u64,
        /// The servers they came from: exact with `--trace`, else those in trouble.
        from: Vec<(String, Option<u64>)>,
        traced: bool,
    },
    /// Connects failed at once without a SYN sent again: refused (RST).
    Refused {
        count: u64,
        from: Vec<(String, Option<u64>)>,
        traced: bool,
    },
    /// One server's connections hold most or all of the local port range.
    PortsExhausted {
        server: ServerView,
        range: u32,
        low: u32,
        high: u32,
        /// `--trace`: connect()s that failed with EADDRNOTAVAIL, per process (they name no
        /// server: the namespace's ports are short, for every server alike).
        addrnotavail: Vec<crate::model::ConnectErrors>,
    },
    /// The connection-tracking table is full or dropping.
    ConntrackFull {
        count: Option<u32>,
        max: Option<u32>,
        dropped: u64,
    },
}

/// When a connect sends its SYN again and when it gives up, from the namespace's
/// `tcp_syn_retries` (n) and `tcp_syn_linear_timeouts` (l; 0 where the kernel lacks it): the
/// first l + 1 waits are the initial timeout of 1 s, then each doubles, n + l resends in all
/// (tcp_write_timeout). None read: the defaults, 6 and no linear timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct SynSchedule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syn_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syn_linear_timeouts: Option<u32>,
}

impl SynSchedule {
    pub fn of(s: &crate::model::Sysctls) -> SynSchedule {
        SynSchedule {
            syn_retries: s.tcp_syn_retries,
            syn_linear_timeouts: s.tcp_syn_linear_timeouts,
        }
    }

    /// Seconds from the first SYN to each resend, then to the give-up.
    fn times(self) -> Vec<u64> {
        let n = self.syn_retries.unwrap_or(6).min(32);
        let l = self.syn_linear_timeouts.unwrap_or(0).min(32);
        let mut at = 0u64;
        (0..=n + l)
            .map(|i| {
                at += if i <= l { 1 } else { 1u64 << (i - l).min(40) };
                at
            })
            .collect()
    }

    /// Seconds from the first SYN to each resend.
    pub fn resends(self) -> Vec<u64> {
        let mut t = self.times();
        t.pop();
        t
    }

    /// Seconds from the first SYN to connect()'s ETIMEDOUT.
    pub fn gives_up(self) -> u64 {
        self.times().last().copied().unwrap_or(0)
    }
}

/// A connecting-side step's sentence (the listener words ask for it).
pub(super) fn step_words(s: &remedy::Step) -> String {
    words::step(s)
}

/// Folds every reading of the window into one view per server, targets first.
pub fn servers(snap: &Snapshot) -> Vec<ServerView> {
    let mut by: BTreeMap<SocketAddr, ServerView> = BTreeMap::new();
    let named = snap.servers();
    for s in &named {
        by.insert(*s, ServerView::new(*s));
    }
    // Per server: ESTABLISHED at the previous reading, once a SYN to it was sent again.
    let mut late: BTreeMap<SocketAddr, Option<u32>> = BTreeMap::new();
    for o in snap.samples.iter().filter_map(|s| s.outgoing.as_ref()) {
        for r in &o.remotes {
            let v = by.entry(r.addr).or_insert_with(|| ServerView::new(r.addr));
            fold_late(v, &mut late, r);
            v.readings += 1;
            v.syn_sent_peak = v.syn_sent_peak.max(r.syn_sent);
            v.syn_retried_peak = v.syn_retried_peak.max(r.syn_retried);
            v.syn_retrans_max = v.syn_retrans_max.max(r.syn_retrans_max);
            v.established_peak = v.established_peak.max(r.established);
            v.unacked_peak = v.unacked_peak.max(r.unacked);
            v.unacked_retrans_max = v.unacked_retrans_max.max(r.unacked_retrans_max);
            v.never_acked_peak = v.never_acked_peak.max(r.never_acked);
            v.ports_held_peak = v.ports_held_peak.max(r.ports_held());
            v.time_wait_peak = v.time_wait_peak.max(r.time_wait);
        }
    }
    if let Some(t) = &snap.client_traced {
        for r in &t.remotes {
            by.entry(r.addr)
                .or_insert_with(|| ServerView::new(r.addr))
                .traced = Some(r.clone());
        }
    }
    for v in by.values_mut() {
        v.named = named.contains(&v.addr);
        v.name = snap
            .resolved
            .iter()
            .find(|r| r.addrs.contains(&v.addr.ip()))
            .map(|r| r.name.clone());
    }
    let mut out: Vec<ServerView> = by.into_values().collect();
    out.sort_by_key(|v| (!v.named, v.addr));
    out
}

/// Counts the rises of ESTABLISHED once `r`'s server had a SYN sent again.
fn fold_late(
    v: &mut ServerView,
    late: &mut BTreeMap<SocketAddr, Option<u32>>,
    r: &crate::model::Remote,
) {
    let retrying = r.syn_retried > 0 || late.contains_key(&r.addr);
    if !retrying {
        return;
    }
    let prev = late.entry(r.addr).or_insert(None);
    if let (Some(before), Some(now)) = (*prev, r.established) {
        v.completed_late += now.saturating_sub(before);
    }
    if r.established.is_some() {
        *prev = r.established;
    }
}

/// Whether `addr` is one of this namespace's own listeners: its findings are the listener's.
fn own_listener(snap: &Snapshot, addr: SocketAddr) -> bool {
    let local = snap
        .local_addresses
        .as_deref()
        .is_some_and(|mine| is_local(addr.ip(), mine));
    local && snap.listens_at(addr)
}

/// The connecting side's findings, worded, with their steps.
pub fn findings(snap: &Snapshot, servers: &[ServerView]) -> Vec<Finding> {
    let theirs: Vec<&ServerView> = servers
        .iter()
        .filter(|v| !own_listener(snap, v.addr))
        .collect();
    let mut out = Vec::new();
    let most_ports = theirs
        .iter()
        .filter(|v| v.ports_held_peak > 0)
        .max_by_key(|v| v.ports_held_peak)
        .map(|v| v.addr);
    for v in &theirs {
        let traced_syn = v.traced.as_ref().is_some_and(|t| t.syn_retransmits > 0);
        if v.syn_retried_peak > 0 || traced_syn {
            out.push(unanswered(snap, v));
        }
        if v.unacked_peak > 0 {
            out.push(unacknowledged(snap, v));
        }
        if let Some(f) = ports_exhausted(snap, v, most_ports == Some(v.addr)) {
            out.push(f);
        }
    }
    out.extend(resets(snap, &theirs));
    out.extend(refused(snap, &theirs));
    out.extend(conntrack(snap));
    for f in &mut out {
        f.summary = words::summary(&f.client);
        for s in &mut f.fix.steps {
            s.text = words::step(s);
        }
        f.fix.text = f.fix.steps.iter().map(|s| s.text.clone()).collect();
    }
    out
}

fn finding(
    id: RuleId,
    severity: Severity,
    server: Option<&ServerView>,
    fact: ClientFact,
) -> Finding {
    Finding {
        id,
        severity,
        listener: None,
        inode: None,
        target: None,
        remote: server.map(|s| s.addr.to_string()),
        listeners: Vec::new(),
        inodes: Vec::new(),
        summary: String::new(),
        evidence: Vec::new(),
        fix: Fix::default(),
        fact: super::Fact::None,
        client: Some(fact),
    }
}

const OUTGOING: &str = "inet_diag, this namespace's connections to it";
const RISE: &str = "/proc/net, rise in this namespace";

/// The namespace counters the connecting side reads, as evidence where they rose.
fn counter_evidence(snap: &Snapshot, f: &mut Finding, keys: &[&str]) {
    for key in keys {
        if let Some(d) = snap.counter_delta(key).filter(|d| *d > 0) {
            f.evidence.push(ev(*key, json!(d), RISE));
        }
    }
}

fn server_evidence(v: &ServerView, f: &mut Finding) {
    f.evidence
        .push(ev("syn_sent", json!(v.syn_sent_peak), OUTGOING));
    f.evidence
        .push(ev("syn_sent_retried", json!(v.syn_retried_peak), OUTGOING));
    f.evidence.push(ev(
        "syn_retransmits_max",
        json!(v.syn_retrans_max),
        OUTGOING,
    ));
    if let Some(n) = v.established_peak {
        f.evidence.push(ev("established", json!(n), OUTGOING));
    }
    if v.unacked_peak > 0 {
        f.evidence
            .push(ev("unacknowledged", json!(v.unacked_peak), OUTGOING));
    }
    if let Some(n) = v.never_acked_peak.filter(|n| *n > 0) {
        f.evidence
            .push(ev("never_acknowledged", json!(n), OUTGOING));
    }
    if let Some(t) = &v.traced {
        f.evidence.push(ev(
            "traced",
            serde_json::to_value(t).unwrap_or_default(),
            "tracefs, this namespace's connections to it",
        ));
    }
}

/// The client's steps for a server that does not take its connections: the server first.
fn server_steps(snap: &Snapshot, v: &ServerView, f: &mut Finding) {
    let step = |a| remedy::namespace_step(a, &snap.netns);
    f.fix
        .steps
        .push(step(Action::DiagnoseServer { server: v.addr }));
    f.fix.steps.push(step(Action::ClientTimeouts {
        schedule: SynSchedule::of(&snap.sysctls),
    }));
    f.fix.steps.push(step(Action::ReuseConnections));
}

fn unanswered(snap: &Snapshot, v: &ServerView) -> Finding {
    let fact = ClientFact::Unanswered {
        server: v.clone(),
        schedule: SynSchedule::of(&snap.sysctls),
    };
    let mut f = finding(
        RuleId::ConnectsUnanswered,
        Severity::Critical,
        Some(v),
        fact,
    );
    server_evidence(v, &mut f);
    counter_evidence(snap, &mut f, &[SYN_RETRANS, ATTEMPT_FAILS]);
    f.evidence.push(ev(
        "net.ipv4.tcp_syn_retries",
        json!(snap.sysctls.tcp_syn_retries),
        "/proc/sys",
    ));
    server_steps(snap, v, &mut f);
    f
}

fn unacknowledged(snap: &Snapshot, v: &ServerView) -> Finding {
    let fact = ClientFact::Unacknowledged { server: v.clone() };
    let mut f = finding(
        RuleId::RequestsUnacknowledged,
        Severity::Critical,
        Some(v),
        fact,
    );
    server_evidence(v, &mut f);
    counter_evidence(snap, &mut f, &[RETRANS_SEGS, TCP_TIMEOUTS]);
    server_steps(snap, v, &mut f);
    f
}

/// `ports_held` of the server holding the most local ports: traced EADDRNOTAVAIL is put
/// on it, as the counter names none.
fn ports_exhausted(snap: &Snapshot, v: &ServerView, most: bool) -> Option<Finding> {
    let range = snap.sysctls.ip_local_port_range?;
    let size = u64::from(range.size());
    let held = u64::from(v.ports_held_peak);
    let addrnotavail = match most {
        true => snap
            .client_traced
            .as_ref()
            .map(|t| t.connect_errors_of(EADDRNOTAVAIL))
            .unwrap_or_default(),
        false => Vec::new(),
    };
    if held * 100 < size * PORTS_WARNING_PCT && addrnotavail.is_empty() {
        return None;
    }
    let severity = if held >= size || !addrnotavail.is_empty() {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let fact = ClientFact::PortsExhausted {
        server: v.clone(),
        range: range.size(),
        low: range.low,
        high: range.high,
        addrnotavail: addrnotavail.clone(),
    };
    let mut f = finding(RuleId::LocalPortsExhausted, severity, Some(v), fact);
    f.evidence
        .push(ev("ports_held", json!(v.ports_held_peak), OUTGOING));
    if !addrnotavail.is_empty() {
        f.evidence.push(ev(
            "connect_eaddrnotavail",
            serde_json::to_value(&addrnotavail).unwrap_or_default(),
            "tracefs, connect() returns in this namespace",
        ));
    }
    if let Some(tw) = v.time_wait_peak {
        f.evidence.push(ev("time_wait", json!(tw), OUTGOING));
    }
    f.evidence.push(ev(
        crate::catalogue::IP_LOCAL_PORT_RANGE,
        json!(format!("{} {}", range.low, range.high)),
        "/proc/sys",
    ));
    f.evidence.push(ev(
        "net.ipv4.tcp_tw_reuse",
        json!(snap.sysctls.tcp_tw_reuse),
        "/proc/sys",
    ));
    let step = |a| remedy::namespace_step(a, &snap.netns);
    f.fix.steps.push(step(Action::ReuseConnections));
    // The kernel's default range, when this one is narrower; beyond it, ports a server
    // listens on would be taken (ip_local_reserved_ports).
    let (low, high) = (DEFAULT_RANGE.0, DEFAULT_RANGE.1);
    if range.size() < high - low + 1 {
        f.fix.steps.push(step(Action::WidenPortRange { low, high }));
    }
    if snap.sysctls.tcp_tw_reuse != Some(1) && v.time_wait_peak.is_some_and(|n| n > 0) {
        f.fix.steps.push(step(Action::TwReuse));
    }
    Some(f)
}

/// `ip_local_port_range`'s default.
const DEFAULT_RANGE: (u32, u32) = (32768, 60999);

/// The servers a namespace-wide count can belong to: those whose sockets carried this errno
/// when traced, else those in trouble (the counter names none).
fn sources(
    theirs: &[&ServerView],
    errno: i32,
    troubled: impl Fn(&ServerView) -> bool,
) -> (Vec<(String, Option<u64>)>, bool) {
    let traced = theirs.iter().any(|v| v.traced.is_some());
    let from = theirs
        .iter()
        .filter_map(|v| match traced {
            true => Some(v.traced_errors(errno))
                .filter(|n| *n > 0)
                .map(|n| (v.label(), Some(n))),
            false => troubled(v).then(|| (v.label(), None)),
        })
        .collect();
    (from, traced)
}

fn resets(snap: &Snapshot, theirs: &[&ServerView]) -> Option<Finding> {
    let count = snap.counter_delta(ESTAB_RESETS).filter(|n| *n > 0)?;
    let (from, traced) = sources(theirs, ECONNRESET, ServerView::troubled);
    // Without a server of ours in view, the resets may be a listener's clients': not ours to say.
    if from.is_empty() {
        return None;
    }
    let fact = ClientFact::Resets {
        count,
        from,
        traced,
    };
    let mut f = finding(RuleId::ResetsFromServer, Severity::Critical, None, fact);
    counter_evidence(snap, &mut f, &[ESTAB_RESETS]);
    if let ClientFact::Resets { from, .. } = f.client.as_ref()? {
        f.remote = (from.len() == 1).then(|| from[0].0.clone());
    }
    let step = |a| remedy::namespace_step(a, &snap.netns);
    if let Some(v) = theirs.iter().find(|v| v.troubled()) {
        f.fix
            .steps
            .push(step(Action::DiagnoseServer { server: v.addr }));
    }
    f.fix.steps.push(step(Action::ClientTimeouts {
        schedule: SynSchedule::of(&snap.sysctls),
    }));
    Some(f)
}

fn refused(snap: &Snapshot, theirs: &[&ServerView]) -> Option<Finding> {
    // A refusal this namespace sent itself (a connect to its own closed port) is its own RST,
    // which the reset findings explain from the sending side: only the rest came from afar.
    let sent = snap.counter_delta(OUT_RSTS).unwrap_or(0);
    let count = snap
        .counter_delta(ATTEMPT_FAILS)
        .map(|n| n.saturating_sub(sent))
        .filter(|n| *n > 0)?;
    let retried = snap.counter_delta(SYN_RETRANS).unwrap_or(0);
    let traced_any = theirs.iter().any(|v| v.traced.is_some());
    // Untraced, AttemptFails also counts connects abandoned after SYN retransmissions: only
    // failures with no retransmission at all are refusals.
    if !traced_any && retried > 0 {
        return None;
    }
    let (from, traced) = sources(theirs, ECONNREFUSED, |v| v.named);
    if traced && from.is_empty() {
        return None;
    }
    let severity = if traced || !from.is_empty() {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let fact = ClientFact::Refused {
        count,
        from,
        traced,
    };
    let mut f = finding(RuleId::ConnectsRefused, severity, None, fact);
    counter_evidence(snap, &mut f, &[ATTEMPT_FAILS, OUT_RSTS, SYN_RETRANS]);
    if let Some(ClientFact::Refused { from, .. }) = &f.client {
        f.remote = (from.len() == 1).then(|| from[0].0.clone());
    }
    let step = |a| remedy::namespace_step(a, &snap.netns);
    f.fix.steps.push(step(Action::FindRefusedConnects));
    Some(f)
}

fn conntrack(snap: &Snapshot) -> Option<Finding> {
    let dropped = [CONNTRACK_DROP, CONNTRACK_EARLY_DROP]
        .iter()
        .filter_map(|k| snap.counter_delta(k))
        .sum::<u64>();
    let (count, max) = (
        snap.sysctls.nf_conntrack_count,
        snap.sysctls.nf_conntrack_max,
    );
    let full = match (count, max) {
        (Some(c), Some(m)) if m > 0 => u64::from(c) * 100 >= u64::from(m) * CONNTRACK_WARNING_PCT,
        _ => false,
    };
    if dropped == 0 && !full {
        return None;
    }
    let severity = if dropped > 0 {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let fact = ClientFact::ConntrackFull {
        count,
        max,
        dropped,
    };
    let mut f = finding(RuleId::ConntrackFull, severity, None, fact);
    f.evidence.push(ev(
        crate::catalogue::NF_CONNTRACK_COUNT,
        json!(count),
        "/proc/sys",
    ));
    f.evidence.push(ev(
        crate::catalogue::NF_CONNTRACK_MAX,
        json!(max),
        "/proc/sys",
    ));
    counter_evidence(
        snap,
        &mut f,
        &[
            CONNTRACK_DROP,
            CONNTRACK_EARLY_DROP,
            CONNTRACK_INSERT_FAILED,
        ],
    );
    let value = max.map_or(262_144, |m| {
        m.saturating_mul(2)
            .max(count.unwrap_or(0).saturating_mul(2))
    });
    f.fix.steps.push(remedy::namespace_step(
        Action::ConntrackMax { value },
        &snap.netns,
    ));
    Some(f)
}

#[cfg(test)]
mod tests;
