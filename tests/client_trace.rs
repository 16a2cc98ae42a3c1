//! `doctor --trace` from the connecting side, against the counts the clients themselves saw.
//! Two namespaces made by the test (`ip netns add`) joined by a veth: in the server's, a server
//! that accepts too slowly (listen(8), one accept every 200 ms,
//! `fixtures/recipes/slow_acceptor.py`), one that accepts at once, and a port nothing listens
//! on; in the client's, `ip_local_port_range` 40000-40009 and a Python client that counts
//! every outcome. `backlogctl --netns CLIENT doctor --trace --window 3s --json` runs meanwhile,
//! and its `client_traced` must say exactly what the client saw: ECONNREFUSED per refused
//! connect to the closed port, every completed connect per server, EADDRNOTAVAIL per connect
//! that found no local port (the client closing first holds its ports in TIME_WAIT), for the
//! client's own process; and no instance is left behind.
//!
//! Needs root, iproute2 (`ip`), python3 and tracefs with the events (mounted here when it is
//! not): skipped with the reason without them, failed under CI=true.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn ip(args: &[&str]) -> Result<(), String> {
    let st = Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("iproute2's `ip` is not available: {e}"))?;
    st.success()
        .then_some(())
        .ok_or_else(|| format!("`ip {}` failed (needs root)", args.join(" ")))
}

/// Server and client namespaces on a veth, `NET.1` and `NET.2`.
fn pair(tag: u32, net: &str) -> Result<Namespaces, String> {
    let (srv, cli) = (format!("bct-s{tag}"), format!("bct-c{tag}"));
    let mut p = Namespaces {
        names: Vec::new(),
        children: Vec::new(),
    };
    for n in [&srv, &cli] {
        ip(&["netns", "add", n])?;
        p.names.push(n.clone());
    }
    let (a, b) = (format!("bct{tag}a"), format!("bct{tag}b"));
    ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
    ip(&["link", "set", &a, "netns", &srv])?;
    ip(&["link", "set", &b, "netns", &cli])?;
    for (ns, dev, host) in [(&srv, &a, 1), (&cli, &b, 2)] {
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{net}.{host}/24"),
            "dev",
            dev,
        ])?;
        ip(&["-n", ns, "link", "set", dev, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
    }
    Ok(p)
}

/// Whether tracefs has the connecting side's events here; else says why.
fn traceable(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        skip(test, "needs root (namespaces, tracefs)");
        return false;
    }
    common::mount_tracefs();
    for event in [
        "sock/inet_sk_error_report",
        "sock/inet_sock_set_state",
        "syscalls/sys_exit_connect",
    ] {
        let f = format!("/sys/kernel/tracing/events/{event}/format");
        if !std::path::Path::new(&f).exists() {
            skip(test, &format!("no {event} tracepoint readable (tracefs)"));
            return false;
        }
    }
    true
}

/// The client: 20 connects to the closed port, 10 at once to the slow server, then 30 in a
/// row to the quick one, each closed by the client at once. Prints its pid and outcomes as
/// JSON, then waits for its stdin to close (alive until backlogctl is done).
const CLIENT: &str = r#"
import errno, json, os, socket, sys, threading, time
host = sys.argv[1]
seen, slow, lock = {}, [0], threading.Lock()
def connect(port):
    s = socket.socket()
    s.settimeout(2.0)
    t = time.monotonic()
    try:
        s.connect((host, port))
        what = "ok"
    except socket.timeout:
        what = "timeout"
    except OSError as e:
        what = errno.errorcode.get(e.errno, str(e.errno))
    took = time.monotonic() - t
    s.close()
    with lock:
        key = f"{port} {what}"
        seen[key] = seen.get(key, 0) + 1
        if what == "ok" and took >= 0.9:
            slow[0] += 1
for _ in range(20):
    connect(9001)
threads = [threading.Thread(target=connect, args=(9000,)) for _ in range(10)]
for t in threads: t.start()
for t in threads: t.join()
for _ in range(30):
    connect(9002)
