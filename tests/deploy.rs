//! The deployment files under deploy/, checked the way their consumers would read them:
//!
//! - `prometheus/alerts.yml`: `promtool check rules`, and `promtool test rules` on the unit tests
//!   in `prometheus/tests/` (pending then firing, the summary naming the pod or process, a
//!   listener without owner still alerting, silence when the drops stop); every metric name it
//!   uses is a family of the exporter's contract.
//!
//! A test whose tool is missing says `skipped: ...` on stderr and returns; it never passes
//! silently.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The metric families of the exporter's contract (issue 16, `backlogctl exporter`). Nothing
/// under deploy/ may query another `backlogctl_*` name.
const FAMILIES: &[&str] = &[
    "backlogctl_listen_queue_length",
    "backlogctl_listen_backlog",
    "backlogctl_listen_drops_total",
    "backlogctl_listen_owner_info",
    "backlogctl_tcp_listen_overflows_total",
    "backlogctl_tcp_listen_drops_total",
    "backlogctl_tcp_reqq_full_drop_total",
    "backlogctl_tcp_reqq_full_do_cookies_total",
    "backlogctl_tcp_syncookies_sent_total",
    "backlogctl_tcp_syncookies_recv_total",
    "backlogctl_tcp_syncookies_failed_total",
    "backlogctl_tcp_embryonic_rsts_total",
    "backlogctl_tcp_out_rsts_total",
    "backlogctl_sysctl",
    "backlogctl_netns_info",
    "backlogctl_netns_scrape_success",
    "backlogctl_scrape_duration_seconds",
    "backlogctl_build_info",
];

/// Says on stderr that (part of) a test did not run. Written to the stream itself, not with
/// `eprintln!`, which libtest captures and shows only for failing tests.
fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}");
}

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel)
}

fn read(rel: &str) -> String {
    let path = deploy(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Runs an external tool; None after printing why the test is skipped when it is not installed.
fn run(test: &str, tool: &str, args: &[&str], install: &str) -> Option<Output> {
    match Command::new(tool).args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            skipped(test, &format!("{tool} not installed ({install})"));
            None
        }
        Err(e) => panic!("cannot run {tool}: {e}"),
    }
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every `backlogctl_<lowercase and _>` token of a text, e.g. the metric names of a query.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("backlogctl_") {
        let rest = &text[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(rest.len());
        names.insert(rest[..end].to_string());
    }
    names
}

fn assert_known_families(what: &str, text: &str) {
    let names = metric_names(text);
    assert!(!names.is_empty(), "{what} uses no backlogctl metric");
    let unknown: Vec<_> = names
        .iter()
        .filter(|n| !FAMILIES.contains(&n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "{what} uses names that are not exporter families: {unknown:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Prometheus rules

#[test]
fn alert_rules_pass_promtool_check() {
    let rules = deploy("prometheus/alerts.yml");
    let Some(out) = run(
        "alert_rules_pass_promtool_check",
        "promtool",
        &["check", "rules", rules.to_str().unwrap()],
        "apt-get install prometheus",
    ) else {
        return;
    };
    let said = said(&out);
    assert!(out.status.success(), "promtool check rules:\n{said}");
    assert!(
        said.contains("SUCCESS: 5 rules found"),
        "promtool said:\n{said}"
    );
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    let tests = deploy("prometheus/tests/alerts_test.yml");
    let Some(out) = run(
        "alert_rules_pass_their_unit_tests",
        "promtool",
        &["test", "rules", tests.to_str().unwrap()],
        "apt-get install prometheus",
    ) else {
        return;
    };
    let said = said(&out);
    assert!(out.status.success(), "promtool test rules:\n{said}");
    assert!(said.contains("SUCCESS"), "promtool said:\n{said}");
}

#[test]
fn alert_rules_query_only_exporter_families() {
    assert_known_families("alerts.yml", &read("prometheus/alerts.yml"));
}

#[test]
fn every_alert_names_who_and_points_to_doctor() {
    let rules: serde_yaml::Value = serde_yaml::from_str(&read("prometheus/alerts.yml")).unwrap();
    let groups = rules["groups"].as_sequence().expect("groups");
    assert_eq!(groups.len(), 1, "one rule group");
    assert_eq!(groups[0]["name"], "backlogctl");
    let alerts = groups[0]["rules"].as_sequence().expect("rules");
    let names: Vec<&str> = alerts.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(
        names,
        [
            "BacklogctlListenerDropping",
            "BacklogctlAcceptQueueNearlyFull",
            "BacklogctlSomaxconnCapsBacklog",
            "BacklogctlExporterDown",
            "BacklogctlNamespaceScrapeFailing",
        ]
    );
    for rule in alerts {
        let name = rule["alert"].as_str().unwrap();
        let severity = rule["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            ["critical", "warning"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        assert!(rule["for"].as_str().is_some(), "{name}: no `for`");
        let summary = rule["annotations"]["summary"].as_str().unwrap_or("");
        assert!(
            summary.contains("$labels.pod") || summary.contains("process"),
            "{name}: summary names neither pod nor process: {summary}"
        );
        let runbook = rule["annotations"]["runbook"].as_str().unwrap_or("");
        assert!(
            runbook.contains("backlogctl doctor"),
            "{name}: runbook: {runbook}"
        );
        assert!(
            rule["annotations"]["description"].as_str().is_some(),
            "{name}: no description"
        );
    }
    assert_eq!(
        alerts[0]["labels"]["severity"], "critical",
        "a dropping listener is critical"
    );
}
