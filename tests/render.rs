//! The report on a big host: listeners alike share one finding that names them all, and one
//! rule firing on many distinct groups prints the first few in full and lists the rest.

use backlogctl::{doctor, render, store};

/// The documented minimal snapshot format (docs/snapshot.md): listeners asking for listen(10)
/// on ports 8100.., the i-th held by process `owner(i)` (none when it returns None).
fn snapshot(n: usize, owner: impl Fn(usize) -> Option<u32>) -> backlogctl::model::Snapshot {
    let listeners: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"local": "127.0.0.1:{}", "inode": {}, "uid": 0, "recv_q": 0, "send_q": 10}}"#,
                8100 + i,
                i + 1
            )
        })
        .collect();
    let owners: Vec<String> = (0..n)
        .filter_map(|i| {
            owner(i).map(|pid| {
                format!(
                    r#"{{"inode": {}, "pid": {pid}, "comm": "srv{pid}"}}"#,
                    i + 1
                )
            })
        })
        .collect();
    store::parse(&format!(
        r#"{{"schema_version": 1, "tool": "test", "started_unix_ms": 0, "sysctls": {{"somaxconn": 4096}},
            "owners": [{}], "samples": [{{"elapsed_us": 0, "listeners": [{}]}}]}}"#,
        owners.join(","),
        listeners.join(",")
    ))
    .unwrap()
}

fn text_of(report: &doctor::Report) -> String {
    let mut out = Vec::new();
    render::text(&mut out, report, render::Style::PLAIN).unwrap();
    String::from_utf8(out).unwrap()
}

fn json_of(report: &doctor::Report) -> serde_json::Value {
    let mut json = Vec::new();
    render::json(&mut json, report).unwrap();
    serde_json::from_slice(&json).unwrap()
}

#[test]
fn listeners_alike_share_one_finding() {
    // Ports 8100-8104 belong to process 10, 8105-8106 to process 11: two groups.
    let report = doctor::diagnose(&snapshot(7, |i| Some(if i < 5 { 10 } else { 11 })));
    let ids: Vec<&str> = report.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["small-app-backlog", "small-app-backlog"]);
    let first = &report.findings[0];
    assert_eq!(first.listener.as_deref(), Some("127.0.0.1:8100"));
    assert_eq!(first.listeners.len(), 5);
    assert!(
        first
            .summary
            .contains("4 other listener(s) of the same process (srv10, pid 10)"),
        "{}",
        first.summary
    );
    assert_eq!(
        report.findings[1].listeners,
        ["127.0.0.1:8105", "127.0.0.1:8106"]
    );
    let out = text_of(&report);
    assert!(
        out.contains("Listeners: 127.0.0.1:8100, 127.0.0.1:8101, 127.0.0.1:8102, 127.0.0.1:8103, 127.0.0.1:8104"),
        "{out}"
    );
    let v = json_of(&report);
    assert_eq!(v["findings"][0]["listeners"].as_array().unwrap().len(), 5);
    assert_eq!(v["findings"][0]["listener"], "127.0.0.1:8100");
    assert_eq!(
        v["listeners"].as_array().unwrap().len(),
        7,
        "every listener's own figures"
    );
}

#[test]
fn unknown_processes_are_said_to_be_unknown() {
    let report = doctor::diagnose(&snapshot(3, |_| None));
    assert_eq!(report.findings.len(), 1);
    assert!(
        report.findings[0]
            .summary
            .contains("2 other listener(s) (their processes are unknown)"),
        "{}",
        report.findings[0].summary
    );
}

#[test]
fn many_findings_of_one_rule_are_listed_not_repeated() {
    // Seven processes, one listener each: seven distinct findings of one rule.
    let report = doctor::diagnose(&snapshot(7, |i| Some(100 + i as u32)));
    assert_eq!(report.findings.len(), 7);
    let out = text_of(&report);
    assert_eq!(
        out.matches("asked listen() for a backlog of only 10")
            .count(),
        5,
        "{out}"
    );
    assert!(
        out.contains("small-app-backlog  on 2 more listener(s)"),
        "{out}"
    );
    assert!(out.contains("127.0.0.1:8105, 127.0.0.1:8106"), "{out}");
    assert_eq!(
        json_of(&report)["findings"].as_array().unwrap().len(),
        7,
        "JSON keeps every finding"
    );
}

