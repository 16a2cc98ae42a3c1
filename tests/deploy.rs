//! The deployment files under deploy/, checked the way their consumers would read them:
//!
//! - `prometheus/alerts.yml`: `promtool check rules`, and `promtool test rules` on the unit tests
//!   in `prometheus/tests/` (pending then firing, the summary naming the pod or process, a
//!   listener without owner still alerting, silence when the drops stop); every metric name it
//!   uses is a family of the exporter's contract.
//! - `kubernetes/`: every manifest parsed; the fields that make the exporter work and keep it
//!   tight (exactly SYS_ADMIN, SYS_PTRACE and DAC_READ_SEARCH over drop ALL, read-only root and mounts, hostPID,
//!   its own pod network (no hostNetwork), every node tolerated, TCP probes, port 9848 from
//!   DaemonSet to ServiceMonitor, selectors that select), a NetworkPolicy admitting only the
//!   Prometheus pods docs/fleet.md names, on that port, and no egress; the ServiceMonitor over
//!   HTTPS with basic auth; every Secret and key a manifest names made by the commands of
//!   docs/fleet.md; the PrometheusRule's groups equal to alerts.yml's.
//! - `prometheus/scrape.yml`: `promtool check config` (with the alerts it loads), scraping the
//!   DaemonSet's pods over HTTPS with the Secret's files, as the ServiceMonitor does.
//! - `grafana/backlogctl.json`: every panel query, with Grafana's variables replaced
//!   (`$__rate_interval` by 1m, a dashboard variable by `.*`), is valid PromQL for `promtool
//!   check rules`; it uses only exporter families and variables the dashboard defines.
//! - `systemd/`: each unit parsed as INI: the hardening keys, the three capabilities, nothing that
//!   forbids setns(CLONE_NEWNET), ExecStart parsed by backlogctl's own CLI; the commented
//!   drop-in that turns on TLS and basic auth (LoadCredential=) agrees with
//!   `web-config.yml.example`, which is in exporter-toolkit's format and ships no usable hash;
//!   then `systemd-analyze verify` on copies that point at the built binary, drop-in included,
//!   where any complaint fails.
//!
//! A test whose tool is missing (promtool: Debian package prometheus; systemd-analyze:
//! systemd) says `skipped: ...` on stderr and returns; it never passes silently, and under
//! CI=true it fails instead (tests/common, `skip`).

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use backlogctl::cli::Cli;
use clap::Parser;
use common::skip;
use serde::Deserialize;
use yaml_serde::Value;

/// The metric families of the exporter's contract (issue 16, `backlogctl exporter`). Nothing
/// under deploy/ may query another `backlogctl_*` name.
const FAMILIES: &[&str] = &[
    "backlogctl_listen_queue_length",
    "backlogctl_listen_backlog",
    "backlogctl_listen_drops_total",
    "backlogctl_listen_owner_info",
    "backlogctl_listen_waiting",
    "backlogctl_listen_oldest_wait_seconds",
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
    "backlogctl_tcp_attempt_fails_total",
    "backlogctl_tcp_syn_retrans_total",
    "backlogctl_tcp_retrans_segs_total",
    "backlogctl_tcp_timeouts_total",
    "backlogctl_conntrack_drop_total",
    "backlogctl_conntrack_early_drop_total",
    "backlogctl_conntrack_insert_failed_total",
    "backlogctl_client_syn_sent",
    "backlogctl_client_syn_retried",
    "backlogctl_sysctl",
    "backlogctl_netns_info",
    "backlogctl_netns_scrape_success",
    "backlogctl_scrape_duration_seconds",
    "backlogctl_build_info",
    "backlogctl_scrapes_total",
];

/// The exporter's port, in every manifest and unit.
const PORT: u16 = 9848;

