//! The deployment files under deploy/, checked the way their consumers would read them:
//!
//! - `prometheus/alerts.yml`: `promtool check rules`, and `promtool test rules` on the unit tests
//!   in `prometheus/tests/` (pending then firing, the summary naming the pod or process, a
//!   listener without owner still alerting, silence when the drops stop); every metric name it
//!   uses is a family of the exporter's contract.
//! - `kubernetes/`: every manifest parsed; the fields that make the exporter work and keep it
//!   tight (exactly SYS_ADMIN, SYS_PTRACE and DAC_READ_SEARCH over drop ALL, read-only root and mounts, hostPID,
//!   every node tolerated, probes on /healthz, port 9848 from DaemonSet to ServiceMonitor,
//!   selectors that select), and the PrometheusRule's groups equal to alerts.yml's.
//! - `grafana/backlogctl.json`: every panel query, with Grafana's variables replaced
//!   (`$__rate_interval` by 1m, a dashboard variable by `.*`), is valid PromQL for `promtool
//!   check rules`; it uses only exporter families and variables the dashboard defines.
//! - `systemd/`: each unit parsed as INI: the hardening keys, the three capabilities, nothing that
//!   forbids setns(CLONE_NEWNET), ExecStart parsed by backlogctl's own CLI; then
//!   `systemd-analyze verify` on copies that point at the built binary, where any complaint fails.
//!
//! A test whose tool is missing (promtool: Debian package prometheus; systemd-analyze:
//! systemd) says `skipped: ...` on stderr and returns; it never passes silently, and under
//! CI=true it fails instead (tests/common, `skip`).

mod common;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use backlogctl::cli::Cli;
use clap::Parser;
use common::skip;
use serde::Deserialize;
use serde_yaml::Value;

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
    "backlogctl_tcp_abort_on_close_total",
    "backlogctl_tcp_abort_on_data_total",
    "backlogctl_tcp_abort_on_timeout_total",
    "backlogctl_tcp_abort_on_memory_total",
    "backlogctl_tcp_estab_resets_total",
    "backlogctl_sysctl",
    "backlogctl_netns_info",
    "backlogctl_netns_scrape_success",
    "backlogctl_scrape_duration_seconds",
    "backlogctl_build_info",
    "backlogctl_scrapes_total",
];

/// The exporter's port, in every manifest and unit.
const PORT: u16 = 9848;

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
            skip(test, &format!("{tool} not installed ({install})"));
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

/// A directory of its own under the system temp dir, emptied first.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("backlogctl-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
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
        "Debian package prometheus",
    ) else {
        return;
    };
    let said = said(&out);
    assert!(out.status.success(), "promtool check rules:\n{said}");
    assert!(
        said.contains("SUCCESS: 6 rules found"),
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
        "Debian package prometheus",
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
            "BacklogctlResetsSent",
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

// ---------------------------------------------------------------------------------------------
// Kubernetes manifests

/// Every document of every manifest in deploy/kubernetes, with its file name.
fn manifests() -> Vec<(String, Value)> {
    let dir = deploy("kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: not YAML: {e}"));
            if !value.is_null() {
                docs.push((name.clone(), value));
            }
        }
    }
    docs
}

/// The one manifest of this kind.
fn kind(docs: &[(String, Value)], kind: &str) -> Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(_, d)| d)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} expected");
    found[0].clone()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Every key=value of a non-empty `selector` is in `labels`: it selects objects so labelled.
fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(selector) = selector.as_mapping() else {
        return false;
    };
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn manifests_are_kubernetes_objects_in_monitoring() {
    let docs = manifests();
    assert!(docs.len() >= 5, "{} documents", docs.len());
    for (file, doc) in &docs {
        for key in ["apiVersion", "kind"] {
            assert!(doc[key].as_str().is_some(), "{file}: no {key}");
        }
        assert_eq!(doc["metadata"]["namespace"], "monitoring", "{file}");
        assert_eq!(doc["metadata"]["name"], "backlogctl", "{file}");
    }
}