#[test]
fn a_big_listener_table_shows_the_troubled_ones() {
    // 100 listeners of one process; the 61st has its queue full: it must be in the table.
    let mut snap = snapshot(100, |_| Some(10));
    snap.samples[0].listeners[60].recv_q = 11;
    let out = text_of(&doctor::diagnose(&snap));
    assert!(
        out.lines()
            .any(|l| l.contains("127.0.0.1:8160") && l.contains("11/11")),
        "the full queue is in the table: {out}"
    );
    assert!(
        out.contains("... and 80 more listener(s), quieter (--json lists every one)"),
        "{out}"
    );
}

#[test]
fn a_group_of_overflowing_listeners_is_told_by_its_worst() {
    // Three listeners of one process, all full; the second dropped the most.
    let mut snap = snapshot(3, |_| Some(10));
    for (l, drops) in snap.samples[0].listeners.iter_mut().zip([3, 40, 7]) {
        l.recv_q = 11;
        l.drops = Some(drops);
    }
    let report = doctor::diagnose(&snap);
    let overflow = report
        .findings
        .iter()
        .find(|f| f.id.as_str() == "accept-queue-overflow")
        .expect("an overflow finding");
    assert_eq!(overflow.listener.as_deref(), Some("127.0.0.1:8101"));
    assert_eq!(
        overflow.listeners,
        ["127.0.0.1:8101", "127.0.0.1:8100", "127.0.0.1:8102"]
    );
    assert!(
        overflow
            .summary
            .contains("the figures above are the worst one's"),
        "{}",
        overflow.summary
    );
    assert_eq!(
        report
            .findings
            .iter()
            .filter(|f| f.id.as_str() == "accept-queue-overflow")
            .count(),
        1
    );
}

/// A Unix listener at /run/php/php8.2-fpm.sock with backlog `b` and `recv_q` pending in the
/// second of two samples, held by `comm`/`cmdline` as pid 10, in a namespace with `somaxconn`.
fn unix_snapshot(
    comm: &str,
    cmdline: &str,
    somaxconn: u32,
    b: u32,
    recv_q: u32,
) -> backlogctl::model::Snapshot {
    let l = |q: u32| {
        format!(
            r#"{{"local": {{"path": "/run/php/php8.2-fpm.sock", "type": "stream"}}, "inode": 7,
                "uid": 0, "recv_q": {q}, "send_q": {b}}}"#
        )
    };
    store::parse(&format!(
        r#"{{"schema_version": 2, "tool": "test", "started_unix_ms": 0,
            "netns": {{"initial": true}},
            "sysctls": {{"somaxconn": {somaxconn}, "tcp_syncookies": 0, "tcp_abort_on_overflow": 0}},
            "owners": [{{"inode": 7, "pid": 10, "comm": "{comm}", "cmdline": "{cmdline}"}}],
            "samples": [{{"elapsed_us": 0, "listeners": [{}]}},
                        {{"elapsed_us": 500000, "listeners": [{}]}}]}}"#,
        l(0),
        l(recv_q)
    ))
    .unwrap()
}

fn ids(report: &doctor::Report) -> Vec<&'static str> {
    report.findings.iter().map(|f| f.id.as_str()).collect()
}

