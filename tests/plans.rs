//! The remedy plan as a pure function of snapshots recorded with real servers in named network
//! namespaces (fixtures/README.md): each runtime gets its own knob, one target backlog, the
//! right way to re-listen, and commands that only ever touch the listener's namespace.

mod common;

use backlogctl::doctor::remedy::{Action, Knob, StepKind};
use backlogctl::doctor::runtime::Relisten;
use backlogctl::doctor::{Report, Severity, diagnose};
use common::fixture;

fn report(name: &str) -> Report {
    let snap = backlogctl::store::load(&fixture(&format!("snapshots/{name}"))).expect(name);
    diagnose(&snap)
}

/// Every command of every finding and plan runs in `ns` and nowhere else.
fn scoped_to(r: &Report, ns: &str) {
    let steps = r
        .plans
        .iter()
        .flat_map(|p| &p.steps)
        .chain(r.findings.iter().flat_map(|f| &f.fix.steps));
    for s in steps {
        assert_eq!(s.namespace, ns, "{s:?}");
        if let Some(c) = &s.command {
            let ok = c.starts_with(&format!("ip netns exec {ns} "))
                || c.starts_with(&format!("backlogctl --netns {ns} "))
                || c.starts_with("kill -HUP ");
            assert!(ok, "{c} leaves namespace {ns}");
        }
        assert!(
            s.persist.is_none(),
            "no host sysctl.d for a named namespace"
        );
    }
}

/// The one plan of a burst fixture: its target, its backlog step's text, and how it re-listens.
fn burst_plan(name: &str, ns: &str, knob: &str, kind: StepKind, how: Relisten) {
    let r = report(name);
    assert_eq!(r.verdict, Severity::Critical, "{name}");
    assert_eq!(r.plans.len(), 1, "{name}: one listener, one plan");
    let plan = &r.plans[0];
    assert_eq!(plan.backlog.target, Some(4096), "{name}");
    // somaxconn is 4096 in these namespaces already: no sysctl step.
    assert!(
        !plan.steps.iter().any(|s| s.kind == StepKind::Sysctl),
        "{name}: {:?}",
        plan.steps
    );
    let app = plan
        .steps
        .iter()
        .find(|s| {
            matches!(
                s.action,
                Action::AppBacklog { .. } | Action::DerivedBacklog { .. }
            )
        })
        .unwrap_or_else(|| panic!("{name}: no backlog step"));
    assert_eq!(app.kind, kind, "{name}");
    assert!(app.text.contains(knob), "{name}: {}", app.text);
    let relisten = plan
        .steps
        .iter()
        .find_map(|s| match s.action {
            Action::Relisten { how, .. } => Some(how),
            _ => None,
        })
        .expect("a relisten step");
    assert_eq!(relisten, how, "{name}");
    // Every finding of the listener carries the same plan.
    for f in r.findings.iter().filter(|f| f.fix.plan.is_some()) {
        assert_eq!(f.fix.plan, Some(0));
        assert_eq!(f.fix.steps, plan.steps, "{name}: {}", f.id.as_str());
    }
    scoped_to(&r, ns);
}

#[test]
fn each_real_server_gets_its_own_knob() {
    use Relisten::{Reload, Restart};
    use StepKind::{AppSetting, CodeChange};
    let cases = [
        (
            "6.18-nginx-backlog16-burst.json",
            "bfx-nginx",
            "backlog=4096",
            AppSetting,
            Reload,
        ),
        (
            "6.18-redis-tcp-backlog16-burst.json",
            "bfx-redis",
            "tcp-backlog 4096",
            AppSetting,
            Restart,
        ),
        (
            "6.18-postgres-maxconn5-burst.json",
            "bfx-postgres",
            // Started with -c max_connections=5: ALTER SYSTEM would change nothing.
            "change it there, where the server is started (its unit, or `pg_ctl -o`), to \
             `-c max_connections=2048`",
            AppSetting,
            Restart,
        ),
        (
            "6.18-node-backlog16-burst.json",
            "bfx-node",
            "backlog: 4096",
            CodeChange,
            Restart,
        ),
        (
            "6.18-gunicorn-backlog16-burst.json",
            "bfx-gunicorn",
            "--backlog 4096",
            AppSetting,
            Restart,
        ),
        (
            "6.18-uvicorn-backlog16-burst.json",
            "bfx-uvicorn",
            "--backlog 4096",
            AppSetting,
            Restart,
        ),
        (
            "6.18-java-backlog16-burst.json",
            "bfx-java",
            "ServerSocket(port, 4096)",
            CodeChange,
            Restart,
        ),
        (
            "6.18-haproxy-maxconn20-backlog16-burst.json",
            "bfx-haproxy",
            "`backlog 4096` in the frontend",
            AppSetting,
            Restart,
        ),
        (
            "6.18-lighttpd-backlog16-burst.json",
            "bfx-lighttpd",
            "server.listen-backlog = 4096",
            AppSetting,
            Restart,
        ),
    ];
    for (name, ns, knob, kind, how) in cases {
        burst_plan(name, ns, knob, kind, how);
    }
}