/// Where the DaemonSet's exporter reads its web config (TLS, basic auth): a Secret's mount.
const WEB_CONFIG: &str = "/etc/backlogctl/web-config.yml";

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
        said.contains("SUCCESS: 8 rules found"),
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
    let rules: yaml_serde::Value = yaml_serde::from_str(&read("prometheus/alerts.yml")).unwrap();
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
            "BacklogctlClientsWaiting",
            "BacklogctlSomaxconnCapsBacklog",
            "BacklogctlResetsSent",
            "BacklogctlConnectsRetrying",
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
        for doc in yaml_serde::Deserializer::from_str(&text) {
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
    // Its own pod IP, where a NetworkPolicy applies; the host's namespace is entered by setns.
    assert!(
        pod["hostNetwork"].is_null() || pod["hostNetwork"] == false,
        "the exporter must not be on the node's network: {:?}",
        pod["hostNetwork"]
    );
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
            &format!("0.0.0.0:{PORT}"),
            "--web.config.file",
            WEB_CONFIG,
        ]
    );
    // The real CLI takes them, the flag of the web config included.
    let mut argv = vec!["backlogctl".to_string()];
    argv.extend(strings(&c["args"]).iter().map(|a| a.to_string()));
    if let Err(e) = Cli::try_parse_from(&argv) {
        panic!("backlogctl rejects the DaemonSet's args {argv:?}:\n{e}");
    }

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

    // Port 9848 named metrics; both probes connect to it. TCP, not httpGet: the port speaks
    // TLS with basic auth, and a TCP probe works whether /healthz asks for a password or not.
    let ports = c["ports"].as_sequence().expect("ports");
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"] == PORT),
        "{ports:?}"
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert!(
            c[probe]["httpGet"].is_null(),
            "{probe}: httpGet meets basic auth"
        );
        let tcp = &c[probe]["tcpSocket"];
        assert!(
            tcp["port"] == "metrics" || tcp["port"] == PORT,
            "{probe} tcpSocket port {:?}",
            tcp["port"]
        );
    }
    let limits = &c["resources"]["limits"];
    assert!(
        limits["cpu"].as_str().is_some() && limits["memory"].as_str().is_some(),
        "CPU and memory limits"
    );

    // Every mount read-only: each host path from the host path of the same name, and the web
    // config's directory from its Secret, readable by root alone.
    let volumes = pod["volumes"].as_sequence().expect("volumes");
    let mounts = c["volumeMounts"].as_sequence().expect("volumeMounts");
    let web_dir = Path::new(WEB_CONFIG).parent().unwrap().to_str().unwrap();
    let mut paths = BTreeSet::new();
    for m in mounts {
        let at = m["mountPath"].as_str().unwrap();
        assert_eq!(m["readOnly"], true, "{at} mounted writable");
        let volume = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap_or_else(|| panic!("{at}: no volume {:?}", m["name"]));
        if at == web_dir {
            let secret = &volume["secret"];
            assert!(
                secret["secretName"].as_str().is_some(),
                "{at}: not a Secret"
            );
            assert_eq!(
                secret["defaultMode"], 0o400,
                "{at}: the key is root's alone"
            );
            assert!(secret["optional"].is_null() || secret["optional"] == false);
        } else {
            assert_eq!(volume["hostPath"]["path"].as_str(), Some(at), "{at}");
        }
        paths.insert(at);
    }
    assert_eq!(
        paths,
        BTreeSet::from(["/run/netns", "/var/log/pods", web_dir])
    );
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
    // HTTPS, the certificate checked against a CA and a name, basic auth: all from Secrets
    // (which ones, and that they are made: secrets_are_named_alike_and_made_as_documented).
    let e = &endpoints[0];
    assert_eq!(e["scheme"], "https");
    let tls = &e["tlsConfig"];
    assert!(tls["ca"]["secret"]["name"].as_str().is_some(), "{tls:?}");
    assert!(
        tls["serverName"].as_str().is_some_and(|n| !n.is_empty()),
        "the certificate serves every pod IP: it is checked by name"
    );
    assert!(
        tls["insecureSkipVerify"].is_null() || tls["insecureSkipVerify"] == false,
        "the certificate is checked"
    );
    for key in ["username", "password"] {
        let r = &e["basicAuth"][key];
        assert!(
            r["name"].as_str().is_some() && r["key"].as_str().is_some(),
            "basicAuth.{key} from a Secret: {r:?}"
        );
    }
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
fn networkpolicy_admits_only_prometheus_on_the_metrics_port_and_no_egress() {
    let docs = manifests();
    let ds = kind(&docs, "DaemonSet");
    let pod_labels = &ds["spec"]["template"]["metadata"]["labels"];
    let np = kind(&docs, "NetworkPolicy");
    assert_eq!(np["apiVersion"], "networking.k8s.io/v1");
    let spec = &np["spec"];
    assert!(
        selects(&spec["podSelector"]["matchLabels"], pod_labels),
        "the NetworkPolicy selects no exporter pod"
    );
    let types: BTreeSet<&str> = strings(&spec["policyTypes"]).into_iter().collect();
    assert_eq!(types, BTreeSet::from(["Egress", "Ingress"]));
    // Egress listed with no rule: nothing may leave (collection is local: setns, netlink).
    assert!(
        spec["egress"].is_null() || spec["egress"].as_sequence().is_some_and(|e| e.is_empty()),
        "no egress rule: {:?}",
        spec["egress"]
    );

    let rules = spec["ingress"].as_sequence().expect("ingress");
    assert_eq!(rules.len(), 1, "one ingress rule: {rules:?}");
    let from = rules[0]["from"].as_sequence().expect("ingress from");
    assert_eq!(
        from.len(),
        1,
        "one peer, both selectors in it (AND): {from:?}"
    );
    let peer = from[0].as_mapping().unwrap();
    let keys: BTreeSet<&str> = peer.keys().filter_map(Value::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["namespaceSelector", "podSelector"]));
    let ns = from[0]["namespaceSelector"]["matchLabels"]
        .as_mapping()
        .expect("ns labels");
    let pods = from[0]["podSelector"]["matchLabels"]
        .as_mapping()
        .expect("pod labels");
    assert_eq!(ns.len(), 1, "{ns:?}");
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(
        ns.get("kubernetes.io/metadata.name"),
        Some(&"monitoring".into())
    );
    assert_eq!(
        pods.get("app.kubernetes.io/name"),
        Some(&"prometheus".into())
    );
    // docs/fleet.md says which selectors these are, and what to change them to.
    let fleet =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/fleet.md"))
            .unwrap();
    for label in [
        "app.kubernetes.io/name: prometheus",
        "kubernetes.io/metadata.name: <namespace>",
    ] {
        assert!(fleet.contains(label), "docs/fleet.md does not name {label}");
    }

    let ports = rules[0]["ports"].as_sequence().expect("ingress ports");
    assert_eq!(ports.len(), 1, "{ports:?}");
    let container_port = &ds["spec"]["template"]["spec"]["containers"][0]["ports"][0];
    assert_eq!(container_port["containerPort"], PORT);
    assert!(
        ports[0]["port"] == container_port["name"] || ports[0]["port"] == PORT,
        "ingress port {:?}",
        ports[0]["port"]
    );
    assert_eq!(ports[0]["protocol"], "TCP");
}

