//! Which member of an SO_REUSEPORT group is stuck (issue 29, item 4): a socket whose queue
//! stands while the others of its group drain is named, with the process that serves it (its
//! epoll set watches the socket) and that process's state, and the fix comes first — before
//! any backlog, which only makes the stuck socket's clients wait longer. Built snapshots for
//! the rule's edges; fixtures recorded from nginx with a stopped worker (fixtures/README.md,
//! `fixtures/recipes/reuseport-stopped-worker.sh`) for the real thing.

mod common;

use backlogctl::doctor::remedy::{Action, StepKind};
use backlogctl::doctor::{Fact, Finding, Report, RuleId, Server, Severity, Stuck, diagnose};
use backlogctl::model::{ProcState, Snapshot};
use common::{fixture, run_bin};
use serde_json::{Value, json};

/// Inodes of the four sockets of the built group; the second one stands.
const MEMBERS: [u64; 4] = [101, 102, 103, 104];
const STUCK: u64 = 102;
/// nginx's master and the worker serving each member, in order.
const MASTER: u32 = 10;
const WORKERS: [u32; 4] = [11, 12, 13, 14];

/// A recording of four SO_REUSEPORT sockets of backlog `b` on 127.0.0.1:8080: at each time
/// (ms), each member's Recv-Q. Every process holds every socket; each worker's epoll set
/// watches its own, and the stuck member's worker is in `state`. Counters only at the ends,
/// ListenOverflows rising by `overflows`.
fn built(b: u32, samples: &[(u64, [u32; 4])], state: &str, overflows: u64) -> Snapshot {
    let n = samples.len();
    let samples: Vec<Value> = samples
        .iter()
        .enumerate()
        .map(|(i, (ms, queues))| {
            let listeners: Vec<Value> = MEMBERS
                .iter()
                .zip(queues)
                .map(|(inode, q)| {
                    json!({"local": "127.0.0.1:8080", "inode": inode, "uid": 0,
                       "recv_q": q, "send_q": b, "drops": 0})
                })
                .collect();
            let mut s = json!({"elapsed_us": ms * 1000, "listeners": listeners});
            if i == 0 || i + 1 == n {
                let o = if i == 0 { 0 } else { overflows };
                s["counters"] = json!({"TcpExt:ListenOverflows": o, "TcpExt:ListenDrops": o});
            }
            s
        })
        .collect();
    let mut owners = Vec::new();
    for (i, inode) in MEMBERS.iter().enumerate() {
        owners.push(json!({"inode": inode, "pid": MASTER, "comm": "nginx",
            "cmdline": "nginx: master process nginx", "state": "sleeping", "watches": false}));
        for (j, w) in WORKERS.iter().enumerate() {
            let st = if MEMBERS[j] == STUCK {
                state
            } else {
                "sleeping"
            };
            owners.push(json!({"inode": inode, "pid": w, "comm": "nginx",
                "cmdline": "nginx: worker process", "state": st, "watches": i == j}));
        }
    }
    serde_json::from_value(json!({
        "schema_version": 3, "tool": "test", "started_unix_ms": 0,
        "netns": {"inode": 4026532000u64, "initial": false, "names": ["bru"]},
        "sample_interval_us": 10000, "samples_taken": n,
        "sysctls": {"somaxconn": 4096, "tcp_max_syn_backlog": 2048, "tcp_syncookies": 1,
                    "tcp_abort_on_overflow": 0, "tcp_synack_retries": 5},
        "owners": owners, "samples": samples,
    }))
    .expect("a built snapshot")
}

/// A burst 300 ms into a 2 s window: every member takes connections, three drain them, the
/// second holds `held` from then on.
fn burst(held: u32) -> Vec<(u64, [u32; 4])> {
    vec![
        (0, [0, 0, 0, 0]),
        (300, [5, held, 4, 6]),
        (600, [0, held, 1, 0]),
        (1200, [0, held, 0, 0]),
        (2000, [0, held, 0, 0]),
    ]
}

