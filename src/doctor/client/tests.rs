//! The connecting side's rules on recordings made in a client's namespace joined to a server's
//! by a veth (fixtures/recipes/client-side.sh; what the clients saw is in fixtures/clients/),
//! and on readings built here for what no recording holds (a full conntrack table, a server
//! that is this namespace's own listener).

use super::*;
use crate::doctor::{RuleId, Severity, diagnose};
use crate::model::{Outgoing, Remote, Snapshot};

fn fixture(name: &str) -> Snapshot {
    let path = format!(
        "{}/fixtures/snapshots/6.18-client-{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    load(&path)
}

fn load(path: &str) -> Snapshot {
    crate::store::load(std::path::Path::new(path)).expect("fixture loads")
}

/// What the clients of the recording counted, by outcome.
fn clients(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/fixtures/clients/6.18-client-{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("clients readable")).expect("json")
}

fn ids(snap: &Snapshot) -> Vec<(RuleId, Severity, Option<String>)> {
    diagnose(snap)
        .findings
        .into_iter()
        .map(|f| (f.id, f.severity, f.remote))
        .collect()
}

const SERVER: &str = "10.200.0.1:9000";

fn one(id: RuleId, snap: &Snapshot) -> Finding {
    let mut all: Vec<Finding> = diagnose(snap)
        .findings
        .into_iter()
        .filter(|f| f.id == id)
        .collect();
    assert_eq!(all.len(), 1, "{id:?} once: {:?}", ids(snap));
    all.remove(0)
}

#[test]
fn a_slow_server_reads_as_unanswered_connects_and_unacknowledged_requests() {
    for name in ["slow-abort0", "slow-abort0-target"] {
        let snap = fixture(name);
        let found = ids(&snap);
        let remote = Some(SERVER.to_string());
        assert!(
            found.contains(&(
                RuleId::ConnectsUnanswered,
                Severity::Critical,
                remote.clone()
            )),
            "{name}: {found:?}"
        );
        assert!(
            found.contains(&(RuleId::RequestsUnacknowledged, Severity::Critical, remote)),
            "{name}: {found:?}"
        );
        assert!(!found.iter().any(|f| f.0 == RuleId::NotListening), "{name}");
        let f = one(RuleId::ConnectsUnanswered, &snap);
        // Some connects completed while others retried: the server answers, late.
        assert!(
            f.summary.contains("the server answers, but drops"),
            "{}",
            f.summary
        );
        assert!(
            f.summary.contains("ETIMEDOUT after about 127 s"),
            "{}",
            f.summary
        );
        // The clients that timed out connecting were all waiting for a SYN-ACK at once.
        let view = &servers(&snap)[0];
        let timed_out = clients(name)["timeout_connect"].as_u64().unwrap();
        assert!(u64::from(view.syn_sent_peak) >= timed_out, "{view:?}");
        let cmd = f.fix.steps[0].command.as_deref().unwrap_or_default();
        assert_eq!(
            cmd, "backlogctl doctor --window 10s :9000",
            "{:?}",
            f.fix.steps
        );
    }
}

#[test]
fn a_stopped_server_answers_no_syn_and_the_words_say_what_that_cannot_tell() {
    let snap = fixture("stopped");
    let f = one(RuleId::ConnectsUnanswered, &snap);
    assert_eq!(f.remote.as_deref(), Some(SERVER));
    assert!(
        f.summary.contains("the server answers no SYN"),
        "{}",
        f.summary
    );
    assert!(f.summary.contains("a firewall"), "{}", f.summary);
    assert!(!f.summary.contains("Meanwhile"), "{}", f.summary);
    // Every client that timed out connecting was seen waiting at once.
    let view = &servers(&snap)[0];
    assert_eq!(
        u64::from(view.syn_sent_peak),
        clients("stopped")["timeout_connect"].as_u64().unwrap()
    );
    assert_eq!(view.completed_late, 0);
}

#[test]
fn resets_from_a_server_with_abort_on_overflow_are_named_with_it() {
    let snap = fixture("slow-abort1");
    let f = one(RuleId::ResetsFromServer, &snap);
    assert_eq!(f.remote.as_deref(), Some(SERVER));
    assert!(f.summary.contains("ECONNRESET"), "{}", f.summary);
    assert!(f.summary.contains("connect() itself"), "{}", f.summary);
    let resets = snap.counter_delta(crate::catalogue::ESTAB_RESETS).unwrap();
    assert!(resets > 0 && f.summary.starts_with(&format!("{resets} connection(s)")));
    assert!(ids(&snap).iter().any(|f| f.0 == RuleId::ConnectsUnanswered));
}

#[test]
fn a_closed_port_is_a_refusal_named_by_the_target_or_left_unnamed() {
    let named = one(RuleId::ConnectsRefused, &fixture("closed-port-target"));
    assert_eq!(named.remote.as_deref(), Some(SERVER));
    assert_eq!(named.severity, Severity::Critical);
    let refused = clients("closed-port-target")["refused"].as_u64().unwrap();
    assert!(
        named.summary.starts_with(&format!("{refused} connect(s)")),
        "{}",
        named.summary
    );
    assert!(named.summary.contains("ECONNREFUSED"));
    // Without a target the counter names no server: the words say so and how to tell.
    let unnamed = one(RuleId::ConnectsRefused, &fixture("closed-port"));
    assert_eq!(unnamed.remote, None);
    assert_eq!(unnamed.severity, Severity::Warning);
    assert!(unnamed.summary.contains("--trace"), "{}", unnamed.summary);
}

#[test]
fn a_ten_port_range_held_by_one_server_is_port_exhaustion() {
    for name in ["ports10", "ports10-target"] {
        let snap = fixture(name);
        let f = one(RuleId::LocalPortsExhausted, &snap);
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.remote.as_deref(), Some(SERVER));
        assert!(f.summary.contains("EADDRNOTAVAIL"), "{}", f.summary);
        // The ports held are the connects that got one: the clients' successes.
        let ok = clients(name)["ok"].as_u64().unwrap();
        assert_eq!(u64::from(servers(&snap)[0].ports_held_peak), ok);
        let cmds: Vec<&str> = f
            .fix
            .steps
            .iter()
            .filter_map(|s| s.command.as_deref())
            .collect();
        assert!(
            cmds.iter()
                .any(|c| c.ends_with("sysctl -w net.ipv4.ip_local_port_range=\"32768 60999\"")),
            "{cmds:?}"
        );
        assert_eq!(ids(&snap).len(), 1, "{:?}", ids(&snap));
    }
}