fn text_at(report: &doctor::Report, width: usize) -> String {
    let mut out = Vec::new();
    let style = render::Style {
        width,
        ..render::Style::PLAIN
    };
    render::text(&mut out, report, style).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn a_full_unix_queue_is_told_in_unix_words() {
    let php = "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)";
    let report = doctor::diagnose(&unix_snapshot("php-fpm8.2", php, 4096, 4, 5));
    // No abort-on-overflow, SYN-queue or syncookies finding, though tcp_syncookies is 0.
    assert_eq!(
        ids(&report),
        ["accept-queue-overflow", "small-app-backlog", "unix-clients"]
    );
    let overflow = &report.findings[0];
    assert!(
        overflow.summary.contains("refuses connections"),
        "{}",
        overflow.summary
    );
    for e in report.findings.iter().flat_map(|f| &f.evidence) {
        assert!(!e.name.starts_with("TcpExt"), "{e:?}");
        assert!(!e.source.contains("inet_diag"), "{e:?}");
    }
    let refused = overflow
        .evidence
        .iter()
        .find(|e| e.name == "refused connects")
        .expect("refused connects in the evidence");
    assert!(refused.value.is_null(), "unknown, never 0: {refused:?}");
    assert!(
        overflow
            .evidence
            .iter()
            .any(|e| e.source.starts_with("unix_diag"))
    );
    let clients = &report.findings[2].summary;
    for words in [
        "EAGAIN",
        "`connect() to unix:/run/php/php8.2-fpm.sock failed (11: Resource temporarily unavailable) while connecting to upstream`",
        "502",
        "SO_SNDTIMEO",
    ] {
        assert!(clients.contains(words), "{words}: {clients}");
    }
    let out = text_of(&report);
    let row = out
        .lines()
        .find(|l| l.contains("/run/php/php8.2-fpm.sock") && l.contains("5/5"))
        .expect("the listener's row");
    assert!(row.contains("n/a") && !row.contains("unknown"), "{row}");
}

#[test]
fn php_fpm_gets_its_pool_setting_a_pool_step_and_a_restart() {
    use backlogctl::doctor::remedy::{Action, StepKind};
    use backlogctl::doctor::runtime::{self, Relisten};
    let php = "php-fpm: pool www";
    let report = doctor::diagnose(&unix_snapshot("php-fpm8.2", php, 4096, 4, 5));
    let plan = &report.plans[0];
    assert_eq!(plan.runtime, Some(&runtime::PHP_FPM));
    let kinds: Vec<StepKind> = plan.steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            StepKind::AppSetting,
            StepKind::AppSetting,
            StepKind::Relisten,
            StepKind::Check
        ]
    );
    assert!(
        plan.steps[0].text.contains("`listen.backlog = 4096`"),
        "{}",
        plan.steps[0].text
    );
    assert!(matches!(plan.steps[1].action, Action::MoreWorkers { .. }));
    assert!(
        plan.steps[1].text.contains("pm.max_children"),
        "{}",
        plan.steps[1].text
    );
    assert!(matches!(
        plan.steps[2].action,
        Action::Relisten {
            how: Relisten::Restart,
            ..
        }
    ));
    assert!(
        plan.steps[2].text.contains("keeps the listening socket"),
        "{}",
        plan.steps[2].text
    );
    assert!(
        plan.steps[3]
            .text
            .contains("nothing counts refused Unix connects")
            && plan.steps[3].command.as_deref()
                == Some("backlogctl watch /run/php/php8.2-fpm.sock"),
        "{:?}",
        plan.steps[3]
    );
}

#[test]
fn uwsgi_raises_somaxconn_before_its_listen() {
    use backlogctl::doctor::remedy::{Action, Knob};
    let report = doctor::diagnose(&unix_snapshot(
        "uwsgi",
        "uwsgi --ini app.ini",
        100,
        100,
        101,
    ));
    let steps = &report.plans[0].steps;
    assert!(matches!(
        steps[0].action,
        Action::Sysctl {
            knob: Knob::Somaxconn,
            value: 4096
        }
    ));
    assert!(
        steps[1].text.contains("`--listen 4096`") && steps[1].text.contains("refuses to start")
    );
    assert!(ids(&report).contains(&"backlog-capped-by-somaxconn"));
}

#[test]
fn unix_runtimes_get_their_unix_knobs() {
    let cases = [
        (
            "node",
            "node server.js",
            "server.listen({ path, backlog: 4096 })",
        ),
        (
            "uvicorn",
            "uvicorn app:app --uds /run/x.sock",
            "--uds PATH --backlog 4096",
        ),
        (
            "gunicorn",
            "gunicorn app:app",
            "overrides the unit's Backlog=",
        ),
        ("systemd", "/sbin/init", "`Backlog=4096`"),
        (
            "python3",
            "python3 server.py",
            "start_unix_server(..., backlog=4096)",
        ),
    ];
    for (comm, cmdline, knob) in cases {
        let report = doctor::diagnose(&unix_snapshot(comm, cmdline, 4096, 16, 17));
        let app = &report.plans[0].steps[0].text;
        assert!(app.contains(knob), "{comm}: {app}");
    }
}