/// PostgreSQL started with `-c max_connections=5` (its owner's command line in the fixture):
/// the command line beats postgresql.conf and ALTER SYSTEM (pg_settings.source = command line)
/// and `pg_ctl restart` replays it from postmaster.opts, so the plan changes the command line,
/// restarts with the new one, and never offers ALTER SYSTEM.
#[test]
fn postgres_started_with_max_connections_on_its_command_line_is_changed_there() {
    let r = report("6.18-postgres-maxconn5-burst.json");
    let plan = &r.plans[0];
    let derived = plan
        .steps
        .iter()
        .find(|s| matches!(s.action, Action::DerivedBacklog { .. }))
        .expect("a max_connections step");
    let Action::DerivedBacklog {
        value,
        now: Some(now),
        ..
    } = &derived.action
    else {
        panic!("the running value is known: {:?}", derived.action)
    };
    assert_eq!(*value, 2048);
    assert!(now.on_command_line(), "{now:?}");
    assert_eq!(now.written, "-c max_connections=5");
    assert!(
        derived.text.contains(
            "its command line says `-c max_connections=5`, which overrides \
                               postgresql.conf and ALTER SYSTEM"
        ),
        "{}",
        derived.text
    );
    assert!(
        !derived.text.contains("ALTER SYSTEM SET"),
        "{}",
        derived.text
    );
    let restart = plan
        .steps
        .iter()
        .find(|s| matches!(s.action, Action::Relisten { .. }))
        .expect("a restart");
    assert!(matches!(
        restart.action,
        Action::Relisten {
            new_command_line: true,
            ..
        }
    ));
    assert!(restart.text.contains("postmaster.opts"), "{}", restart.text);
    // Its cap, from the same command line: 5 connections, beyond which it refuses after accept.
    let cap = r.listeners[0]
        .cap
        .as_ref()
        .expect("a cap read from its settings");
    assert_eq!(cap.value, Some(5));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["plans"][0]["steps"][0]["action"]["now"]["source"]["kind"],
        "command-line"
    );
}

/// HAProxy at `maxconn 20` (global and frontend) with `backlog 16`, under 100 clients of a
/// 200 ms backend: the plan changes the backlog on the file's line that sets it, and says that
/// beyond 20 connections HAProxy accepts no more, naming both maxconn lines it read.
#[test]
fn haproxy_s_maxconn_is_named_where_it_is_set() {
    use backlogctl::doctor::caps::Combine;
    use backlogctl::model::SettingSource;
    let r = report("6.18-haproxy-maxconn20-backlog16-burst.json");
    let steps = &r.plans[0].steps;
    let file = |line| SettingSource::ConfigFile {
        path: "/tmp/cap/hx/haproxy.cfg".into(),
        line,
    };
    let Action::AppBacklog { now: Some(now), .. } = &steps[0].action else {
        panic!("{:?}", steps[0].action)
    };
    assert_eq!(
        (now.written.as_str(), &now.source),
        ("backlog 16", &file(15))
    );
    assert!(
        steps[0]
            .text
            .contains("/tmp/cap/hx/haproxy.cfg line 15 (`backlog 16`)"),
        "{}",
        steps[0].text
    );
    let faster = steps
        .iter()
        .find(|s| matches!(s.action, Action::AcceptFaster { .. }))
        .expect("accept faster");
    let Action::AcceptFaster { cap: Some(cap) } = &faster.action else {
        panic!("no cap: {:?}", faster.action)
    };
    assert_eq!(cap.value, Some(20));
    let read: Vec<(&SettingSource, Option<&str>)> = cap
        .settings()
        .iter()
        .map(|s| (&s.source, s.section.as_ref().map(|x| x.name.as_str())))
        .collect();
    assert_eq!(read, [(&file(2), None), (&file(14), Some("frontend fe"))]);
    assert!(matches!(
        cap.basis,
        backlogctl::doctor::caps::Basis::Settings {
            combine: Combine::Lowest,
            ..
        }
    ));
    assert!(
        faster
            .text
            .contains("HAProxy serves at most 20 connections at once")
            && faster
                .text
                .contains("`maxconn N` in the global section and the frontend"),
        "{}",
        faster.text
    );
    assert_eq!(
        r.listeners[0].cap.as_ref(),
        Some(cap),
        "the listener shows it too"
    );
}

