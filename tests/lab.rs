//! `lab`'s three contrasts (docs/kernel.md §3), small enough to finish in seconds: with
//! tcp_abort_on_overflow=1 clients are reset at once, each reset a request-socket RST; the same
//! run with 0 resets none and shows stalls instead (and draws its picture); a large enough
//! backlog serves everyone; against a Unix listener (`--unix`) non-blocking clients get EAGAIN
//! at once and no counter moves. With `--veth` (clients in a namespace of their own on a
//! veth) doctor on each side names the same burst, and the clients' own counts are their
//! kernel's. Also: bad settings are one-line errors.
//!
//! `lab` makes its own private network namespace, so these need root (or unprivileged user
//! namespaces); when unshare(2) is refused they say `skipped: ...`, and fail under CI=true.
//! The assertions are on counts, never on how many of the clients a scheduler let through.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, skip};

/// Runs `backlogctl lab --json ARGS`; None (after saying why) only when this process may not
/// create the namespace. Every other failure, bringing `lo` up included, fails the test.
fn lab(test: &str, args: &[&str]) -> Option<serde_json::Value> {
    let out = Command::new(bin())
        .arg("lab")
        .arg("--json")
        .args(args)
        .output()
        .expect("run lab");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) && unshare_refused(&stderr) {
        skip(test, stderr.trim());
        return None;
    }
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    Some(serde_json::from_slice(&out.stdout).expect("lab JSON"))
}

/// Whether lab failed because unshare(2) refused it with EPERM, i.e. missing privilege: the
/// only reason to skip (`isolate` in src/lab.rs; nix prints the errno as `EPERM: ...`).
fn unshare_refused(stderr: &str) -> bool {
    let line = stderr.trim();
    line.starts_with("error: creating a private ")
        && line.contains("unshare(")
        && line.contains("EPERM")
}

/// The messages lab printed here as root without CAP_SYS_ADMIN (`capsh --drop=cap_sys_admin`:
/// a skip) and without CAP_NET_ADMIN (`capsh --drop=cap_net_admin`: the namespace is made but
/// `lo` stays down, a failure that used to pass as a skip because it says "namespace").
#[test]
fn only_a_refused_unshare_is_a_skip() {
    assert!(unshare_refused(
        "error: creating a private network namespace: permission denied \
         (unshare(CLONE_NEWNET) failed: EPERM: Operation not permitted)\n"
    ));
    assert!(unshare_refused(
        "error: creating a private user and network namespace: permission denied \
         (unshare(CLONE_NEWUSER|CLONE_NEWNET) failed (EPERM: Operation not permitted): \
         unprivileged user namespaces are disabled here"
    ));
    assert!(!unshare_refused(
        "error: bringing up lo in the lab namespace: permission denied \
         (Operation not permitted (os error 1))\n"
    ));
    assert!(!unshare_refused(
        "error: creating a private network namespace: permission denied \
         (unshare(CLONE_NEWNET) failed: ENOMEM: Cannot allocate memory)"
    ));
}

const BURST: &[&str] = &[
    "--clients",
    "120",
    "--ramp",
    "300ms",
    "--backlog",
    "5",
    "--workers",
    "2",
    "--work",
    "50ms",
    "--ack-delay",
    "20ms",
    "--connect-timeout",
    "2s",
    "--reply-timeout",
    "1500ms",
];

fn n(r: &serde_json::Value, k: &str) -> u64 {
    r["outcomes"][k].as_u64().unwrap_or(0)
}