/// `kubectl ... create secret generic NAME --from-file=... --from-literal=...` commands in a
/// text (shell lines joined at `\`, in comments too): secret name → its keys. `--from-file=K=F`
/// and `--from-literal=K=V` make key K, `--from-file=F` the key F's file name.
fn secrets_made(text: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut joined = String::new();
    for line in text.lines() {
        let line = line.trim_start_matches(['#', ' ']);
        match line.strip_suffix('\\') {
            Some(cont) => {
                joined.push_str(cont);
                joined.push(' ');
            }
            None => {
                joined.push_str(line);
                joined.push('\n');
            }
        }
    }
    let mut made = Vec::new();
    for line in joined.lines() {
        let Some(at) = line.find("create secret generic ") else {
            continue;
        };
        let mut words = line[at + "create secret generic ".len()..].split_whitespace();
        let name = words.next().expect("a secret name").to_string();
        let keys = words
            .filter_map(|w| {
                let value = w
                    .strip_prefix("--from-file=")
                    .or_else(|| w.strip_prefix("--from-literal="))?;
                Some(match value.split_once('=') {
                    Some((key, _)) => key.to_string(),
                    None => Path::new(value).file_name()?.to_str()?.to_string(),
                })
            })
            .collect();
        made.push((name, keys));
    }
    made
}