fn imbalance(r: &Report) -> Vec<&Finding> {
    r.findings
        .iter()
        .filter(|f| f.id == RuleId::ReuseportImbalance)
        .collect()
}

fn stuck(f: &Finding) -> &Stuck {
    match &f.fact {
        Fact::ReuseportImbalance { stuck: Some(s), .. } => s,
        other => panic!("not a stuck member: {other:?}"),
    }
}

#[test]
fn a_member_that_stands_while_the_others_drain_is_named_with_its_server_and_state() {
    // B = 4096: nothing overflows, nothing comes near full; only the standing queue tells.
    let r = diagnose(&built(4096, &burst(200), "stopped", 0));
    assert_eq!(r.verdict, Severity::Critical);
    let found = imbalance(&r);
    assert_eq!(found.len(), 1, "{:?}", r.findings);
    let f = found[0];
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.inode, Some(STUCK));
    assert_eq!(f.inodes[0], STUCK, "the stuck socket first");
    let s = stuck(f);
    assert_eq!((s.recv_q, s.backlog, s.for_ms), (200, 4096, 1700));
    assert_eq!(s.drained, 3);
    assert_eq!(s.holders, 5);
    assert_eq!(
        s.servers,
        [Server {
            pid: WORKERS[1],
            state: Some(ProcState::Stopped),
            watches: true
        }]
    );
    let step = &f.fix.steps[0];
    assert_eq!(step.kind, StepKind::Process);
    assert_eq!(step.command.as_deref(), Some("kill -CONT 12"));
    assert!(matches!(
        step.action,
        Action::UnstickMember {
            pid: Some(12),
            state: Some(ProcState::Stopped)
        }
    ));
    // The table's label names the worker and its state.
    let v = r.listeners.iter().find(|v| v.inode == STUCK).unwrap();
    assert_eq!(
        v.process().as_deref(),
        Some("nginx: master 10, workers 11-14, served by worker 12 (stopped)")
    );
}

#[test]
fn with_an_overflow_too_the_stuck_member_leads_the_findings_and_its_plan() {
    // B = 16: the stuck socket is full (B+1) and drops; the backlog is small as well.
    let r = diagnose(&built(16, &burst(17), "stopped", 300));
    let first = &r.findings[0];
    assert_eq!(first.id, RuleId::ReuseportImbalance, "{:?}", r.findings);
    assert_eq!(first.inode, Some(STUCK));
    // Its accept-queue-overflow comes after, and the plan resumes the worker before it
    // raises the backlog.
    let overflow = r
        .findings
        .iter()
        .find(|f| f.id == RuleId::AcceptQueueOverflow && f.inodes.contains(&STUCK))
        .expect("the overflow");
    assert_eq!(overflow.severity, Severity::Critical);
    let plan = &r.plans[overflow.fix.plan.unwrap()];
    assert!(
        matches!(
            plan.steps[0].action,
            Action::UnstickMember { pid: Some(12), .. }
        ),
        "{:?}",
        plan.steps
    );
    assert!(
        plan.steps[1..].iter().any(|s| s.raises()),
        "{:?}",
        plan.steps
    );
    // No other plan resumes a worker that does not stand.
    for p in r.plans.iter().filter(|p| !p.inodes.contains(&STUCK)) {
        assert!(
            !p.steps
                .iter()
                .any(|s| matches!(s.action, Action::UnstickMember { .. })),
            "{p:?}"
        );
    }
}

#[test]
fn the_fix_follows_the_servers_state() {
    let step = |state: &str| {
        let r = diagnose(&built(4096, &burst(200), state, 0));
        let f = imbalance(&r)[0].clone();
        f.fix.steps[0].clone()
    };
    let d = step("disk-sleep");
    assert_eq!((d.kind, d.command.as_deref()), (StepKind::Process, None));
    assert!(d.text.contains("/proc/12/stack"), "{}", d.text);
    let z = step("zombie");
    assert_eq!((z.kind, z.command.as_deref()), (StepKind::Process, None));
    let t = step("tracing-stop");
    assert_eq!((t.kind, t.command.as_deref()), (StepKind::Process, None));
    for busy in ["running", "sleeping"] {
        let s = step(busy);
        assert_eq!(
            (s.kind, s.command.as_deref()),
            (StepKind::Check, None),
            "{busy}"
        );
    }
}