/// nginx reloads with a new backlog= re-listen on the same socket: the reload goes to the
/// master, named by its command line.
#[test]
fn nginx_reload_signals_the_master() {
    let r = report("6.18-nginx-backlog16-burst.json");
    let snap =
        backlogctl::store::load(&fixture("snapshots/6.18-nginx-backlog16-burst.json")).unwrap();
    let master = snap
        .owners
        .iter()
        .find(|o| o.cmdline.starts_with("nginx: master"))
        .expect("the master holds the socket");
    let cmd = r.plans[0]
        .steps
        .iter()
        .find_map(|s| matches!(s.action, Action::Relisten { .. }).then(|| s.command.clone()))
        .flatten();
    assert_eq!(cmd, Some(format!("kill -HUP {}", master.pid)));
}

/// After the fix (backlog=4096 and a reload: same socket, old drops kept), doctor asks for
/// nothing more: the drops of the past only ask to check that the fix held.
#[test]
fn nginx_after_reload_asks_for_nothing_more() {
    let r = report("6.18-nginx-reloaded-backlog4096-old-drops.json");
    let ids: Vec<&str> = r.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["accept-queue-dropped"]);
    assert_eq!(r.verdict, Severity::Warning);
    let f = &r.findings[0];
    assert!(f.summary.contains("never goes down"), "{}", f.summary);
    assert!(
        f.fix
            .steps
            .iter()
            .all(|s| s.kind == StepKind::Check && !s.raises()),
        "{:?}",
        f.fix.steps
    );
    assert_eq!(
        f.fix.steps[0].command.as_deref(),
        Some("backlogctl --netns bfx-nginx watch 127.0.0.1:8080")
    );
    scoped_to(&r, "bfx-nginx");
}

/// abort-on-overflow and syncookies commands go through the same namespace scoping as
/// somaxconn (they printed a bare host `sysctl -w` before).
#[test]
fn namespace_sysctls_are_scoped_too() {
    let mut snap =
        backlogctl::store::load(&fixture("snapshots/6.18-node-backlog16-burst.json")).unwrap();
    snap.sysctls.tcp_abort_on_overflow = Some(1);
    snap.sysctls.tcp_syncookies = Some(0);
    let r = diagnose(&snap);
    let cmds: Vec<&str> = r
        .findings
        .iter()
        .flat_map(|f| &f.fix.steps)
        .filter(|s| {
            matches!(
                s.action,
                Action::Sysctl {
                    knob: Knob::AbortOnOverflow | Knob::Syncookies,
                    ..
                }
            )
        })
        .filter_map(|s| s.command.as_deref())
        .collect();
    assert!(
        cmds.contains(&"ip netns exec bfx-node sysctl -w net.ipv4.tcp_abort_on_overflow=0"),
        "{cmds:?}"
    );
    assert!(
        cmds.contains(&"ip netns exec bfx-node sysctl -w net.ipv4.tcp_syncookies=1"),
        "{cmds:?}"
    );
    scoped_to(&r, "bfx-node");
}

/// `doctor 10.0.0.1:8080` while 127.0.0.1:8080 listens: not-listening names the listener at the
/// other address instead of claiming nothing is on the port.
#[test]
fn not_listening_names_the_other_addresses() {
    let mut snap =
        backlogctl::store::load(&fixture("snapshots/6.18-nginx-backlog16-burst.json")).unwrap();
    snap.targets = vec!["10.0.0.1:8080".parse().unwrap()];
    snap.other_addresses = snap.samples[0]
        .listeners
        .iter()
        .filter_map(|l| l.local.inet())
        .collect();
    for s in &mut snap.samples {
        s.listeners.clear();
    }
    let r = diagnose(&snap);
    let f = r
        .findings
        .iter()
        .find(|f| f.id.as_str() == "not-listening")
        .unwrap();
    assert!(
        f.summary
            .contains("127.0.0.1:8080 listens on that port; 10.0.0.1 is not among its addresses"),
        "{}",
        f.summary
    );
    assert_eq!(f.target.as_deref(), Some("10.0.0.1:8080"));
    assert!(f.listeners.is_empty(), "no listener is concerned");
    assert_eq!(f.evidence[0].value, serde_json::json!(["127.0.0.1:8080"]));
}