/// The value given to `--from-literal=KEY=VALUE` in a text.
fn literal(text: &str, key: &str) -> Option<String> {
    let prefix = format!("--from-literal={key}=");
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .map(str::to_string)
}

#[test]
fn secrets_are_named_alike_and_made_as_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fleet = std::fs::read_to_string(root.join("docs/fleet.md")).unwrap();
    let documented: std::collections::BTreeMap<String, BTreeSet<String>> =
        secrets_made(&fleet).into_iter().collect();
    assert_eq!(
        documented.len(),
        2,
        "docs/fleet.md makes two Secrets: {documented:?}"
    );
    // The manifests' comments repeat the commands: the same names and keys.
    for file in [
        "kubernetes/daemonset.yaml",
        "kubernetes/servicemonitor.yaml",
    ] {
        let made = secrets_made(&read(file));
        assert!(!made.is_empty(), "{file} says how to make its Secret");
        for (name, keys) in made {
            assert_eq!(documented.get(&name), Some(&keys), "{file}: secret {name}");
        }
    }
    let has = |what: &str, name: &Value, key: &str| {
        let name = name
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no secret name"));
        let keys = documented
            .get(name)
            .unwrap_or_else(|| panic!("{what}: secret {name} is made nowhere in docs/fleet.md"));
        assert!(
            keys.contains(key),
            "{what}: secret {name} has no key {key}: {keys:?}"
        );
    };

    // The exporter's: its web config, and the certificate and key the web config names
    // relative to its own directory (the mount).
    let docs = manifests();
    let ds = kind(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| !v["secret"].is_null())
        .expect("a Secret volume");
    let file = Path::new(WEB_CONFIG).file_name().unwrap().to_str().unwrap();
    has("DaemonSet", &volume["secret"]["secretName"], file);
    for key in ["tls.crt", "tls.key"] {
        has("DaemonSet", &volume["secret"]["secretName"], key);
    }
    for line in ["cert_file: tls.crt", "key_file: tls.key"] {
        assert!(
            fleet.contains(line),
            "docs/fleet.md's web config lacks {line:?}"
        );
    }

    // Prometheus's: the CA and the clear-text credentials, in the ServiceMonitor's namespace.
    let sm = kind(&docs, "ServiceMonitor");
    let e = &sm["spec"]["endpoints"][0];
    let ca = &e["tlsConfig"]["ca"]["secret"];
    has(
        "ServiceMonitor tlsConfig.ca",
        &ca["name"],
        ca["key"].as_str().unwrap(),
    );
    for key in ["username", "password"] {
        let r = &e["basicAuth"][key];
        has(
            &format!("ServiceMonitor basicAuth.{key}"),
            &r["name"],
            r["key"].as_str().unwrap(),
        );
    }
    assert_ne!(
        ca["name"], volume["secret"]["secretName"],
        "Prometheus's Secret must not be the one holding the exporter's key"
    );
    assert_eq!(sm["metadata"]["namespace"], ds["metadata"]["namespace"]);

    // The certificate is made for the name Prometheus checks, and the password hashed for the
    // user it sends.
    let server_name = e["tlsConfig"]["serverName"].as_str().unwrap();
    assert!(
        fleet.contains(&format!("subjectAltName=DNS:{server_name}")),
        "docs/fleet.md makes no certificate for {server_name}"
    );
    let user = literal(&fleet, "username").expect("--from-literal=username=");
    assert!(
        fleet.contains(&format!("htpasswd -niBC 10 {user} ")),
        "docs/fleet.md hashes no password for {user}"
    );
}

