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
