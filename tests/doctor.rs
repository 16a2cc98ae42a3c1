//! `doctor` end to end: every scenario of tests/common/scenarios.rs live against the kernel
//! (in a private namespace), and replayed from its recorded snapshot under fixtures/snapshots/
//! (everywhere). Both must give exactly the expected rule ids and exit code. Also: the fix a
//! report gives makes the next run clean, and with many listeners only the troubled ones get
//! their process named.
//!
//! The live tests need root (a private network namespace each) and python3 for the
//! http.server scenario; without them they say `skipped: ...`, and fail under CI=true. The
//! replays need nothing.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use backlogctl::doctor::{Severity, diagnose};
use common::scenarios::{Running, SCENARIOS, Scenario, WINDOW};
use common::*;

fn ids_of(report_json: &serde_json::Value) -> BTreeSet<String> {
    report_json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_string())
        .collect()
}

fn expected(s: &Scenario) -> BTreeSet<String> {
    s.expect.iter().map(|x| x.to_string()).collect()
}

fn doctor(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(bin())
        .arg("doctor")
        .args(args)
        .output()
        .expect("run doctor");
    parsed(out)
}

fn parsed(out: Output) -> (i32, serde_json::Value, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

/// Runs the binary with `args` as the observer of a running scenario: its burst, if any,
/// starts once the observer has taken its first sample.
fn observe(running: &mut Running, args: &[&str]) -> Result<Output, String> {
    let child = Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run backlogctl");
    let fired = running.observed_by(child.id());
    let out = child.wait_with_output().expect("wait for backlogctl");
    match fired {
        Ok(()) => Ok(out),
        Err(e) => Err(format!(
            "{e}; backlogctl {args:?} said: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Runs `scenario` in its own namespace and `doctor --json` on it while the burst happens.
fn live(s: &'static Scenario) -> Option<Result<(), String>> {
    in_netns(s.name, move || {
        let Some(mut running) = (s.setup)() else {
            return Err(format!("{}: setup did not reach its state", s.name));
        };
        let mut args = vec!["doctor", "--json", "--window", WINDOW];
        args.extend_from_slice(s.targets);
        let (code, json, stderr) =
            parsed(observe(&mut running, &args).map_err(|e| format!("{}: {e}", s.name))?);
        let got = ids_of(&json);
        if got != expected(s) || code != s.exit {
            return Err(format!(
                "{}: got {got:?} exit {code}, want {:?} exit {} ({stderr})",
                s.name, s.expect, s.exit
            ));
        }
        Ok(())
    })
}

#[test]
fn every_scenario_live() {
    let mut failures = Vec::new();
    for s in SCENARIOS {
        if s.name.starts_with("python") && !need(s.name, "python3", "-V", "python3") {
            continue;
        }
        match live(s) {
            None => return, // not allowed to make namespaces; in_netns said why
            Some(Err(e)) => failures.push(e),
            Some(Ok(())) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn snapshots_dir() -> PathBuf {
    fixture("snapshots")
}

fn fixtures_of(s: &Scenario) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(snapshots_dir())
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.file_stem()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.split_once('-').is_some_and(|(_, rest)| rest == s.name))
    });
    v
}

/// Recorded snapshots give the same findings as the live runs, without a kernel.
#[test]
fn every_recorded_scenario_replays() {
    for s in SCENARIOS {
        let files = fixtures_of(s);
        assert!(
            !files.is_empty(),
            "no fixture recorded for scenario {}",
            s.name
        );
        for f in files {
            let snap = backlogctl::store::load(&f).expect("fixture loads");
            let report = diagnose(&snap);
            let got: BTreeSet<String> = report
                .findings
                .iter()
                .map(|x| x.id.as_str().to_string())
                .collect();
            assert_eq!(got, expected(s), "{}", f.display());
            let (code, json, stderr) = doctor(&["--json", "--from", f.to_str().unwrap()]);
            assert_eq!(code, s.exit, "{}: {stderr}", f.display());
            assert_eq!(ids_of(&json), expected(s));
        }
    }
}

/// The report tells, per tcp_abort_on_overflow, who is reset and who stalls (docs/kernel.md §3).
#[test]
fn clients_story_follows_abort_on_overflow() {
    let story = |name: &str| {
        let s = SCENARIOS.iter().find(|s| s.name == name).unwrap();
        let snap = backlogctl::store::load(&fixtures_of(s)[0]).unwrap();
        diagnose(&snap)
            .findings
            .into_iter()
            .find(|f| f.id.as_str() == "abort-on-overflow")
            .unwrap()
    };
    let calm = story("somaxconn5-backlog100-burst");
    assert_eq!(calm.severity, Severity::Ok);
    assert!(calm.summary.contains("no immediate resets") && calm.summary.contains("SYN_SENT"));
    assert!(calm.summary.contains("late \"Connection reset by peer\""));
    let abort = story("somaxconn5-backlog100-burst-abort1");
    assert_eq!(abort.severity, Severity::Warning);
    assert!(
        abort.summary.contains("answered with RST at once") && abort.summary.contains("ECONNRESET")
    );
    assert!(
        abort.summary.contains("SYN_SENT"),
        "SYN drops still stall: {}",
        abort.summary
    );
    assert!(
        abort.summary.contains("never reset"),
        "cookie handshakes are never reset"
    );
}

/// Runtime-specific advice: a real python http.server gets socketserver's knob.
#[test]
fn fix_names_the_runtime_knob() {
    let s = SCENARIOS
        .iter()
        .find(|s| s.name == "python-http-server-idle")
        .unwrap();
    let snap = backlogctl::store::load(&fixtures_of(s)[0]).unwrap();
    let f = diagnose(&snap)
        .findings
        .into_iter()
        .find(|f| f.id.as_str() == "small-app-backlog")
        .unwrap();
    assert!(f.summary.contains("default"), "{}", f.summary);
    assert!(
        f.fix.text.iter().any(|x| x.contains("request_queue_size")),
        "{:?}",
        f.fix
    );
}

/// "Done when": the fix the report gives, once applied, makes the next run come back clean.
#[test]
fn applying_the_fix_makes_the_next_run_clean() {
    in_netns("applying_the_fix_makes_the_next_run_clean", || {
        let s = SCENARIOS
            .iter()
            .find(|s| s.name == "somaxconn5-backlog100-burst")
            .unwrap();
        let mut running = (s.setup)().expect("setup");
        let (code, json, _) = parsed(
            observe(
                &mut running,
                &["doctor", "--json", "--window", WINDOW, ":8100"],
            )
            .unwrap(),
        );
        assert_eq!(code, 2);
        let fix = &json["findings"][0]["fix"];
        assert_eq!(fix["target_backlog"], 4096, "{fix}");
        assert_eq!(
            fix["steps"][0]["action"]["knob"], "net.core.somaxconn",
            "{fix}"
        );
        assert_eq!(fix["steps"][0]["action"]["value"], 4096, "{fix}");
        // The socket is held by this test process, whose main thread lives in the host's
        // namespace: it cannot be entered through it, so no command (never a host one).
        assert!(fix["steps"][0]["command"].is_null(), "{fix}");
        assert!(fix.to_string().contains("backlog of 4096"), "{fix}");
        drop(running); // the server goes away: a restart
        set_sysctl("net.core.somaxconn", 4096);
        let _server = listener("127.0.0.1:8100", 4096);
        let _clients: Vec<_> = (0..20).map(|_| start_connect("127.0.0.1:8100")).collect();
        wait_for(300, || (scenarios::queue_of(":8100")? == 20).then_some(())).expect("20 queued");
        let (code, json, _) = doctor(&["--json", "--window", "300ms", ":8100"]);
        assert_eq!(ids_of(&json), BTreeSet::new(), "{json}");
        assert_eq!(code, 0);
    });
}

/// Not run by default: re-records fixtures/snapshots/ from the scenarios on this kernel.
#[test]
#[ignore]
fn record_fixtures() {
    if std::env::var_os("RECORD_FIXTURES").is_none() {
        eprintln!("set RECORD_FIXTURES=1 to overwrite fixtures/snapshots/");
        return;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split('.');
    let kernel = format!("{}.{}", parts.next().unwrap(), parts.next().unwrap());
    std::fs::create_dir_all(snapshots_dir()).unwrap();
    for s in SCENARIOS {
        let path = snapshots_dir().join(format!("{kernel}-{}.json", s.name));
        let p = path.clone();
        in_netns(s.name, move || {
            let mut running = (s.setup)().expect("setup");
            let mut args = vec!["snapshot", "--window", WINDOW, "-o", p.to_str().unwrap()];
            args.extend_from_slice(s.targets);
            let out = observe(&mut running, &args).unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        });
        let snap = backlogctl::store::load(Path::new(&path)).unwrap();
        let got: BTreeSet<String> = diagnose(&snap)
            .findings
            .iter()
            .map(|x| x.id.as_str().to_string())
            .collect();
        assert_eq!(got, expected(s), "{} recorded something else", s.name);
    }
}

/// With many listeners, doctor names processes only for the ones with findings, and says so.
#[test]
fn many_listeners_processes_named_only_where_needed() {
    in_netns("many_listeners_processes_named_only_where_needed", || {
        // Quiet ones: listen(128) under somaxconn 4096, nothing to report. Hot one: listen(5).
        let _quiet: Vec<_> = (0..80)
            .map(|i| listener(&format!("127.0.0.1:{}", 9000 + i), 128))
            .collect();
        let _hot = listener("127.0.0.1:8100", 5);
        let _clients: Vec<_> = (0..12).map(|_| start_connect("127.0.0.1:8100")).collect();
        wait_for(300, || (scenarios::queue_of(":8100")? == 6).then_some(())).expect("queue full");
        let (code, rep, err) = doctor(&["--json", "--window", "0"]);
        assert_eq!(code, 2, "{err}");
        let me = std::process::id() as u64;
        let hot = rep["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["local"] == "127.0.0.1:8100")
            .unwrap();
        assert_eq!(
            hot["owners"][0]["pid"].as_u64(),
            Some(me),
            "the troubled listener is named"
        );
        let quiet = rep["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["local"] == "127.0.0.1:9000")
            .unwrap();
        assert_eq!(quiet["owners"].as_array().unwrap().len(), 0);
        let gaps = rep["gaps"].to_string();
        assert!(
            gaps.contains("processes named only for the 1 listener(s) with findings"),
            "{gaps}"
        );
    });
}