#[test]
fn abort_on_overflow_1_resets_clients_at_once() {
    let mut args = BURST.to_vec();
    args.extend(["--abort-on-overflow", "1"]);
    let Some(r) = lab("abort_on_overflow_1_resets_clients_at_once", &args) else {
        return;
    };
    // Counts, not a share: how many of the 120 are reset depends on how the clients' threads
    // were scheduled, but every client has one outcome, some are reset, and each reset is an
    // overflow the kernel answered with a request-socket RST.
    let total: u64 = r["outcomes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 120, "one outcome per client: {}", r["outcomes"]);
    let resets = n(&r, "reset");
    assert!(resets > 0, "clients reset, got none: {}", r["outcomes"]);
    assert_eq!(
        r["counters"]["TcpExt:EmbryonicRsts"].as_u64(),
        Some(resets),
        "each reset is a request-socket RST"
    );
    let overflows = r["counters"]["TcpExt:ListenOverflows"].as_u64().unwrap();
    assert!(
        overflows >= resets,
        "each reset follows an overflow ({overflows} overflows, {resets} resets)"
    );
    assert!(r["story"].to_string().contains("Connection reset by peer"));
    assert_eq!(r["doctor"]["verdict"], "critical");
    let story = r["doctor"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "abort-on-overflow")
        .unwrap();
    assert_eq!(story["severity"], "warning");
}

#[test]
fn abort_on_overflow_0_stalls_instead_of_resetting() {
    let mut args = BURST.to_vec();
    // The same run draws its picture (`lab --plot`): checked below.
    let picture = std::env::temp_dir().join(format!("backlogctl-lab-{}.svg", std::process::id()));
    let picture_arg = picture.to_str().unwrap().to_string();
    args.extend(["--abort-on-overflow", "0", "--plot", &picture_arg]);
    let Some(r) = lab("abort_on_overflow_0_stalls_instead_of_resetting", &args) else {
        return;
    };
    let svg = std::fs::read_to_string(&picture).expect("lab --plot wrote its picture");
    let _ = std::fs::remove_file(&picture);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(str::trim))
        .collect();
    let b1 = r["send_q"].as_u64().unwrap() + 1;
    assert!(
        texts.iter().any(|t| t.starts_with(&format!("B+1 = {b1}:"))),
        "{texts:?}"
    );
    let peak = r["peak_recv_q"].as_u64().unwrap();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with(&format!("peak {peak} at "))),
        "{texts:?}"
    );
    let served = n(&r, "served").to_string();
    assert!(texts.contains(&"What the clients saw") && texts.contains(&served.as_str()));
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("How long connect() took"))
    );
    assert!(!svg.contains("href"));
    assert_eq!(n(&r, "reset"), 0, "{}", r["outcomes"]);
    // Every outcome class is present, 0 when nobody fell in it.
    for class in [
        "served",
        "reset",
        "refused",
        "connect-timeout",
        "reply-timeout",
        "failed",
    ] {
        assert!(
            r["outcomes"][class].is_u64(),
            "{class} missing: {}",
            r["outcomes"]
        );
    }
    // The story names the classes as the counts do.
    if n(&r, "reply-timeout") > 0 {
        assert!(
            r["story"].to_string().contains("reply-timeout"),
            "{}",
            r["story"]
        );
    }
    assert!(r["counters"]["TcpExt:ListenOverflows"].as_u64().unwrap() > 0);
    let stalled = n(&r, "reply-timeout") + n(&r, "connect-timeout");
    // A connect() of 900 ms or more went through a SYN retransmission, first sent after the
    // kernel's initial RTO of 1 s (TCP_TIMEOUT_INIT): a fact of the kernel, which a slow
    // machine can only lengthen, not a deadline on this test.
    let slow = r["connect_latency"]["max_ms"].as_f64().unwrap_or(0.0) >= 900.0;
    assert!(
        stalled > 0 || slow,
        "overflow must show as stalls or SYN retries: {r}"
    );
    assert!(
        r["story"]
            .to_string()
            .contains("The accept queue reset no client")
    );
}

#[test]
fn a_large_enough_backlog_serves_everyone() {
    let args = [
        "--clients",
        "60",
        "--backlog",
        "128",
        "--somaxconn",
        "4096",
        "--workers",
        "4",
        "--work",
        "5ms",
        "--abort-on-overflow",
        "1",
    ];
    let Some(r) = lab("a_large_enough_backlog_serves_everyone", &args) else {
        return;
    };
    assert_eq!(n(&r, "served"), 60, "{}", r["outcomes"]);
    assert_eq!(r["counters"]["TcpExt:ListenOverflows"].as_u64(), Some(0));
    assert!(
        r["story"][0]
            .as_str()
            .unwrap()
            .starts_with("Every client was served")
    );
}

/// The seed's case after its backlog fix, smaller: a backlog big enough for the burst, too few
/// workers for it. Nobody is dropped, everybody waits, and both the story and doctor say so.
#[test]
fn a_large_backlog_with_few_workers_makes_clients_wait() {
    let args = [
        "--clients",
        "200",
        "--backlog",
        "4096",
        "--workers",
        "2",
        "--work",
        "30ms",
        "--reply-timeout",
        "20s",
    ];
    let Some(r) = lab("a_large_backlog_with_few_workers_makes_clients_wait", &args) else {
        return;
    };
    assert_eq!(n(&r, "served"), 200, "{}", r["outcomes"]);
    assert_eq!(r["counters"]["TcpExt:ListenOverflows"].as_u64(), Some(0));
    let story = r["story"].to_string();
    assert!(story.contains("The served clients waited"), "{story}");
    let ids = finding_ids(&r);
    assert!(
        ids.iter().any(|i| i == "accept-queue-standing"),
        "doctor names the wait: {ids:?}"
    );
}