print(json.dumps({"pid": os.getpid(), "seen": seen, "slow": slow[0]}), flush=True)
sys.stdin.read()
"#;

fn listening(pid: u32, port: u16) -> bool {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    let local = format!(":{port:04X} ");
    text.lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(3) == Some("0A") && l.contains(&local))
}

fn server(ns: &str, args: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "python3"])
        .arg(fixture("recipes/slow_acceptor.py"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server")
}

/// Waits for `child` at most `secs`, killing it after.
fn wait_bounded(child: &mut Child, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if child.try_wait().ok().flatten().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    false
}

#[test]
fn trace_counts_the_clients_errnos_per_server_exactly() {
    const T: &str = "trace_counts_the_clients_errnos_per_server_exactly";
    if !traceable(T) || !need(T, "python3", "-V", "python3") || !need(T, "ip", "-V", "iproute2") {
        return;
    }
    let tag = std::process::id() % 100_000;
    let net = format!("10.239.{}", tag % 250);
    let mut p = match pair(tag, &net) {
        Ok(p) => p,
        Err(why) => return skip(T, &why),
    };
    let (srv, cli) = (p.names[0].clone(), p.names[1].clone());
    let range = "echo '40000 40009' > /proc/sys/net/ipv4/ip_local_port_range";
    let set = Command::new("ip")
        .args(["netns", "exec", &cli, "sh", "-c", range])
        .status()
        .unwrap();
    assert!(set.success(), "setting ip_local_port_range");
    let addr = format!("{net}.1");
    p.children
        .push(server(&srv, &[&addr, "9000", "8", "0.2", "answer"]));
    p.children.push(server(&srv, &[&addr, "9002", "128", "0"]));
    let pids: Vec<u32> = p.children.iter().map(Child::id).collect();
    wait_for(500, || {
        (listening(pids[0], 9000) && listening(pids[1], 9002)).then_some(())
    })
    .expect("servers listening");

    let mut doctor = Command::new(bin())
        .args([
            "--netns", &cli, "doctor", "--trace", "--window", "3s", "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let doctor_pid = doctor.id();
    wait_until_asleep(doctor_pid).expect("doctor's first sample");
    let mut client = Command::new("ip")
        .args(["netns", "exec", &cli, "python3", "-c", CLIENT, &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(client.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let seen: serde_json::Value = serde_json::from_str(&line).expect("client's outcomes");
    assert!(wait_bounded(&mut doctor, 30), "doctor ended within 30 s");
    let out = doctor.wait_with_output().unwrap();
    // Its stdin closed, the client exits.
    drop(client.stdin.take());
    wait_bounded(&mut client, 5);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    check(&report, &seen, &addr);

    // The instances are gone with their process.
    let left: Vec<_> = std::fs::read_dir("/sys/kernel/tracing/instances")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(&format!("backlogctl-{doctor_pid}")))
        .collect();
    assert!(left.is_empty(), "instances left: {left:?}");
}

/// The traced counts against what the client counted.
fn check(report: &serde_json::Value, seen: &serde_json::Value, addr: &str) {
    let gaps = report["gaps"].to_string();
    assert!(!gaps.contains("client-trace"), "{gaps}");
    let traced = &report["client_traced"];
    assert!(traced.is_object(), "no client_traced: {report}");
    let count = |key: &str| seen["seen"][key].as_u64().unwrap_or(0);
    let remote = |port: u16| {
        let want = format!("{addr}:{port}");
        traced["remotes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["addr"] == want.as_str())
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    };
    // Nothing listens on 9001: every connect refused, each one traced with its errno.
    assert_eq!(count("9001 ECONNREFUSED"), 20, "{seen}");
    let closed = remote(9001);
    let errors: BTreeMap<String, u64> =
        serde_json::from_value(closed["errors"].clone()).unwrap_or_default();
    assert_eq!(
        errors,
        BTreeMap::from([("111".to_string(), 20)]),
        "{closed}"
    );
    assert_eq!(closed["connected"], 0, "{closed}");
    for port in [9000, 9002] {
        let r = remote(port);
        assert_eq!(
            r["connected"].as_u64().unwrap_or(0),
            count(&format!("{port} ok")),
            "{port}: {r} vs {seen}"
        );
        // The client saw no error from the kernel on these servers.
        let kernel_errors: u64 = ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT"]
            .iter()
            .map(|e| count(&format!("{port} {e}")))
            .sum();
        let traced_errors: u64 = r["errors"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
        assert_eq!(traced_errors, kernel_errors, "{port}: {r} vs {seen}");
    }
    // A connect the slow server answered only after a second had its SYN sent again.
    if seen["slow"].as_u64().unwrap_or(0) > 0 {
        assert!(remote(9000)["syn_retransmits"].as_u64().unwrap_or(0) >= 1);
    }
    // 10 local ports: the client closing first holds them in TIME_WAIT, and the rest of the
    // 30 connects find none — each traced for the client's own process.
    let no_port = count("9002 EADDRNOTAVAIL") + count("9000 EADDRNOTAVAIL");
    assert!(no_port >= 10, "{seen}");
    let by: Vec<(u64, i64, u64)> = traced["connect_errors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["pid"].as_u64().unwrap(),
                c["errno"].as_i64().unwrap(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by,
        [(seen["pid"].as_u64().unwrap(), 99, no_port)],
        "{traced}"
    );
    assert_eq!(traced["lost"], 0);
}

/// The finding about a full Unix listener's clients: its refused connects, which no counter
/// counts, exactly per process when traced; unknown (null) when not.
#[test]
fn a_traced_unix_refusal_is_counted_per_connecting_process() {
    use backlogctl::model::{ClientTraced, ConnectErrors};
    let path = fixture("snapshots/6.18-php-fpm-unix-backlog8-burst.json");
    let mut snap = backlogctl::store::load(&path).expect("fixture");
    let refused = |r: &backlogctl::doctor::Report| {
        let f = r
            .findings
            .iter()
            .find(|f| f.id == backlogctl::doctor::RuleId::UnixClients)
            .expect("unix-clients")
            .clone();
        let e = f.evidence.iter().find(|e| e.name == "refused connects");
        (e.expect("refused connects").value.clone(), f.summary)
    };
    let (value, _) = refused(&backlogctl::doctor::diagnose(&snap));
    assert!(value.is_null(), "not traced: {value}");
    let errs = |pid, errno, count| ConnectErrors {
        pid,
        comm: "proxy".into(),
        errno,
        count,
    };
    snap.client_traced = Some(ClientTraced {
        connect_errors: vec![errs(12, 11, 40), errs(13, 11, 2), errs(12, 99, 7)],
        ..ClientTraced::default()
    });
    let (value, summary) = refused(&backlogctl::doctor::diagnose(&snap));
    assert_eq!(value["total"], 42, "EADDRNOTAVAIL is no refusal: {value}");
    assert_eq!(value["by_process"][0]["pid"], 12);
    assert_eq!(value["by_process"][0]["count"], 40);
    assert_eq!(value["by_process"].as_array().unwrap().len(), 2);
    assert!(summary.contains("42 connect()"), "{summary}");
    assert!(summary.contains("proxy (pid 12) 40"), "{summary}");
    // The overflow finding on the listener carries the same count.
    let report = backlogctl::doctor::diagnose(&snap);
    let overflow = report
        .findings
        .iter()
        .find(|f| f.id == backlogctl::doctor::RuleId::AcceptQueueOverflow)
        .expect("accept-queue-overflow");
    let e = overflow
        .evidence
        .iter()
        .find(|e| e.name == "refused connects");
    assert_eq!(e.expect("refused connects").value["total"], 42);
}