#[test]
fn plain_scrape_config_scrapes_the_pods_over_https_and_passes_promtool() {
    let test = "plain_scrape_config_scrapes_the_pods_over_https_and_passes_promtool";
    let config: Value = yaml_serde::from_str(&read("prometheus/scrape.yml")).unwrap();
    let jobs = config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(
        job["job_name"], "backlogctl",
        "the alerts expect job=\"backlogctl\""
    );
    assert_eq!(job["scheme"], "https");

    // The same name, CA and user as the ServiceMonitor, from the files of its Secret.
    let docs = manifests();
    let sm = kind(&docs, "ServiceMonitor");
    let e = &sm["spec"]["endpoints"][0];
    assert_eq!(
        job["tls_config"]["server_name"],
        e["tlsConfig"]["serverName"]
    );
    assert!(job["tls_config"]["insecure_skip_verify"].is_null());
    let ca = Path::new(job["tls_config"]["ca_file"].as_str().expect("ca_file"));
    let password = Path::new(
        job["basic_auth"]["password_file"]
            .as_str()
            .expect("password_file"),
    );
    assert_eq!(
        ca.parent(),
        password.parent(),
        "one directory: the Secret's mount"
    );
    assert_eq!(
        ca.file_name().unwrap(),
        e["tlsConfig"]["ca"]["secret"]["key"].as_str().unwrap()
    );
    assert_eq!(
        password.file_name().unwrap(),
        e["basicAuth"]["password"]["key"].as_str().unwrap()
    );
    let fleet =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/fleet.md"))
            .unwrap();
    assert_eq!(
        job["basic_auth"]["username"].as_str().map(str::to_string),
        literal(&fleet, "username")
    );

    // Discovers the DaemonSet's pods, and keeps their port named metrics.
    let ds = kind(&docs, "DaemonSet");
    let sd = job["kubernetes_sd_configs"]
        .as_sequence()
        .expect("kubernetes_sd_configs");
    assert_eq!(sd.len(), 1);
    assert_eq!(sd[0]["role"], "pod");
    assert_eq!(
        strings(&sd[0]["namespaces"]["names"]),
        [ds["metadata"]["namespace"].as_str().unwrap()]
    );
    let selector = sd[0]["selectors"][0]["label"]
        .as_str()
        .expect("a label selector");
    let (key, value) = selector.split_once('=').unwrap();
    assert_eq!(
        ds["spec"]["template"]["metadata"]["labels"][key].as_str(),
        Some(value),
        "the selector {selector} selects no exporter pod"
    );
    let relabel = job["relabel_configs"]
        .as_sequence()
        .expect("relabel_configs");
    assert!(
        relabel.iter().any(|r| r["action"] == "keep"
            && strings(&r["source_labels"]) == ["__meta_kubernetes_pod_container_port_name"]
            && r["regex"] == ds["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"]),
        "keeps only the port named metrics: {relabel:?}"
    );
    assert!(
        relabel.iter().any(|r| r["target_label"] == "node"),
        "the alerts name the node"
    );
    assert_eq!(strings(&config["rule_files"]), ["alerts.yml"]);

    // promtool, with alerts.yml next to it as rule_files expects. Debian's Prometheus is built
    // without Kubernetes discovery: there the same file is checked with a static target in
    // place of kubernetes_sd_configs (checked above), the rest unchanged.
    let dir = scratch(test);
    std::fs::copy(deploy("prometheus/alerts.yml"), dir.join("alerts.yml")).unwrap();
    let file = dir.join("scrape.yml");
    std::fs::copy(deploy("prometheus/scrape.yml"), &file).unwrap();
    let check = |file: &Path| {
        run(
            test,
            "promtool",
            &["check", "config", file.to_str().unwrap()],
            "Debian package prometheus",
        )
    };
    let Some(mut out) = check(&file) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    if !out.status.success() && said(&out).contains("field kubernetes_sd_configs not found") {
        let _ = writeln!(
            std::io::stderr(),
            "note: {test}: this promtool has no Kubernetes discovery; checking the rest with a \
             static target"
        );
        let mut stand_in = config.clone();
        let job = stand_in["scrape_configs"][0].as_mapping_mut().unwrap();
        job.remove("kubernetes_sd_configs");
        job.insert(
            "static_configs".into(),
            yaml_serde::from_str(&format!("[{{targets: ['node-a:{PORT}']}}]")).unwrap(),
        );
        std::fs::write(&file, yaml_serde::to_string(&stand_in).unwrap()).unwrap();
        out = check(&file).expect("promtool ran a moment ago");
    }
    let said = said(&out);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "promtool check config:\n{said}");
    assert!(
        said.contains("SUCCESS: 8 rules found"),
        "the alerts were not loaded:\n{said}"
    );
}

