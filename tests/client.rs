//! `doctor` in a client's namespace, against a server in another joined by a veth: each
//! scenario of fixtures/recipes/client-side.sh (a server that accepts too slowly, with
//! tcp_abort_on_overflow 0 and 1 — with 1, the reset comes in connect() on one host and at the
//! first read when a token bucket holds the server's segments as a network would —; a port
//! nothing listens on; a stopped server with a full
//! queue; a 10-port ip_local_port_range; a server that keeps up; no client at all) runs for
//! real, the clients count what their code got, and the report must name the server, the
//! cause the evidence supports and numbers that agree with the clients' — with and without a
//! target. Root; python3, ip and tc (iproute2).

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const SERVER: &str = "10.200.0.1:9000";

/// The report and the clients' counts of one run of `kind`.
struct Run {
    kind: &'static str,
    target: bool,
    traced: bool,
    report: Value,
    clients: Value,
}

impl Run {
    fn findings(&self, id: &str) -> Vec<&Value> {
        self.report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] == id)
            .collect()
    }

    /// The one finding `id`, about the server.
    fn one(&self, id: &str) -> &Value {
        let all = self.findings(id);
        assert_eq!(all.len(), 1, "{self}: {id} once");
        assert_eq!(all[0]["remote"], SERVER, "{self}: {id} names the server");
        all[0]
    }

    fn evidence(&self, f: &Value, name: &str) -> Option<u64> {
        f["evidence"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == name)?["value"]
            .as_u64()
    }

    fn server(&self, field: &str) -> u64 {
        let servers = self.report["servers"].as_array().unwrap();
        let s = servers.iter().find(|s| s["addr"] == SERVER);
        s.unwrap_or_else(|| panic!("{self}: the server is listed"))[field]
            .as_u64()
            .unwrap_or(0)
    }

    fn count(&self, outcome: &str) -> u64 {
        self.clients[outcome].as_u64().unwrap_or(0)
    }

    fn ids(&self) -> Vec<String> {
        let findings = self.report["findings"].as_array().unwrap();
        findings.iter().map(|f| f["id"].to_string()).collect()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let with = if self.target {
            "with target"
        } else {
            "no target"
        };
        let traced = if self.traced { ", traced" } else { "" };
        write!(
            f,
            "{} ({with}{traced}), clients {}, findings {:?}",
            self.kind,
            self.clients,
            self.ids()
        )
    }
}

/// Runs the recipe: 4 s client timeout, the window covering the clients' whole run.
fn run(kind: &'static str, target: bool, traced: bool, dir: &Path) -> Run {
    let tag = format!("{kind}-{target}-{traced}");
    let (out, clients) = (
        dir.join(format!("{tag}.json")),
        dir.join(format!("{tag}.c.json")),
    );
    let mut cmd = Command::new("bash");
    cmd.arg(common::fixture("recipes/client-side.sh"))
        .arg(kind)
        .args([&out, &clients])
        .args(target.then_some("target"))
        .env("BACKLOGCTL", common::bin())
        .env("DOCTOR", "1")
        .env("WINDOW", "6s")
        .env("TIMEOUT", "4")
        .env("DOCTOR_ARGS", if traced { "--trace" } else { "" });
    let status = cmd
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run client-side.sh");
    assert!(status.success(), "client-side.sh {kind}: {status}");
    let read = |p: &Path| -> Value {
        let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{kind}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{kind}: {e}: {text}"))
    };
    Run {
        kind,
        target,
        traced,
        report: read(&out),
        clients: read(&clients),
    }
}

fn ready(test: &str) -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        common::skip(test, "needs root (named network namespaces and a veth)");
        return false;
    }
    common::need(test, "python3", "--version", "python3")
        && common::need(test, "ip", "-V", "iproute2")
}