#[test]
fn daemonset_runs_the_exporter_with_two_capabilities_on_every_node() {
    let ds = kind(&manifests(), "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(
        pod["hostPID"], true,
        "owners and namespaces come from the host's /proc"
    );
    assert_eq!(pod["hostNetwork"], true);
    let tolerations = pod["tolerations"].as_sequence().expect("tolerations");
    assert!(
        tolerations
            .iter()
            .any(|t| t["operator"] == "Exists" && t["key"].is_null() && t["effect"].is_null()),
        "no toleration of every taint: {tolerations:?}"
    );
    let containers = pod["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(
        c["image"].as_str(),
        Some(format!("backlogctl:{}", env!("CARGO_PKG_VERSION")).as_str()),
        "image tag = crate version"
    );
    assert_eq!(
        strings(&c["args"]),
        [
            "exporter",
            "--all-netns",
            "--listen",
            &format!("0.0.0.0:{PORT}")
        ]
    );

    let sc = &c["securityContext"];
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    let added: BTreeSet<&str> = strings(&sc["capabilities"]["add"]).into_iter().collect();
    assert_eq!(
        added,
        BTreeSet::from(["SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"])
    );
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsUser"], 0, "setns needs CAP_SYS_ADMIN effective");
    assert!(
        sc["privileged"].is_null() || sc["privileged"] == false,
        "never privileged"
    );

    // Port 9848 named metrics; both probes ask /healthz on it.
    let ports = c["ports"].as_sequence().expect("ports");
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"] == PORT),
        "{ports:?}"
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], "/healthz", "{probe}");
        assert!(
            get["port"] == "metrics" || get["port"] == PORT,
            "{probe} port {:?}",
            get["port"]
        );
    }
    let limits = &c["resources"]["limits"];
    assert!(
        limits["cpu"].as_str().is_some() && limits["memory"].as_str().is_some(),
        "CPU and memory limits"
    );

    // Every mount read-only, each from the host path of the same name.
    let volumes = pod["volumes"].as_sequence().expect("volumes");
    let mounts = c["volumeMounts"].as_sequence().expect("volumeMounts");
    let mut paths = BTreeSet::new();
    for m in mounts {
        let at = m["mountPath"].as_str().unwrap();
        assert_eq!(m["readOnly"], true, "{at} mounted writable");
        let volume = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap_or_else(|| panic!("{at}: no volume {:?}", m["name"]));
        assert_eq!(volume["hostPath"]["path"].as_str(), Some(at), "{at}");
        paths.insert(at);
    }
    assert_eq!(paths, BTreeSet::from(["/run/netns", "/var/log/pods"]));
    let netns = mounts
        .iter()
        .find(|m| m["mountPath"] == "/run/netns")
        .unwrap();
    assert_eq!(
        netns["mountPropagation"], "HostToContainer",
        "namespaces named after the start must appear"
    );

    assert!(
        selects(
            &ds["spec"]["selector"]["matchLabels"],
            &ds["spec"]["template"]["metadata"]["labels"]
        ),
        "the DaemonSet's selector does not select its pods"
    );
}