fn node_snapshot() -> backlogctl::model::Snapshot {
    backlogctl::store::load(&fixture("snapshots/6.18-node-backlog16-burst.json")).unwrap()
}

/// Regressions from the review of the remedy plans.
#[test]
fn reuseport_groups_share_their_syn_recv_count() {
    // Three SO_REUSEPORT sockets of B=200 share one SYN_RECV count of 300: below their total
    // capacity, so no SYN queue is full and nothing is raised.
    let mut snap = node_snapshot();
    // Quiet counters: nothing overflowed in the window.
    let quiet = snap.samples[0].counters.clone();
    for s in &mut snap.samples {
        let l = s.listeners[0].clone();
        s.listeners = (0..3)
            .map(|i| {
                let mut m = l.clone();
                m.inode = 5000 + i;
                m.send_q = 200;
                m.recv_q = 0;
                m.drops = Some(0);
                m.syn_recv = Some(300);
                m
            })
            .collect();
        s.counters = quiet.clone();
    }
    let r = diagnose(&snap);
    assert!(r.plans.is_empty(), "{:?}", r.plans);
    assert!(
        !r.findings
            .iter()
            .any(|f| f.id.as_str() == "syn-queue-overflow")
    );
}

#[test]
fn no_command_enters_a_namespace_through_a_mere_holder() {
    // Not the host's, no name, no PID it was entered by: the lowest holder (here PID 1, which
    // holds sockets for socket activation) must not become `nsenter -t 1`.
    let mut snap = node_snapshot();
    snap.netns.names.clear();
    snap.netns.initial = Some(false);
    snap.netns.pid = None;
    for o in &mut snap.owners {
        o.pid = 1;
    }
    let r = diagnose(&snap);
    for s in r.plans.iter().flat_map(|p| &p.steps) {
        if matches!(s.action, Action::Sysctl { .. }) {
            assert_eq!(s.command, None, "{s:?}");
        }
        assert_eq!(s.namespace, "unknown");
    }
}

/// The first step of any finding that sets `knob`.
fn sysctl_step(r: &Report, knob: Knob) -> Option<backlogctl::doctor::remedy::Step> {
    r.findings
        .iter()
        .flat_map(|f| &f.fix.steps)
        .find(|s| matches!(s.action, Action::Sysctl { knob: k, .. } if k == knob))
        .cloned()
}

#[test]
fn conditional_and_unreadable_sysctls_are_not_blind_commands() {
    let mut snap = node_snapshot();
    snap.sysctls.tcp_abort_on_overflow = Some(1);
    let r = diagnose(&snap);
    let abort = sysctl_step(&r, Knob::AbortOnOverflow).expect("an abort step");
    assert!(
        abort.conditional,
        "lowering abort_on_overflow is a choice: {abort:?}"
    );
    // tcp_syncookies unread: `=1` could lower a 2, so no command.
    let mut snap = node_snapshot();
    snap.sysctls.tcp_syncookies = None;
    if let Some(c) = snap.samples.last_mut().and_then(|s| s.counters.as_mut()) {
        *c.entry("TcpExt:TCPReqQFullDrop".into()).or_default() += 5;
    }
    let r = diagnose(&snap);
    let cookies = sysctl_step(&r, Knob::Syncookies).expect("a syncookies step");
    assert_eq!(cookies.command, None);
}

#[test]
fn overshoot_and_huge_backlogs_are_told_as_they_are() {
    let mut snap = node_snapshot();
    for s in &mut snap.samples {
        for l in &mut s.listeners {
            l.recv_q = l.recv_q.max(19); // B=16: two past B+1
        }
    }
    let r = diagnose(&snap);
    let f = r
        .findings
        .iter()
        .find(|f| f.id.as_str() == "accept-queue-overflow")
        .unwrap();
    assert!(f.summary.contains("past B+1 = 17"), "{}", f.summary);
    // A backlog above today's somaxconn, at the top of u32: somaxconn (an int) is never asked
    // for more than i32::MAX.
    let mut snap = node_snapshot();
    snap.sysctls.somaxconn = Some(128);
    for s in &mut snap.samples {
        for l in &mut s.listeners {
            l.send_q = u32::MAX;
            l.recv_q = 0;
        }
    }
    let r = diagnose(&snap);
    for s in r.plans.iter().flat_map(|p| &p.steps) {
        if let Action::Sysctl { value, .. } = s.action {
            assert!(value <= i32::MAX as u32, "{s:?}");
        }
    }
}
