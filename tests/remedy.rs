//! The remedy plan as a property: over generated snapshots (every runtime, namespace kind,
//! backlog, somaxconn, queue and drop state), carrying out the printed plan and diagnosing
//! again never asks to raise anything — the plan is a fixpoint, and historical drops alone
//! only ask to check that the fix held. Within one report, every knob has one number.
//! Deterministic: a fixed-seed xorshift, no extra crates.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use backlogctl::doctor::remedy::{Action, Knob, StepKind};
use backlogctl::doctor::{Report, RuleId, Severity, diagnose};
use backlogctl::model::{
    Listener, Local, Name, Netns, Owner, Sample, Snapshot, Sysctls, UnixKind, UnixLocal, UnixName,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// (comm, cmdline) of the runtimes the plans know, plus an unknown one.
const OWNERS: &[(&str, &str)] = &[
    ("java", "java -jar app.jar"),
    (
        "nginx",
        "nginx: master process nginx -c /etc/nginx/nginx.conf",
    ),
    ("node", "node server.js"),
    ("python3", "python3 -m http.server 8000"),
    ("python3", "/usr/bin/python3 /usr/bin/gunicorn app:app"),
    ("uvicorn", "/usr/bin/python3 /usr/local/bin/uvicorn app:app"),
    ("python3", "python3 server.py"),
    ("redis-server", "redis-server 127.0.0.1:6379"),
    (
        "postgres",
        "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main",
    ),
    ("haproxy", "haproxy -f /etc/haproxy/haproxy.cfg"),
    ("envoy", "envoy -c envoy.yaml"),
    ("apache2", "/usr/sbin/apache2 -k start"),
    (
        "lighttpd",
        "/usr/sbin/lighttpd -D -f /etc/lighttpd/lighttpd.conf",
    ),
    ("myserver", "./myserver"),
];

/// (comm, cmdline) of the runtimes that own Unix listeners, plus the TCP ones and an unknown one.
const UNIX_OWNERS: &[(&str, &str)] = &[
    (
        "php-fpm8.2",
        "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)",
    ),
    ("uwsgi", "uwsgi --ini /etc/uwsgi/app.ini"),
    ("systemd", "/sbin/init"),
    ("python3", "/usr/bin/python3 /usr/bin/gunicorn app:app"),
    ("uvicorn", "/usr/bin/python3 /usr/local/bin/uvicorn app:app"),
    ("node", "node server.js"),
    ("python3", "python3 server.py"),
    ("myserver", "./myserver"),
];

/// What an application asked listen() for; u32::MAX stands for a negative backlog
/// (the kernel's unsigned compare turns it into somaxconn).
const ASKED: &[u32] = &[
    0,
    1,
    5,
    50,
    100,
    128,
    244,
    511,
    2048,
    4096,
    10_000,
    65_535,
    u32::MAX,
];
const SOMAXCONN: &[u32] = &[5, 16, 128, 511, 4096, 8192, 65_535, 100_000];

/// What the application of a generated listener asked listen() for.
struct Gen {
    asked: u32,
}

fn kernel_backlog(asked: u32, somaxconn: u32) -> u32 {
    asked.min(somaxconn)
}

fn netns(rng: &mut Rng) -> Netns {
    let mut ns = Netns {
        inode: Some(4026532999),
        ..Netns::default()
    };
    match rng.below(4) {
        0 => ns.initial = Some(true),
        1 => {
            ns.initial = Some(false);
            ns.names = vec!["blue".into()];
        }
        2 => {
            ns.initial = Some(false);
            ns.pid = Some(4242);
        }
        _ => ns.initial = None,
    }
    ns
}

/// A generated snapshot, with the truth behind it: what each application asked for, and the
/// namespace's somaxconn even when the snapshot could not read it.
fn generate(rng: &mut Rng, unix: bool) -> (Snapshot, Vec<Gen>, u32) {
    let somaxconn_now = rng.pick(SOMAXCONN);
    let n = 1 + rng.below(4) as usize;
    // One process may hold several listeners (a proxy), as nginx's master does.
    let shared_owner = rng.chance(30);
    let mut gens = Vec::new();
    let mut first = Vec::new();
    let mut last = Vec::new();
    let mut owners = Vec::new();
    let mut overflows = 0u64;
    for i in 0..n {
        let asked = rng.pick(ASKED);
        // somaxconn may have changed since listen().
        let at_listen = if rng.chance(20) {
            rng.pick(SOMAXCONN)
        } else {
            somaxconn_now
        };
        let b = kernel_backlog(asked, at_listen);
        let cap = u64::from(b) + 1;
        let peak = match rng.below(5) {
            0 => 0,
            1 => cap / 2,
            2 => (cap * 4).div_ceil(5),
            3 => cap,
            _ => cap + 2, // lockless overshoot
        };
        let peak = u32::try_from(peak).unwrap_or(u32::MAX);
        let before = if rng.chance(50) {
            rng.below(5000) as u32
        } else {
            0
        };
        let during = if rng.chance(40) {
            rng.below(300) as u32
        } else {
            0
        };
        // Nothing counts a Unix listener's refusals: no drops, no ListenOverflows.
        if !unix {
            overflows += u64::from(during);
        }
        // An SO_REUSEPORT sibling shares the previous listener's address; some are IPv6.
        let port = if i > 0 && rng.chance(25) {
            last.last()
                .and_then(|l: &Listener| l.local.port())
                .unwrap_or(8000)
        } else {
            8000 + i as u16
        };
        let ip = if rng.chance(20) { "[::]" } else { "127.0.0.1" };
        let local: Local = if unix {
            Local::Unix(UnixLocal {
                name: UnixName::Path(Name::new(format!("/run/app{port}.sock").as_bytes())),
                kind: UnixKind::Stream,
                vfs: None,
            })
        } else {
            format!("{ip}:{port}").parse::<SocketAddr>().unwrap().into()
        };
        let inode = 1000 + i as u64;
        let owner = rng
            .chance(85)
            .then(|| rng.pick(if unix { UNIX_OWNERS } else { OWNERS }));
        if let Some((comm, cmdline)) = owner {
            owners.push(Owner {
                inode,
                pid: if shared_owner { 100 } else { 100 + i as u32 },
                comm: comm.into(),
                cmdline: cmdline.into(),
                ..Owner::default()
            });
        }
        // A full SYN queue, or several sockets sharing one count; SYN_RECV may not be counted.
        let syn = match rng.below(6) {
            0 => Some(b.saturating_add(1)),
            1 => Some(b / 2),
            _ => None,
        };
        let l = |recv_q, drops| Listener {
            local: local.clone(),
            inode,
            uid: 0,
            recv_q,
            send_q: b,
            drops: (!unix).then_some(drops),
            syn_recv: syn.filter(|_| !unix),
            v6only: None,
            wait: None,
        };
        first.push(l(peak.min(1), before));
        last.push(l(peak, before.saturating_add(during)));
        gens.push(Gen { asked });
    }
    let cookies = rng.pick(&[Some(0), Some(1), Some(2), None]);
    let counters = |o: u64, q: u64| {
        let mut c = BTreeMap::new();
        c.insert("TcpExt:ListenOverflows".to_string(), o);
        c.insert("TcpExt:ListenDrops".to_string(), o);
        c.insert("TcpExt:TCPReqQFullDrop".to_string(), q);
        c.insert("TcpExt:TCPReqQFullDoCookies".to_string(), 0);
        c
    };
    let reqq = if rng.chance(15) { 3 } else { 0 };
    // A single sample: no deltas, the state now.
    let single = rng.chance(20);
    let snap = Snapshot {
        schema_version: 1,
        tool: "generated".into(),
        kernel: Some("6.18".into()),
        hostname: None,
        netns: netns(rng),
        started_unix_ms: 0,
        targets: Vec::new(),
        sample_interval_us: 10_000,
        samples_taken: if single { 1 } else { 2 },
        sysctls: Sysctls {
            somaxconn: rng.chance(90).then_some(somaxconn_now),
            tcp_max_syn_backlog: Some(2048),
            tcp_syncookies: cookies,
            tcp_abort_on_overflow: rng.pick(&[Some(0), Some(1), None]),
            tcp_synack_retries: rng.pick(&[Some(5), Some(1), None]),
            ..Sysctls::default()
        },
        owners,
        settings: Vec::new(),
        samples: if single {
            vec![Sample {
                elapsed_us: 0,
                counters: Some(counters(1000 + overflows, reqq)),
                listeners: last,
                outgoing: None,
            }]
        } else {
            vec![
                Sample {
                    elapsed_us: 0,
                    counters: Some(counters(1000, 0)),
                    listeners: first,
                    outgoing: None,
                },
                Sample {
                    elapsed_us: 500_000,
                    counters: Some(counters(1000 + overflows, reqq)),
                    listeners: last,
                    outgoing: None,
                },
            ]
        },
        gaps: Vec::new(),
        other_addresses: Vec::new(),
        other_listeners: None,
        own_connections: None,
        resets_traced: None,
        socket_files: Default::default(),
        local_addresses: None,
        resolved: Vec::new(),
        client_traced: None,
        set_aside: Vec::new(),
    };
    (snap, gens, somaxconn_now)
}

/// Carries out every step of the report as an operator pasting it would, then records what the
/// kernel would show after a quiet window: queues empty, old drops still there.
fn apply(snap: &Snapshot, gens: &[Gen], true_somaxconn: u32, report: &Report) -> Snapshot {
    let mut after = snap.clone();
    let mut asked: HashMap<u64, u32> = HashMap::new();
    let mut relisten: Vec<u64> = Vec::new();
    let mut somaxconn = true_somaxconn;
    for (i, g) in gens.iter().enumerate() {
        asked.insert(1000 + i as u64, g.asked);
    }
    let steps = report
        .plans
        .iter()
        .flat_map(|p| p.steps.iter().map(move |s| (Some(p), s)))
        .chain(
            report
                .findings
                .iter()
                .flat_map(|f| f.fix.steps.iter().map(|s| (None, s))),
        );
    for (plan, step) in steps {
        let inodes: Vec<u64> = plan.map(|p| p.inodes.clone()).unwrap_or_default();
        if step.conditional {
            continue; // a blind consumer skips what only holds under a stated condition
        }
        match step.action {
            Action::Sysctl {
                knob: Knob::Somaxconn,
                value,
            } => {
                // "At least": sysctl -w is only printed when it raises.
                somaxconn = somaxconn.max(value);
            }
            Action::Sysctl {
                knob: Knob::Syncookies,
                value,
            } => after.sysctls.tcp_syncookies = Some(value),
            Action::Sysctl {
                knob: Knob::AbortOnOverflow,
                value,
            } => after.sysctls.tcp_abort_on_overflow = Some(value),
            Action::AppBacklog { value, .. } => {
                for i in &inodes {
                    asked.insert(*i, value);
                }
            }
            Action::DerivedBacklog { value, .. } => {
                for i in &inodes {
                    asked.insert(*i, (2 * value).min(10_000));
                }
            }
            // A reload re-listens when backlog= changed; the step says to restart when Send-Q
            // does not follow, so either way the socket listens again.
            Action::Relisten { .. } => relisten.extend(&inodes),
            _ => {}
        }
    }
    // The next run reads somaxconn if this one could.
    after.sysctls.somaxconn = snap.sysctls.somaxconn.map(|_| somaxconn);
    // No counter moves in the quiet window after the fix.
    let quiet = after.samples.last().and_then(|s| s.counters.clone());
    for s in &mut after.samples {
        s.counters = quiet.clone();
        for l in &mut s.listeners {
            if relisten.contains(&l.inode) {
                l.send_q = kernel_backlog(asked[&l.inode], somaxconn);
            }
            l.recv_q = 0;
            l.syn_recv = l.syn_recv.map(|_| 0);
        }
    }
    // Old drops stay: both samples keep the last count.
    let last_drops: HashMap<u64, Option<u32>> = snap.samples[snap.samples.len() - 1]
        .listeners
        .iter()
        .map(|l| (l.inode, l.drops))
        .collect();
    for s in &mut after.samples {
        for l in &mut s.listeners {
            l.drops = last_drops[&l.inode];
        }
    }
    after
}

/// One number per knob: every somaxconn step of a report says the same value, every plan has
/// at most one backlog, and each finding of a plan carries exactly the plan's steps.
fn one_number_per_knob(report: &Report) -> Result<(), String> {
    let mut somaxconn = None;
    for p in &report.plans {
        let mut backlogs = 0;
        for s in &p.steps {
            match s.action {
                Action::Sysctl {
                    knob: Knob::Somaxconn,
                    value,
                } => {
                    if somaxconn.is_some_and(|v| v != value) {
                        return Err(format!("two somaxconn values: {somaxconn:?} and {value}"));
                    }
                    somaxconn = Some(value);
                }
                Action::AppBacklog { value, .. } => {
                    backlogs += 1;
                    if Some(value) != p.backlog.target {
                        return Err(format!("app step {value} != target {:?}", p.backlog.target));
                    }
                }
                _ => {}
            }
            if s.text.is_empty() {
                return Err(format!("step without words: {s:?}"));
            }
        }
        if backlogs > 1 {
            return Err("two backlog steps in one plan".into());
        }
    }
    for f in &report.findings {
        if let Some(i) = f.fix.plan
            && report.plans[i].steps != f.fix.steps
        {
            return Err(format!("{} does not carry its plan's steps", f.id.as_str()));
        }
    }
    // Every plan is printed: some finding refers to it.
    for p in &report.plans {
        if !report.findings.iter().any(|f| f.fix.plan == Some(p.id)) {
            return Err(format!(
                "plan {} for {:?} has no finding",
                p.id, p.listeners
            ));
        }
    }
    Ok(())
}

/// No TCP words for a Unix listener: its findings cite unix_diag, never a TcpExt counter, and
/// none of the SYN-queue, syncookies or abort-on-overflow findings is about it.
fn unix_words_only(report: &Report) -> Result<(), String> {
    for f in &report.findings {
        if matches!(
            f.id,
            RuleId::AbortOnOverflow
                | RuleId::SynQueueOverflow
                | RuleId::SyncookiesDisabled
                | RuleId::ReuseportImbalance
        ) {
            return Err(format!("{} for Unix listeners only", f.id.as_str()));
        }
        if f.listener.is_none() {
            continue; // the namespace's ListenOverflows: a TCP listener's, outside the view
        }
        for e in &f.evidence {
            if e.name.starts_with("TcpExt") || e.source.contains("inet_diag") {
                return Err(format!("{}: TCP evidence {e:?}", f.id.as_str()));
            }
        }
        if f.id != RuleId::UnixClients && f.summary.contains("SYN") {
            return Err(format!("{}: {}", f.id.as_str(), f.summary));
        }
    }
    Ok(())
}

/// A runtime added to the table is drawn by the property too: one of the owners above is
/// recognised as it.
#[test]
fn every_runtime_is_drawn() {
    use backlogctl::doctor::runtime::{RUNTIMES, runtime_of};
    use backlogctl::model::Owner;
    let drawn: Vec<&str> = OWNERS
        .iter()
        .chain(UNIX_OWNERS)
        .filter_map(|(comm, cmdline)| {
            let o = Owner {
                inode: 1,
                pid: 1,
                comm: comm.to_string(),
                cmdline: cmdline.to_string(),
                ..Owner::default()
            };
            runtime_of(&[o]).map(|r| r.id)
        })
        .collect();
    for r in RUNTIMES {
        assert!(
            drawn.contains(&r.id),
            "{}: add an owner of it to OWNERS",
            r.id
        );
    }
}

#[test]
fn applying_the_plan_is_a_fixpoint() {
    fixpoint(0x5eed_2026_1130, false);
}

#[test]
fn applying_the_plan_to_unix_listeners_is_a_fixpoint() {
    fixpoint(0x5eed_2026_1203, true);
}

fn fixpoint(seed: u64, unix: bool) {
    let mut rng = Rng(seed);
    let mut raised = 0;
    for case in 0..5000 {
        let (snap, gens, true_somaxconn) = generate(&mut rng, unix);
        if unix {
            let r = diagnose(&snap);
            if let Err(e) = unix_words_only(&r) {
                panic!(
                    "case {case}: {e}\n{}",
                    serde_json::to_string(&snap).unwrap()
                );
            }
        }
        let report = diagnose(&snap);
        if let Err(e) = one_number_per_knob(&report) {
            panic!(
                "case {case}: {e}\n{}",
                serde_json::to_string(&snap).unwrap()
            );
        }
        if report
            .plans
            .iter()
            .any(|p| p.steps.iter().any(|s| s.raises()))
        {
            raised += 1;
        }
        let after = apply(&snap, &gens, true_somaxconn, &report);
        let again = diagnose(&after);
        let raising: Vec<String> = again
            .plans
            .iter()
            .flat_map(|p| &p.steps)
            .filter(|s| s.raises() || s.kind == StepKind::Relisten)
            .map(|s| s.text.clone())
            .collect();
        let left: Vec<RuleId> = again
            .findings
            .iter()
            .filter(|f| f.severity > Severity::Ok)
            .map(|f| f.id)
            .filter(|id| *id != RuleId::AcceptQueueDropped)
            .collect();
        assert!(
            raising.is_empty() && left.is_empty(),
            "case {case}: after the plan, still {left:?} / {raising:?}\nbefore: {}\nafter: {}",
            serde_json::to_string(&report.plans).unwrap(),
            serde_json::to_string(&after).unwrap()
        );
        // Old drops alone: a check, never a bigger backlog.
        for f in again
            .findings
            .iter()
            .filter(|f| f.id == RuleId::AcceptQueueDropped)
        {
            assert!(
                f.fix.steps.iter().all(|s| s.kind == StepKind::Check),
                "case {case}: {:?}",
                f.fix.steps
            );
        }
    }
    // The generator must exercise the raising path, or the property says nothing.
    assert!(raised > 2000, "only {raised} cases raised anything");
}