/// Every scenario, three at a time (each is mostly waiting).
fn run_all(test: &str, cases: &[(&'static str, bool, bool)]) -> Vec<Run> {
    let scratch = common::Scratch::new(test);
    let mut runs = Vec::new();
    for chunk in cases.chunks(3) {
        let dir = &scratch.dir;
        let done: Vec<Run> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(k, t, tr)| s.spawn(move || run(k, *t, *tr, dir)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        runs.extend(done);
    }
    runs
}

#[test]
fn from_the_client_alone_doctor_names_the_server_the_cause_and_what_the_clients_saw_and_traced_their_errnos()
 {
    if !ready("client") {
        return;
    }
    let runs = run_all(
        "client",
        &[
            ("slow-abort0", false, false),
            ("slow-abort1", true, false),
            ("slow-abort1-far", true, false),
            ("closed-port", true, false),
            ("stopped", false, false),
            ("ports10", false, false),
            ("healthy", false, false),
            ("healthy", true, false),
            ("quiet", false, false),
            ("closed-port", false, false),
        ],
    );
    for r in &runs {
        assert!(r.findings("not-listening").is_empty(), "{r}");
        match (r.kind, r.target) {
            ("slow-abort0", _) => slow(r),
            ("slow-abort1", _) => {
                resets(r);
                // On one host the RST is back before the connect's result is read.
                assert!(r.count("reset_connect") > 0, "{r}");
            }
            ("slow-abort1-far", _) => {
                resets(r);
                // Held some milliseconds, as a network would: connect() has succeeded, and
                // only a client that reads its nonblocking connect's result after the RST
                // (measured: 1 in 113) sees it there.
                assert!(r.count("reset_read") > 0, "{r}");
                assert!(r.count("reset_read") > 4 * r.count("reset_connect"), "{r}");
            }
            ("closed-port", true) => {
                let f = r.one("connects-refused");
                assert_eq!(
                    r.evidence(f, "Tcp:AttemptFails"),
                    Some(r.count("refused")),
                    "{r}"
                );
                assert_eq!(f["severity"], "critical", "{r}");
            }
            ("closed-port", false) => {
                // Nothing names the server without a target or --trace: the words say how.
                let f = &r.findings("connects-refused")[0];
                assert_eq!(
                    r.evidence(f, "Tcp:AttemptFails"),
                    Some(r.count("refused")),
                    "{r}"
                );
                assert!(f["summary"].as_str().unwrap().contains("--trace"), "{r}");
            }
            ("stopped", _) => {
                let f = r.one("connects-unanswered");
                assert!(
                    f["summary"].as_str().unwrap().contains("answers no SYN"),
                    "{r}"
                );
                assert_eq!(r.server("syn_sent_peak"), r.count("timeout_connect"), "{r}");
            }
            ("ports10", _) => {
                r.one("local-ports-exhausted");
                assert!(r.count("addrnotavail") > 0, "{r}");
                assert_eq!(r.server("ports_held_peak"), r.count("ok"), "{r}");
            }
            ("healthy" | "quiet", _) => {
                assert_eq!(r.report["verdict"], "ok", "{r}");
                assert_eq!(r.count("ok"), r.count("clients"), "{r}");
            }
            _ => unreachable!(),
        }
    }
    // --trace, one run at a time: the events are the host's, and two client namespaces with
    // the same addresses at once could share a pair of ends.
    common::mount_tracefs();
    if !Path::new("/sys/kernel/tracing/instances").is_dir() {
        common::skip(
            "client",
            "part: no tracefs at /sys/kernel/tracing, --trace not run",
        );
        return;
    }
    for case in [("closed-port", false, true), ("ports10", false, true)] {
        for r in run_all("client-traced", &[case]) {
            assert!(r.findings("not-listening").is_empty(), "{r}");
            traced(&r);
        }
    }
}

/// A server that accepts one connection every 200 ms, abort_on_overflow 0.
fn slow(r: &Run) {
    assert!(r.count("timeout_connect") > 0 && r.count("ok") > 0, "{r}");
    let f = r.one("connects-unanswered");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("the server answers, but drops"),
        "{r}"
    );
    // The clients that timed out connecting were all waiting for a SYN-ACK at one time.
    assert!(
        r.server("syn_sent_peak") >= r.count("timeout_connect"),
        "{r}"
    );
    let cmd = f["fix"]["steps"][0]["command"].as_str();
    assert_eq!(cmd, Some("backlogctl doctor --window 10s :9000"), "{r}");
    if r.count("timeout_reply") > 0 && r.server("unacked_peak") > 0 {
        r.one("requests-unacknowledged");
    }
}

/// The same with abort_on_overflow 1: the clients are reset, the counter agrees.
fn resets(r: &Run) {
    let reset = r.count("reset_connect") + r.count("reset_read");
    assert!(reset > 0, "{r}");
    let f = r.one("resets-from-server");
    assert_eq!(r.evidence(f, "Tcp:EstabResets"), Some(reset), "{r}");
    r.one("connects-unanswered");
}

/// With `--trace`, the server is named without a target and the errnos are the clients' own.
fn traced(r: &Run) {
    match r.kind {
        "closed-port" => {
            let f = r.one("connects-refused");
            let summary = f["summary"].as_str().unwrap();
            let refused = r.count("refused");
            assert!(
                summary.contains(&format!("{SERVER} ({refused})")),
                "{r}: {summary}"
            );
        }
        "ports10" => {
            let f = r.one("local-ports-exhausted");
            let by_process = f["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == "connect_eaddrnotavail")
                .unwrap_or_else(|| panic!("{r}: traced EADDRNOTAVAIL"));
            let total: u64 = by_process["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["count"].as_u64().unwrap())
                .sum();
            assert_eq!(total, r.count("addrnotavail"), "{r}");
        }
        _ => unreachable!("{r}"),
    }
}