fn finding_ids(r: &serde_json::Value) -> Vec<String> {
    r["doctor"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

/// `--unread-close` with room for everyone: no queue problem, yet every client is reset after
/// its reply, each reset is a close with unread data, and doctor names that cause.
#[test]
fn unread_close_resets_every_client_after_its_reply() {
    let args = [
        "--unread-close",
        "--clients",
        "60",
        "--backlog",
        "128",
        "--workers",
        "4",
        "--work",
        "1ms",
    ];
    let Some(r) = lab("unread_close_resets_every_client_after_its_reply", &args) else {
        return;
    };
    assert_eq!(n(&r, "reset-after-reply"), 60, "{}", r["outcomes"]);
    assert_eq!(r["counters"]["TcpExt:TCPAbortOnClose"].as_u64(), Some(60));
    assert_eq!(r["counters"]["TcpExt:ListenOverflows"].as_u64(), Some(0));
    assert!(
        r["story"]
            .to_string()
            .contains("closed with the rest unread")
    );
    let ids = finding_ids(&r);
    assert!(ids.contains(&"resets-unread-close".into()), "{ids:?}");
    assert!(!ids.contains(&"accept-queue-overflow".into()), "{ids:?}");
    assert!(!ids.contains(&"resets-unexplained".into()), "{ids:?}");
}

/// Both failures at once, as a user compares them: the backlog's overflow resets and the
/// unread close's resets, each named by its own finding.
#[test]
fn unread_close_beside_the_backlog_case() {
    let mut args = BURST.to_vec();
    args.extend(["--abort-on-overflow", "1", "--unread-close"]);
    let Some(r) = lab("unread_close_beside_the_backlog_case", &args) else {
        return;
    };
    let after_reply = n(&r, "reset-after-reply");
    assert!(after_reply > 0, "{}", r["outcomes"]);
    let closes = r["counters"]["TcpExt:TCPAbortOnClose"].as_u64().unwrap();
    assert!(
        closes >= after_reply,
        "{closes} unread closes, {after_reply} clients reset after a reply"
    );
    let ids = finding_ids(&r);
    for id in ["accept-queue-overflow", "resets-unread-close"] {
        assert!(ids.contains(&id.to_string()), "{id} missing: {ids:?}");
    }
}

#[test]
fn lab_rejects_bad_settings() {
    for args in [
        &["--ack-delay", "1s"][..],
        &["--clients", "0"],
        &["--abort-on-overflow", "2"],
        &["--work", "x"],
        &["--unread-close", "--unix"],
    ] {
        let out = Command::new(bin()).arg("lab").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        // Our own checks give one line; clap's (a value out of range) its whole message, with
        // the `error:` line first.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        if !["--abort-on-overflow", "--unread-close"].contains(&args[0]) {
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
    }
}

#[test]
fn unix_listener_refuses_with_eagain_and_counts_nothing() {
    let args = [
        "--unix",
        "--clients",
        "40",
        "--backlog",
        "2",
        "--workers",
        "1",
        "--work",
        "20ms",
        "--connect-timeout",
        "10s",
    ];
    let picture =
        std::env::temp_dir().join(format!("backlogctl-lab-unix-{}.svg", std::process::id()));
    let mut args = args.to_vec();
    args.extend(["--plot", picture.to_str().unwrap()]);
    let Some(r) = lab(
        "unix_listener_refuses_with_eagain_and_counts_nothing",
        &args,
    ) else {
        return;
    };
    // The picture: an eagain bar, no SYN-retransmit marks, drops said not counted.
    let svg = std::fs::read_to_string(&picture).expect("lab --plot wrote its picture");
    std::fs::remove_file(&picture).unwrap();
    assert!(svg.contains("eagain"), "no eagain bar");
    assert!(
        !svg.contains("SYN dropped, resent"),
        "SYN retransmits drawn for Unix"
    );
    assert!(svg.contains("drops are not counted for Unix listeners"));
    assert_eq!(r["settings"]["family"], "unix");
    let total: u64 = r["outcomes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 40, "one outcome per client: {}", r["outcomes"]);
    // B = 2 holds 3: most of 30 non-blocking clients fired together find it full.
    assert!(n(&r, "eagain") > 0, "{}", r["outcomes"]);
    assert!(n(&r, "served") > 0, "{}", r["outcomes"]);
    assert_eq!(n(&r, "reset") + n(&r, "refused"), 0, "{}", r["outcomes"]);
    assert_eq!(
        (r["send_q"].as_u64(), r["peak_recv_q"].as_u64()),
        (Some(2), Some(3))
    );
    assert!(r["peak_syn_recv"].is_null());
    for (k, v) in r["counters"].as_object().unwrap() {
        assert_eq!(v.as_u64(), Some(0), "{k} moved for a Unix listener");
    }
    let story = r["story"].to_string();
    assert!(
        story.contains("EAGAIN") && story.contains("No counter moved"),
        "{story}"
    );
}

/// `lab ARGS --veth` within `limit`: its exit code and output; None (after saying why) when
/// this process may not create the namespaces. A run past `limit` is killed and fails the
/// test. The clients' namespace and the veth pair belong to the lab process alone (nothing
/// on the host holds them), so they go with it, however it ends.
fn veth_lab(test: &str, args: &[&str], limit: Duration) -> Option<String> {
    let mut child = Command::new(bin())
        .arg("lab")
        .arg("--veth")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lab --veth");
    // Read while it runs: a report larger than a pipe's buffer would otherwise block it.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for lab") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{test}: lab --veth ran past {limit:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    if status.code() == Some(3) && unshare_refused(&stderr) {
        skip(test, stderr.trim());
        return None;
    }
    assert_eq!(status.code(), Some(0), "{stderr}");
    // Nothing of it is left on the host, where this test runs.
    for end in ["lab-server", "lab-clients"] {
        assert!(
            !std::path::Path::new("/sys/class/net").join(end).exists(),
            "{end} left on the host"
        );
    }
    Some(stdout)
}

/// The burst of `BURST`, with a connect timeout between the SYN retransmissions at 2 s and
/// 3 s (linear at first, docs/kernel.md §4): a client gives up with no retransmission due,
/// so what its socket counted is all its kernel counts.
fn veth_burst(abort: &'static str) -> Vec<&'static str> {
    let mut args = BURST.to_vec();
    let at = args.iter().position(|a| *a == "--connect-timeout").unwrap();
    args[at + 1] = "2500ms";
    args.extend(["--abort-on-overflow", abort]);
    args
}

fn ids_of(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "ok")
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn evidence(report: &serde_json::Value, id: &str, name: &str) -> Option<u64> {
    report["findings"]
        .as_array()?
        .iter()
        .find(|f| f["id"] == id)?["evidence"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_u64()
}

/// `--veth` with tcp_abort_on_overflow=1: both doctors name the burst, and the clients'
/// counts of themselves are their kernel's counts exactly — one ActiveOpens per connect(),
/// one TCPSynRetrans per SYN a client's socket resent, one EstabResets per client reset once
/// connected — and doctor's client-side evidence carries those counts.
#[test]
fn veth_both_sides_name_the_same_burst_and_the_counts_agree() {
    let test = "veth_both_sides_name_the_same_burst_and_the_counts_agree";
    let args = [veth_burst("1"), vec!["--json"]].concat();
    let Some(out) = veth_lab(test, &args, Duration::from_secs(90)) else {
        return;
    };
    let r: serde_json::Value = serde_json::from_str(&out).expect("lab JSON");
    let c = &r["client_side"];
    let server = c["server"].as_str().unwrap();
    assert!(server.starts_with("10.200.0.1:"), "{server}");
    assert_eq!(r["settings"]["veth"], true);
    // Both sides name the burst.
    let server_ids = ids_of(&r["doctor"]);
    assert!(
        server_ids.contains(&"accept-queue-overflow".into()),
        "{server_ids:?}"
    );
    let client_ids = ids_of(&c["doctor"]);
    assert!(
        client_ids.contains(&"connects-unanswered".into())
            || client_ids.contains(&"requests-unacknowledged".into()),
        "{client_ids:?}"
    );
    assert_eq!(c["agreement"]["agree"], true, "{}", c["agreement"]);
    // The clients' own counts are their kernel's.
    let rec = &c["recorded"];
    let counter = |k: &str| c["counters"][k].as_u64();
    assert_eq!(rec["connects"].as_u64(), Some(120));
    assert_eq!(rec["unread"].as_u64(), Some(0));
    assert_eq!(counter("Tcp:ActiveOpens"), Some(120));
    assert_eq!(
        counter("TcpExt:TCPSynRetrans"),
        rec["syns_resent"].as_u64(),
        "{c}"
    );
    let resets = n(&r, "reset") + n(&r, "reset-after-reply");
    assert!(resets > 0, "clients reset, got none: {}", r["outcomes"]);
    assert_eq!(rec["resets"].as_u64(), Some(resets));
    assert_eq!(counter("Tcp:EstabResets"), Some(resets), "{c}");
    assert!(
        client_ids.contains(&"resets-from-server".into()),
        "{client_ids:?}"
    );
    assert_eq!(
        evidence(&c["doctor"], "resets-from-server", "Tcp:EstabResets"),
        Some(resets)
    );
    // Every reset the clients got, the server sent.
    assert!(r["counters"]["Tcp:OutRsts"].as_u64().unwrap() >= resets);
    // The clients that gave up connecting were, all at once, connects waiting with their SYN
    // sent again: they started within the 300 ms ramp, resent at 1 s and gave up at 2.5 s, and
    // the clients' namespace read its connections about every 100 ms in between.
    let timeouts = n(&r, "connect-timeout");
    let seen = &c["seen"];
    assert!(
        seen["syn_sent_peak"].as_u64().unwrap() >= timeouts,
        "{seen} {timeouts}"
    );
    assert!(
        seen["syn_retried_peak"].as_u64().unwrap() >= timeouts,
        "{seen} {timeouts}"
    );
    if client_ids.contains(&"connects-unanswered".into()) {
        assert_eq!(
            evidence(&c["doctor"], "connects-unanswered", "syn_sent"),
            seen["syn_sent_peak"].as_u64()
        );
    }
    let story = r["story"].to_string();
    assert!(story.contains("their kernel counted the same"), "{story}");
    assert!(
        story.contains("doctor run in each namespace names the same burst"),
        "{story}"
    );
}

/// `--veth` with tcp_abort_on_overflow=0, as a person reads it: the text report has the
/// clients' namespace and both doctors, and the picture its lane.
#[test]
fn veth_text_and_picture_show_the_clients_side() {
    let test = "veth_text_and_picture_show_the_clients_side";
    let picture =
        std::env::temp_dir().join(format!("backlogctl-lab-veth-{}.svg", std::process::id()));
    let args = [veth_burst("0"), vec!["--plot", picture.to_str().unwrap()]].concat();
    let Some(text) = veth_lab(test, &args, Duration::from_secs(90)) else {
        return;
    };
    let svg = std::fs::read_to_string(&picture).expect("lab --plot wrote its picture");
    std::fs::remove_file(&picture).unwrap();
    for line in [
        "Kernel (the server's namespace):",
        "Clients' namespace (10.200.0.2 -> 10.200.0.1:",
        "Tcp:ActiveOpens +120",
        "doctor in the server's namespace: CRITICAL: accept-queue-overflow",
        "doctor in the clients' namespace: CRITICAL:",
        "the two agree on the burst",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(str::trim))
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("The clients' namespace: its connections to 10.200.0.1:")),
        "{texts:?}"
    );
    assert!(
        texts.contains(&"SYN_SENT: connects waiting for a SYN-ACK"),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("doctor there: CRITICAL")),
        "{texts:?}"
    );
}

/// `--veth` with room for the burst: neither doctor names anything, so they agree, and no
/// client resent a SYN — as their kernel counted.
#[test]
fn veth_quiet_clients_stay_ok_on_both_sides() {
    let test = "veth_quiet_clients_stay_ok_on_both_sides";
    let args = [
        "--json",
        "--clients",
        "60",
        "--backlog",
        "128",
        "--workers",
        "4",
        "--work",
        "5ms",
    ];
    let Some(out) = veth_lab(test, &args, Duration::from_secs(60)) else {
        return;
    };
    let r: serde_json::Value = serde_json::from_str(&out).expect("lab JSON");
    assert_eq!(n(&r, "served"), 60, "{}", r["outcomes"]);
    let c = &r["client_side"];
    assert_eq!(c["doctor"]["verdict"], "ok", "{}", c["doctor"]);
    assert_eq!(c["agreement"]["agree"], true);
    assert_eq!(c["agreement"]["clients"], serde_json::json!([]));
    assert_eq!(c["recorded"]["syns_resent"].as_u64(), Some(0));
    assert_eq!(c["counters"]["TcpExt:TCPSynRetrans"].as_u64(), Some(0));
    assert_eq!(c["counters"]["Tcp:ActiveOpens"].as_u64(), Some(60));
}