#[test]
fn a_unix_target_nobody_listens_on_says_what_clients_get() {
    let base = r#"{"schema_version": 2, "tool": "test", "started_unix_ms": 0,
        "sysctls": {"somaxconn": 4096}, "samples": [{"elapsed_us": 0, "listeners": []}],"#;
    let cases = [
        (
            r#""/a.sock", "socket_files": {"/a.sock": {"state": "socket", "ino": 1, "dev": 2}}"#,
            "stale",
            "ECONNREFUSED",
        ),
        (
            r#""/a.sock", "socket_files": {"/a.sock": {"state": "missing"}}"#,
            "no such file",
            "ENOENT",
        ),
        (
            r#""/a.sock", "socket_files": {"/a.sock": {"state": "not-a-socket"}}"#,
            "not a socket",
            "ECONNREFUSED",
        ),
        (r#""/a.sock""#, "not checked", "unknown"),
        (r#""@a""#, "abstract name", "ECONNREFUSED"),
    ];
    for (target, what, errno) in cases {
        let (t, files) = target.split_once(',').unwrap_or((target, ""));
        let json = format!(
            r#"{base} "targets": [{t}]{}{files}}}"#,
            if files.is_empty() { "" } else { "," }
        );
        let report = doctor::diagnose(&store::parse(&json).unwrap());
        assert_eq!(ids(&report), ["not-listening"], "{json}");
        let s = &report.findings[0].summary;
        assert!(s.contains(what) && s.contains(errno), "{what}/{errno}: {s}");
        assert!(!s.contains("RST"), "{s}");
    }
}

#[test]
fn the_table_fits_60_columns_and_never_cuts_a_path_or_an_address() {
    let unix = doctor::diagnose(&unix_snapshot(
        "php-fpm8.2",
        "php-fpm: pool www",
        4096,
        4,
        5,
    ));
    let tcp = doctor::diagnose(&snapshot(3, |i| Some(10 + i as u32)));
    for (report, name) in [
        (&unix, "/run/php/php8.2-fpm.sock"),
        (&tcp, "127.0.0.1:8102"),
    ] {
        let out = text_at(report, 60);
        let table: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.starts_with(" Listener"))
            .take_while(|l| !l.is_empty())
            .collect();
        assert!(table.len() >= 3, "{out}");
        assert!(table.iter().all(|l| l.chars().count() <= 60), "{out}");
        assert!(table.iter().any(|l| l.contains(name)), "{out}");
    }
    // Wide enough, the one-line table is as it was.
    let out = text_at(&tcp, 100);
    assert!(
        out.lines()
            .any(|l| l.contains("127.0.0.1:8100") && l.contains("0/0") && l.contains("srv10")),
        "{out}"
    );
}

/// PostgreSQL's backlog is 2 × MaxBackends: small with a small max_connections, but raising
/// max_connections also sizes shared memory and the backends that may run at once, so a queue
/// that never came near full is no reason to advise it. Any other server with the same small
/// backlog still gets small-app-backlog.
#[test]
fn a_small_postgres_backlog_that_never_filled_is_no_finding() {
    let with = |comm: &str| {
        store::parse(&format!(
            r#"{{"schema_version": 1, "tool": "test", "started_unix_ms": 0, "sysctls": {{"somaxconn": 4096}},
                "owners": [{{"inode": 1, "pid": 7, "comm": "{comm}", "cmdline": "{comm} -D /x -c max_connections=5"}}],
                "samples": [{{"elapsed_us": 0, "listeners": [{{"local": "127.0.0.1:5432", "inode": 1, "uid": 0, "recv_q": 0, "send_q": 54}}]}}]}}"#
        ))
        .unwrap()
    };
    let pg = doctor::diagnose(&with("postgres"));
    assert!(pg.findings.is_empty(), "{:#?}", pg.findings);
    assert_eq!(pg.verdict, doctor::Severity::Ok);
    let other = doctor::diagnose(&with("myserver"));
    assert_eq!(ids(&other), ["small-app-backlog"]);
}

/// Every recorded snapshot's report at 60 columns: no line is wider, except a backticked
/// command or log line longer than the width itself, which stays whole (so that it can be
/// copied) on a line of its own, from the first column.
#[test]
fn every_fixture_report_fits_60_columns_but_for_a_command_too_long_for_any_line() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/snapshots");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() > 20,
        "{} fixtures in {}",
        files.len(),
        dir.display()
    );
    for path in files {
        let snap = store::load(&path).unwrap();
        let report = doctor::diagnose(&snap);
        let out = text_at(&report, 60);
        for line in out.lines().filter(|l| l.chars().count() > 60) {
            let whole = line.starts_with('`')
                && line.trim_end_matches([':', ',', ';', '.']).ends_with('`')
                && line.matches('`').count() == 2;
            assert!(
                whole,
                "{}: a line of {} columns: {line}\n{out}",
                path.display(),
                line.chars().count()
            );
        }
    }
}