#[test]
fn service_and_servicemonitor_reach_port_9848_of_the_pods() {
    let docs = manifests();
    let ds = kind(&docs, "DaemonSet");
    let pod_labels = &ds["spec"]["template"]["metadata"]["labels"];
    let svc = kind(&docs, "Service");
    assert!(
        selects(&svc["spec"]["selector"], pod_labels),
        "the Service selects no pod"
    );
    let ports = svc["spec"]["ports"].as_sequence().expect("ports");
    let port = ports
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("port metrics");
    assert_eq!(port["port"], PORT);
    assert!(port["targetPort"] == "metrics" || port["targetPort"] == PORT);
    // The operator names the job after the Service; the alerts expect job="backlogctl".
    assert_eq!(svc["metadata"]["name"], "backlogctl");

    let sm = kind(&docs, "ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert!(
        selects(
            &sm["spec"]["selector"]["matchLabels"],
            &svc["metadata"]["labels"]
        ),
        "the ServiceMonitor selects no Service"
    );
    assert!(strings(&sm["spec"]["namespaceSelector"]["matchNames"]).contains(&"monitoring"));
    let endpoints = sm["spec"]["endpoints"].as_sequence().expect("endpoints");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["port"], "metrics");
    assert_eq!(endpoints[0]["interval"], "30s");
    // A target label named pod would rename backlogctl_netns_info's own pod label.
    let dropped: Vec<&str> = endpoints[0]["relabelings"]
        .as_sequence()
        .map(|r| {
            r.iter()
                .filter(|r| r["action"] == "labeldrop")
                .filter_map(|r| r["regex"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        dropped.iter().any(|re| re.split('|').any(|l| l == "pod")),
        "the operator's pod target label must be dropped: {dropped:?}"
    );
}

#[test]
fn prometheusrule_carries_exactly_the_alert_groups() {
    let rule = kind(&manifests(), "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    let alerts: Value = serde_yaml::from_str(&read("prometheus/alerts.yml")).unwrap();
    assert!(
        alerts["groups"]
            .as_sequence()
            .is_some_and(|g| !g.is_empty())
    );
    assert_eq!(
        rule["spec"]["groups"], alerts["groups"],
        "prometheusrule.yaml differs from alerts.yml; regenerate it (command at its top)"
    );
}

// ---------------------------------------------------------------------------------------------
// Grafana dashboard

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("grafana/backlogctl.json")).expect("backlogctl.json: not JSON")
}

/// Every panel query: (panel title, refId, expr), rows' nested panels included.
fn panel_queries(dash: &serde_json::Value) -> Vec<(String, String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("").to_string();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    let ref_id = target["refId"].as_str().unwrap_or("?").to_string();
                    out.push((title.clone(), ref_id, expr.to_string()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// The names after `$` or `${` in a query: Grafana's built-ins (`__rate_interval`) and the
/// dashboard's variables.
fn variables_in(expr: &str) -> BTreeSet<String> {
    expr.split('$')
        .skip(1)
        .map(|rest| {
            let rest = rest.strip_prefix('{').unwrap_or(rest);
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            rest[..end].to_string()
        })
        .collect()
}

/// What Grafana would send: built-in intervals as 1m, dashboard variables as `.*` (they are
/// only used in =~ matchers; anywhere else `.*` is a syntax error promtool reports).
fn as_promql(expr: &str, variables: &BTreeSet<String>) -> String {
    let mut q = expr.to_string();
    for builtin in ["__rate_interval", "__interval", "__range"] {
        q = q
            .replace(&format!("${{{builtin}}}"), "1m")
            .replace(&format!("${builtin}"), "1m");
    }
    // Longest names first, so $pod does not eat the start of a $pod_x.
    let mut names: Vec<&String> = variables.iter().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        q = q
            .replace(&format!("${{{name}}}"), ".*")
            .replace(&format!("${name}"), ".*");
    }
    q
}

#[test]
fn dashboard_queries_are_promql_over_exporter_families() {
    let test = "dashboard_queries_are_promql_over_exporter_families";
    let dash = dashboard();
    assert!(dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let vars = dash["templating"]["list"]
        .as_array()
        .expect("templating.list");
    let defined: BTreeSet<String> = vars
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    assert!(
        vars.iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "no Prometheus data source variable"
    );

    let queries = panel_queries(&dash);
    assert!(queries.len() >= 8, "{} queries", queries.len());
    let mut rules = Vec::new();
    for (i, (title, ref_id, expr)) in queries.iter().enumerate() {
        for var in variables_in(expr) {
            assert!(
                // `$1`: a label_replace capture group, not a variable (Grafana leaves it).
                var.starts_with("__")
                    || defined.contains(&var)
                    || (!var.is_empty() && var.bytes().all(|b| b.is_ascii_digit())),
                "panel {title:?} {ref_id}: ${var} is not a dashboard variable"
            );
        }
        let mut rule = serde_yaml::Mapping::new();
        rule.insert("record".into(), format!("dashboard:query_{i}").into());
        rule.insert("expr".into(), as_promql(expr, &defined).into());
        rules.push(Value::Mapping(rule));
    }
    // The whole file, variable queries and descriptions included, names only known families.
    assert_known_families("backlogctl.json", &read("grafana/backlogctl.json"));
    for p in dash["panels"].as_array().unwrap() {
        if p["type"] != "row" {
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "panel {:?} ignores the data source variable",
                p["title"]
            );
        }
    }
    for want in [
        "backlogctl_listen_drops_total",
        "backlogctl_listen_queue_length",
        "backlogctl_listen_backlog",
        "backlogctl_tcp_listen_overflows_total",
    ] {
        assert!(
            queries.iter().any(|(_, _, e)| e.contains(want)),
            "no panel shows {want}"
        );
    }
    assert!(
        queries.iter().any(|(_, _, e)| e.contains("topk(")),
        "no worst-listeners table"
    );

    // promtool parses each query as a recording rule; a bad one is named by its index.
    let dir = scratch(test);
    let file = dir.join("dashboard.rules.yml");
    let mut doc: Value = serde_yaml::from_str("groups: [{name: dashboard}]").unwrap();
    doc["groups"][0]["rules"] = Value::Sequence(rules);
    let doc = serde_yaml::to_string(&doc).unwrap();
    std::fs::write(&file, doc).unwrap();
    let Some(out) = run(
        test,
        "promtool",
        &["check", "rules", file.to_str().unwrap()],
        "Debian package prometheus",
    ) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let said = said(&out);
    let _ = std::fs::remove_dir_all(&dir);
    let index: Vec<String> = queries
        .iter()
        .enumerate()
        .map(|(i, (t, r, _))| format!("query_{i}: {t} / {r}"))
        .collect();
    assert!(
        out.status.success(),
        "promtool check rules:\n{said}\n{}",
        index.join("\n")
    );
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "promtool said:\n{said}"
    );
}

// ---------------------------------------------------------------------------------------------
// systemd units

/// A unit file as (section, key, value) in file order; `\` continuations joined, comments
/// dropped. Keys may repeat, as in systemd.
struct Unit(Vec<(String, String, String)>);

impl Unit {
    fn parse(text: &str) -> Unit {
        let mut entries = Vec::new();
        let mut section = String::new();
        let mut pending = String::new();
        for raw in text.lines() {
            let line = raw.trim();
            if pending.is_empty() && (line.is_empty() || line.starts_with(['#', ';'])) {
                continue;
            }
            if let Some(cont) = line.strip_suffix('\\') {
                pending.push_str(cont);
                pending.push(' ');
                continue;
            }
            let line = format!("{pending}{line}");
            pending.clear();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value in [{section}]: {line}"));
            entries.push((
                section.clone(),
                key.trim().to_string(),
                value.trim().to_string(),
            ));
        }
        assert!(pending.is_empty(), "file ends in a continuation");
        Unit(entries)
    }

    /// The effective value: the last assignment, as systemd reads most keys.
    fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
    }

    fn words(&self, section: &str, key: &str) -> BTreeSet<String> {
        self.get(section, key)
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

fn unit(name: &str) -> Unit {
    Unit::parse(&read(&format!("systemd/{name}")))
}

fn set(words: &[&str]) -> BTreeSet<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The sandbox both services share; `name` for the messages.
fn assert_hardened(name: &str, u: &Unit) {
    let s = "Service";
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ] {
        assert_eq!(u.get(s, key), Some(want), "{name}: {key}");
    }
    let caps = set(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"]);
    assert_eq!(
        u.words(s, "CapabilityBoundingSet"),
        caps,
        "{name}: bounding set"
    );
    // Root keeps its bounding set as effective capabilities; any other user needs them ambient.
    let as_root = u.get(s, "User").is_none_or(|v| v == "root" || v == "0")
        && u.get(s, "DynamicUser").is_none_or(|v| v == "no");
    if !as_root {
        assert_eq!(
            u.words(s, "AmbientCapabilities"),
            caps,
            "{name}: ambient set"
        );
    }
    // setns(fd, CLONE_NEWNET) must stay allowed: no blanket yes, and a list must allow net.
    match u.get(s, "RestrictNamespaces") {
        None | Some("no" | "false") => {}
        Some(v) if v.starts_with('~') => {
            assert!(
                !v.split_whitespace()
                    .any(|t| t.trim_start_matches('~') == "net"),
                "{name}: RestrictNamespaces={v} forbids setns into network namespaces"
            )
        }
        Some(v) => assert!(
            v.split_whitespace().any(|t| t == "net"),
            "{name}: RestrictNamespaces={v} forbids setns into network namespaces"
        ),
    }
    // inet_diag is a netlink protocol: without AF_NETLINK no listener is ever seen.
    assert!(
        u.words(s, "RestrictAddressFamilies").contains("AF_NETLINK"),
        "{name}: RestrictAddressFamilies must allow AF_NETLINK (sock_diag)"
    );
    for (key, forbidden) in [
        ("PrivateNetwork", "yes"),
        ("PrivateUsers", "yes"),
        ("ProcSubset", "pid"),
    ] {
        assert_ne!(
            u.get(s, key),
            Some(forbidden),
            "{name}: {key}={forbidden} blinds it"
        );
    }
    let mem = u
        .get(s, "MemoryMax")
        .unwrap_or_else(|| panic!("{name}: no MemoryMax"));
    assert!(mem.ends_with('M'), "{name}: MemoryMax={mem}");
}

/// The ExecStart argv, checked to start with /usr/bin/backlogctl and parsed by the real CLI.
/// `exporter` and `metrics --all-netns` are being added on main (issue 16): until this build has
/// them, that one parse error is reported as skipped, any other fails.
fn assert_real_command(test: &str, u: &Unit, subcommand: &str) -> Vec<String> {
    let exec = u.get("Service", "ExecStart").expect("ExecStart");
    let argv: Vec<String> = exec.split_whitespace().map(str::to_string).collect();
    assert_eq!(argv[0], "/usr/bin/backlogctl", "{test}: ExecStart={exec}");
    assert_eq!(argv[1], subcommand, "{test}: ExecStart={exec}");
    if let Err(e) = Cli::try_parse_from(&argv) {
        let pending = (subcommand == "exporter"
            && e.kind() == clap::error::ErrorKind::InvalidSubcommand)
            || (subcommand == "metrics"
                && e.kind() == clap::error::ErrorKind::UnknownArgument
                && e.to_string().contains("--all-netns"));
        assert!(pending, "{test}: backlogctl rejects ExecStart={exec}:\n{e}");
        skip(
            test,
            &format!(
                "part: this build does not parse `{exec}` yet (the exporter work of issue 16 \
                 adds it): {}",
                e.kind()
            ),
        );
    }
    argv
}

#[test]
fn exporter_unit_is_hardened_and_runs_the_exporter() {
    let u = unit("backlogctl-exporter.service");
    assert_hardened("backlogctl-exporter.service", &u);
    let argv = assert_real_command(
        "exporter_unit_is_hardened_and_runs_the_exporter",
        &u,
        "exporter",
    );
    assert!(argv.contains(&"--all-netns".to_string()), "{argv:?}");
    let listen = argv
        .iter()
        .position(|a| a == "--listen")
        .map(|i| argv[i + 1].as_str())
        .expect("--listen");
    assert_eq!(listen, format!("127.0.0.1:{PORT}"), "loopback by default");
    assert_eq!(u.get("Service", "Restart"), Some("on-failure"));
    assert!(
        u.words("Service", "RestrictAddressFamilies")
            .is_superset(&set(&["AF_INET", "AF_INET6"])),
        "the HTTP listener needs AF_INET and AF_INET6"
    );
    assert_eq!(u.get("Install", "WantedBy"), Some("multi-user.target"));
}

#[test]
fn metrics_unit_and_timer_feed_the_textfile_collector() {
    let u = unit("backlogctl-metrics.service");
    assert_hardened("backlogctl-metrics.service", &u);
    assert_eq!(u.get("Service", "Type"), Some("oneshot"));
    let argv = assert_real_command(
        "metrics_unit_and_timer_feed_the_textfile_collector",
        &u,
        "metrics",
    );
    assert!(argv.contains(&"--all-netns".to_string()), "{argv:?}");
    let out = argv
        .iter()
        .position(|a| a == "-o")
        .map(|i| PathBuf::from(&argv[i + 1]))
        .expect("-o FILE");
    assert_eq!(out.extension().and_then(|e| e.to_str()), Some("prom"));
    // -o renames a temporary file in the same directory: that directory must be writable.
    let dir = out.parent().unwrap().to_str().unwrap().to_string();
    assert!(
        u.words("Service", "ReadWritePaths").contains(&dir),
        "ReadWritePaths must hold {dir}"
    );

    let t = unit("backlogctl-metrics.timer");
    assert_eq!(
        t.get("Timer", "Unit")
            .unwrap_or("backlogctl-metrics.service"),
        "backlogctl-metrics.service"
    );
    let seconds = |key: &str| -> u64 {
        let v = t.get("Timer", key).unwrap_or_else(|| panic!("no {key}"));
        v.strip_suffix('s')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{key}={v}: expected whole seconds like 30s"))
    };
    let every = seconds("OnUnitActiveSec");
    assert!((15..=30).contains(&every), "every {every}s");
    assert!(seconds("AccuracySec") <= 5, "AccuracySec too coarse");
    assert_eq!(t.get("Install", "WantedBy"), Some("timers.target"));
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let test = "units_pass_systemd_analyze_verify";
    // /usr/bin/backlogctl is not installed here: verify copies that run the binary just built,
    // so "not executable" cannot hide behind an expected complaint. Any line it prints (an
    // unknown key, a bad value) is a failure: systemd only warns about those and exits 0.
    let dir = scratch(test);
    let mut files = Vec::new();
    for name in [
        "backlogctl-exporter.service",
        "backlogctl-metrics.service",
        "backlogctl-metrics.timer",
    ] {
        let text = read(&format!("systemd/{name}"))
            .replace("/usr/bin/backlogctl", env!("CARGO_BIN_EXE_backlogctl"));
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        files.push(path.to_str().unwrap().to_string());
    }
    let mut args = vec!["verify", "--man=no"];
    args.extend(files.iter().map(String::as_str));
    let Some(out) = run(test, "systemd-analyze", &args, "Debian package systemd") else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let said = said(&out);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );
}