#[test]
fn no_stuck_member_without_a_standing_queue_or_a_member_that_drained() {
    let none = |r: &Report| {
        imbalance(r)
            .iter()
            .all(|f| matches!(f.fact, Fact::ReuseportImbalance { stuck: None, .. }))
    };
    // Held for 0.4 s of 2 s, below B+1: a queue that passes, not one that stands.
    let short = [
        (0, [0, 0, 0, 0]),
        (1600, [3, 5, 2, 1]),
        (2000, [0, 5, 0, 0]),
    ];
    let r = diagnose(&built(4096, &short, "sleeping", 0));
    assert!(imbalance(&r).is_empty(), "{:?}", r.findings);
    // But full at the end while the others are empty: stuck, however short.
    let full = [
        (0, [0, 0, 0, 0]),
        (1600, [3, 17, 2, 1]),
        (2000, [0, 17, 0, 0]),
    ];
    let r = diagnose(&built(16, &full, "stopped", 10));
    assert!(!none(&r), "{:?}", r.findings);
    // Every member holds its queue: the others were empty only before it began.
    let all = [(0, [0, 0, 0, 0]), (300, [5, 9, 4, 6]), (2000, [5, 9, 4, 6])];
    let r = diagnose(&built(4096, &all, "sleeping", 0));
    assert!(imbalance(&r).is_empty(), "{:?}", r.findings);
    // A single sample cannot tell a queue that stands from one that passes.
    let once = [(0, [0, 200, 0, 0])];
    let r = diagnose(&built(4096, &once, "stopped", 0));
    assert!(imbalance(&r).is_empty(), "{:?}", r.findings);
}

#[test]
fn without_epoll_data_the_holders_are_named_and_the_server_is_unknown() {
    let mut snap = built(4096, &burst(200), "stopped", 0);
    for o in &mut snap.owners {
        o.watches = None;
        o.state = None;
    }
    let r = diagnose(&snap);
    let s = stuck(imbalance(&r)[0]);
    assert!(s.servers.is_empty(), "{s:?}");
    assert_eq!(s.holders, 5);
    let step = &imbalance(&r)[0].fix.steps[0];
    assert!(matches!(
        step.action,
        Action::UnstickMember {
            pid: None,
            state: None
        }
    ));
    // And the label is the holders' alone, as before.
    let v = r.listeners.iter().find(|v| v.inode == STUCK).unwrap();
    assert_eq!(
        v.process().as_deref(),
        Some("nginx: master 10, workers 11-14")
    );
}

/// The recorded fixtures: expected rule ids, the named worker and its state, the exit code.
struct Case {
    file: &'static str,
    ids: &'static [&'static str],
    inode: u64,
    pid: u32,
    recv_q: u32,
    backlog: u32,
}

const CASES: &[Case] = &[
    Case {
        file: "6.18-nginx-reuseport-stopped-worker-backlog16.json",
        ids: &[
            "reuseport-imbalance",
            "accept-queue-overflow",
            "accept-queue-standing",
            "small-app-backlog",
            "abort-on-overflow",
        ],
        inode: 2795231,
        pid: 18321,
        recv_q: 17,
        backlog: 16,
    },
    Case {
        file: "6.18-nginx-reuseport-stopped-worker-backlog4096.json",
        ids: &["reuseport-imbalance", "accept-queue-standing"],
        inode: 2799320,
        pid: 19331,
        recv_q: 200,
        backlog: 4096,
    },
];