#[test]
fn prometheusrule_carries_exactly_the_alert_groups() {
    let rule = kind(&manifests(), "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    let alerts: Value = yaml_serde::from_str(&read("prometheus/alerts.yml")).unwrap();
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
        let mut rule = yaml_serde::Mapping::new();
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
        "backlogctl_listen_oldest_wait_seconds",
        "backlogctl_listen_waiting",
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
    let mut doc: Value = yaml_serde::from_str("groups: [{name: dashboard}]").unwrap();
    doc["groups"][0]["rules"] = Value::Sequence(rules);
    let doc = yaml_serde::to_string(&doc).unwrap();
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

    /// Every assignment of a key that may repeat (LoadCredential=), in order.
    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
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
fn assert_real_command(test: &str, u: &Unit, subcommand: &str) -> Vec<String> {
    let exec = u.get("Service", "ExecStart").expect("ExecStart");
    let argv: Vec<String> = exec.split_whitespace().map(str::to_string).collect();
    assert_eq!(argv[0], "/usr/bin/backlogctl", "{test}: ExecStart={exec}");
    assert_eq!(argv[1], subcommand, "{test}: ExecStart={exec}");
    if let Err(e) = Cli::try_parse_from(&argv) {
        panic!("{test}: backlogctl rejects ExecStart={exec}:\n{e}");
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

/// The drop-in the exporter unit's comment gives for TLS and basic auth: the `#   ` lines after
/// "add, uncommented:", uncommented.
fn web_config_dropin() -> String {
    let unit = read("systemd/backlogctl-exporter.service");
    let mut lines = unit
        .lines()
        .skip_while(|l| !l.ends_with("add, uncommented:"));
    assert!(
        lines.next().is_some(),
        "the unit's comment has no drop-in for the web config"
    );
    let dropin: Vec<&str> = lines.map_while(|l| l.strip_prefix("#   ")).collect();
    assert!(dropin.len() > 2, "an empty drop-in: {dropin:?}");
    dropin.join("\n") + "\n"
}

/// The keys of exporter-toolkit's web config (`web/tls_config.go`, `Config` and `TLSConfig`;
/// `web/handler.go` for the headers it allows).
const TOOLKIT_KEYS: &[&str] = &[
    "tls_server_config",
    "http_server_config",
    "basic_auth_users",
    "rate_limit",
];
const TOOLKIT_TLS_KEYS: &[&str] = &[
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "cipher_suites",
    "curve_preferences",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
];
const TOOLKIT_HEADERS: &[&str] = &[
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

#[test]
fn web_config_example_and_the_units_dropin_agree() {
    let example: Value =
        yaml_serde::from_str(&read("systemd/web-config.yml.example")).expect("example: YAML");
    let top = example.as_mapping().expect("a mapping");
    for key in top.keys() {
        let key = key.as_str().unwrap_or("?");
        assert!(
            TOOLKIT_KEYS.contains(&key),
            "not an exporter-toolkit key: {key}"
        );
    }
    let tls = example["tls_server_config"]
        .as_mapping()
        .expect("tls_server_config");
    for key in tls.keys() {
        let key = key.as_str().unwrap_or("?");
        assert!(
            TOOLKIT_TLS_KEYS.contains(&key),
            "not a tls_server_config key: {key}"
        );
    }
    for (name, value) in example["http_server_config"]["headers"]
        .as_mapping()
        .into_iter()
        .flatten()
    {
        let name = name.as_str().unwrap_or("?");
        assert!(
            TOOLKIT_HEADERS.contains(&name),
            "a header exporter-toolkit refuses: {name}"
        );
        if name == "X-Content-Type-Options" {
            assert_eq!(value, "nosniff", "the only value exporter-toolkit takes");
        }
    }
    // An example ships no password anyone could use: no bcrypt hash, a placeholder.
    let users = example["basic_auth_users"]
        .as_mapping()
        .expect("basic_auth_users");
    assert!(!users.is_empty());
    for (user, hash) in users {
        let hash = hash.as_str().unwrap_or("");
        assert!(
            !hash.starts_with("$2"),
            "the example ships a usable bcrypt hash for {user:?}"
        );
    }
    // cert_file and key_file relative: resolved against the file's directory, which under
    // systemd is the credentials directory, under Kubernetes the Secret's mount.
    let relative: Vec<&str> = ["cert_file", "key_file"]
        .iter()
        .map(|k| {
            let f = example["tls_server_config"][*k].as_str().expect(k);
            assert!(
                !f.starts_with('/'),
                "{k}: {f} is not relative to the web config"
            );
            f
        })
        .collect();

    // The drop-in loads the web config and each file it names as credentials, from
    // /etc/backlogctl, and hands the exporter the web config in the credentials directory.
    let dropin = Unit::parse(&web_config_dropin());
    let loaded: Vec<(&str, &str)> = dropin
        .all("Service", "LoadCredential")
        .into_iter()
        .map(|v| v.split_once(':').expect("LoadCredential=ID:PATH"))
        .collect();
    let ids: BTreeSet<&str> = loaded.iter().map(|(id, _)| *id).collect();
    let mut want: BTreeSet<&str> = relative.into_iter().collect();
    want.insert("web-config.yml");
    assert_eq!(ids, want, "credentials loaded");
    for (id, path) in &loaded {
        assert_eq!(*path, format!("/etc/backlogctl/{id}"), "credential {id}");
    }
    let starts = dropin.all("Service", "ExecStart");
    assert_eq!(starts.len(), 2, "ExecStart= reset, then set: {starts:?}");
    assert_eq!(
        starts[0], "",
        "a drop-in must reset ExecStart before setting it"
    );
    let argv: Vec<&str> = starts[1].split_whitespace().collect();
    let file = argv
        .iter()
        .position(|a| *a == "--web.config.file")
        .map(|i| argv[i + 1])
        .expect("--web.config.file");
    assert_eq!(file, "${CREDENTIALS_DIRECTORY}/web-config.yml");
    let main = unit("backlogctl-exporter.service");
    let main_argv: Vec<&str> = main
        .get("Service", "ExecStart")
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(argv[..3], main_argv[..3], "the same binary and command");
    if let Err(e) = Cli::try_parse_from(&argv) {
        panic!(
            "backlogctl rejects the drop-in's ExecStart={}:\n{e}",
            starts[1]
        );
    }
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
    // The commented drop-in for TLS and basic auth, where verify finds drop-ins: next to it.
    let dropins = dir.join("backlogctl-exporter.service.d");
    std::fs::create_dir(&dropins).unwrap();
    let dropin =
        web_config_dropin().replace("/usr/bin/backlogctl", env!("CARGO_BIN_EXE_backlogctl"));
    std::fs::write(dropins.join("web-config.conf"), dropin).unwrap();
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

/// The shipped example as the exporter reads it: refused for its placeholder hash, with one
/// line that says so; with a real hash put in, its keys all pass and its relative certificate
/// path is looked up next to the file (where LoadCredential= and the Secret put tls.crt).
#[test]
fn web_config_example_is_read_by_the_exporter() {
    let run = |file: &std::path::Path| {
        let out = Command::new(common::bin())
            .args(["exporter", "--listen", "127.0.0.1:0", "--web.config.file"])
            .arg(file)
            .output()
            .expect("run backlogctl");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("error: "), "{err}");
        err
    };
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/web-config.yml.example");
    let err = run(&shipped);
    assert!(err.contains("not a bcrypt hash"), "{err}");

    let dir = std::env::temp_dir().join(format!("backlogctl-webcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let text = read("systemd/web-config.yml.example").replace("REPLACE-WITH-A-BCRYPT-HASH", &hash);
    let file = dir.join("web-config.yml");
    std::fs::write(&file, text).unwrap();
    let err = run(&file);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        err.contains(&dir.join("tls.crt").display().to_string()),
        "the certificate is looked up next to the file: {err}"
    );
}
