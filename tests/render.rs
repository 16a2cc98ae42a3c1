//! The text report on a big host: one rule firing on many listeners prints the first few in
//! full and lists the rest, while --json keeps every finding.

use backlogctl::{doctor, render, store};

#[test]
fn many_findings_of_one_rule_are_listed_not_repeated() {
    // The documented minimal format (docs/snapshot.md), seven listeners asking for listen(10).
    let listeners: Vec<String> = (0..7)
        .map(|i| {
            format!(
                r#"{{"local": "127.0.0.1:{}", "inode": {}, "uid": 0, "recv_q": 0, "send_q": 10}}"#,
                8100 + i,
                i + 1
            )
        })
        .collect();
    let text = format!(
        r#"{{"schema_version": 1, "tool": "test", "started_unix_ms": 0, "sysctls": {{"somaxconn": 4096}},
            "samples": [{{"elapsed_us": 0, "listeners": [{}]}}]}}"#,
        listeners.join(",")
    );
    let report = doctor::diagnose(&store::parse(&text).unwrap());
    assert_eq!(report.findings.len(), 7);
    let mut out = Vec::new();
    render::text(&mut out, &report, false).unwrap();
    let out = String::from_utf8(out).unwrap();
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
    let mut json = Vec::new();
    render::json(&mut json, &report).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        v["findings"].as_array().unwrap().len(),
        7,
        "JSON keeps every finding"
    );
}