fn load(file: &str) -> Snapshot {
    backlogctl::store::load(&fixture(&format!("snapshots/{file}"))).expect(file)
}

#[test]
fn nginx_with_a_stopped_worker_names_that_worker_with_and_without_a_large_backlog() {
    for c in CASES {
        let r = diagnose(&load(c.file));
        let mut ids: Vec<&str> = r.findings.iter().map(|f| f.id.as_str()).collect();
        ids.dedup();
        assert_eq!(ids, c.ids, "{}", c.file);
        assert_eq!(r.verdict, Severity::Critical, "{}", c.file);
        let f = &r.findings[0];
        assert_eq!(f.id, RuleId::ReuseportImbalance, "{}", c.file);
        assert_eq!(f.severity, Severity::Critical, "{}", c.file);
        assert_eq!(f.inode, Some(c.inode), "{}", c.file);
        let s = stuck(f);
        assert_eq!((s.recv_q, s.backlog), (c.recv_q, c.backlog), "{}", c.file);
        assert_eq!(s.drained, 3, "{}", c.file);
        assert_eq!(s.holders, 5, "master and four workers: {}", c.file);
        assert_eq!(
            s.servers,
            [Server {
                pid: c.pid,
                state: Some(ProcState::Stopped),
                watches: true
            }],
            "{}",
            c.file
        );
        assert_eq!(
            f.fix.steps[0].command,
            Some(format!("kill -CONT {}", c.pid)),
            "{}",
            c.file
        );
        // Every plan for the stuck socket resumes the worker first (the wait's too: the port's
        // waiting connections are the stuck socket's).
        for p in r.plans.iter().filter(|p| p.inodes.contains(&c.inode)) {
            assert!(
                matches!(p.steps[0].action, Action::UnstickMember { pid: Some(pid), .. } if pid == c.pid),
                "{}: {:?}",
                c.file,
                p.steps
            );
        }
        // Each of the other members is served by a worker of its own, none stopped.
        let mut servers: Vec<u32> = r
            .listeners
            .iter()
            .flat_map(|v| v.owners.iter().filter(|o| o.watches == Some(true)))
            .map(|o| o.pid)
            .collect();
        servers.sort_unstable();
        servers.dedup();
        assert_eq!(servers.len(), 4, "{}: {servers:?}", c.file);

        let path = fixture(&format!("snapshots/{}", c.file));
        let (code, out, err) = run_bin(&["doctor", "--from", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{}: {err}", c.file);
        assert!(
            out.contains(&format!("served by worker {} (stopped)", c.pid)),
            "{}: {out}",
            c.file
        );
    }
}

#[test]
fn a_group_whose_members_all_hold_their_queues_is_not_one_stuck_process() {
    // One test process holds both sockets and accepts on neither (tests/common/scenarios.rs):
    // the overflow imbalance stays a warning, and says that none of the others emptied.
    let r = diagnose(&load("6.18-reuseport-backlog2-and-64.json"));
    let f = imbalance(&r);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(matches!(
        f[0].fact,
        Fact::ReuseportImbalance {
            others_drained: Some(false),
            stuck: None,
            ..
        }
    ));
    assert_eq!(r.findings[0].id, RuleId::AcceptQueueOverflow);
}

#[test]
fn an_overflow_that_drained_by_the_end_says_nothing_of_the_others() {
    // The second socket overflows at 0.3 s and is empty again at the end: whether the others
    // drained "while it held" cannot be said of a queue that no longer holds.
    let passed = [
        (0, [0, 0, 0, 0]),
        (300, [2, 17, 3, 1]),
        (1000, [1, 4, 0, 0]),
        (2000, [0, 0, 0, 0]),
    ];
    let r = diagnose(&built(16, &passed, "sleeping", 40));
    let f = imbalance(&r);
    assert_eq!(f.len(), 1, "{:?}", r.findings);
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(matches!(
        f[0].fact,
        Fact::ReuseportImbalance {
            others_drained: None,
            stuck: None,
            ..
        }
    ));
}