#[test]
fn a_healthy_server_and_a_quiet_client_stay_ok() {
    for name in ["healthy", "healthy-target", "quiet", "quiet-target"] {
        let snap = fixture(name);
        assert_eq!(ids(&snap), vec![], "{name}");
    }
}

#[test]
fn a_server_that_is_our_own_listener_is_left_to_the_listener_findings() {
    // A listener of this namespace on 127.0.0.1:8100, and connects to it retrying.
    let mut snap = load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/snapshots/6.18-backlog10-nine-waiting.json"
    ));
    snap.local_addresses = Some(vec!["127.0.0.1".parse().unwrap()]);
    let mut r = Remote::new("127.0.0.1:8100".parse().unwrap());
    r.syn_sent = 5;
    r.syn_retried = 5;
    r.syn_retrans_max = 1;
    let reading = |r: &Remote| {
        Some(Outgoing {
            remotes: vec![r.clone()],
            more: 0,
            more_syn_sent: 0,
            more_syn_retried: 0,
            established_read: true,
            time_wait_read: false,
        })
    };
    for s in &mut snap.samples {
        s.outgoing = reading(&r);
    }
    let unanswered = |snap: &Snapshot| {
        ids(snap)
            .iter()
            .filter(|f| f.0 == RuleId::ConnectsUnanswered)
            .count()
    };
    assert_eq!(unanswered(&snap), 0, "{:?}", ids(&snap));
    r.addr = "10.9.9.9:8100".parse().unwrap();
    for s in &mut snap.samples {
        s.outgoing = reading(&r);
    }
    assert_eq!(unanswered(&snap), 1, "{:?}", ids(&snap));
}

#[test]
fn a_full_conntrack_table_is_a_finding_and_room_in_it_is_not() {
    let mut snap = fixture("quiet");
    snap.sysctls.nf_conntrack_max = Some(1000);
    snap.sysctls.nf_conntrack_count = Some(950);
    let f = one(RuleId::ConntrackFull, &snap);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.summary.contains("950 of 1000"), "{}", f.summary);
    let cmd = f.fix.steps[0].command.as_deref().unwrap_or_default();
    assert!(cmd.contains("net.netfilter.nf_conntrack_max=2000"), "{cmd}");
    snap.sysctls.nf_conntrack_count = Some(10);
    assert!(!ids(&snap).iter().any(|f| f.0 == RuleId::ConntrackFull));
}

#[test]
fn the_syn_schedule_follows_retries_and_linear_timeouts() {
    let at = |r, l| SynSchedule {
        syn_retries: r,
        syn_linear_timeouts: l,
    };
    assert_eq!(at(Some(6), None).resends(), [1, 3, 7, 15, 31, 63]);
    assert_eq!(at(Some(6), None).gives_up(), 127);
    assert_eq!(at(None, Some(0)).gives_up(), 127);
    assert_eq!(
        at(Some(6), Some(4)).resends(),
        [1, 2, 3, 4, 5, 7, 11, 19, 35, 67]
    );
    assert_eq!(at(Some(6), Some(4)).gives_up(), 131);
    assert_eq!(at(Some(0), None).resends(), Vec::<u64>::new());
    assert_eq!(at(Some(0), None).gives_up(), 1);
    // Absurd values stay bounded.
    assert!(at(Some(u32::MAX), Some(u32::MAX)).gives_up() > 0);
}

#[test]
fn rsts_a_connecting_namespace_sends_on_its_troubled_connections_are_no_listener_finding() {
    // The clients' namespace of a slow server sent 12 RSTs (lab --veth saw it: answers to late
    // SYN-ACKs, segments for connections given up): no listener of its own, nothing to blame.
    let mut snap = fixture("slow-abort0");
    let last = snap.samples.iter_mut().rev().find(|s| s.counters.is_some());
    let counters = last.unwrap().counters.as_mut().unwrap();
    *counters
        .entry(crate::catalogue::OUT_RSTS.to_string())
        .or_default() += 12;
    let found = ids(&snap);
    assert!(
        !found.iter().any(|f| f.0 == RuleId::ResetsUnexplained),
        "{found:?}"
    );
    assert!(
        found.iter().any(|f| f.0 == RuleId::ConnectsUnanswered),
        "{found:?}"
    );
}

#[test]
fn a_server_traced_only_connecting_is_not_in_trouble() {
    let mut v = ServerView::new("127.0.0.1:9000".parse().unwrap());
    assert!(!v.in_trouble());
    let mut t = TracedRemote {
        addr: v.addr,
        errors: Default::default(),
        syn_retransmits: 0,
        resets_received: 0,
        connected: 4000,
        connect_ms: None,
    };
    v.traced = Some(t.clone());
    assert!(!v.in_trouble(), "4000 connects, nothing else");
    t.resets_received = 551;
    v.traced = Some(t);
    assert!(v.in_trouble());
}
