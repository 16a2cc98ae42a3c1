//! Containers' view: `--netns`, `--pid` and `--all-netns` against two named namespaces made
//! by the test (`ip netns add`), one with somaxconn 5 and an overflowing listener, one with
//! somaxconn 300 and nothing listening. Removed again when the test ends. A missing namespace
//! or PID is a clear error. `doctor` and `metrics --all-netns` also see a full Unix listener
//! in a named namespace.
//!
//! Needs root and iproute2 (`ip netns add`): skipped with the reason without them, failed
//! under CI=true.

mod common;

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use backlogctl::source::netns::{Which, enter};
use common::*;

/// Creates the named namespaces, or says why it cannot.
fn make(names: &[String]) -> Result<Namespaces, String> {
    let mut ns = Namespaces {
        names: Vec::new(),
        children: Vec::new(),
    };
    for n in names {
        let st = Command::new("ip")
            .args(["netns", "add", n])
            .stderr(Stdio::null())
            .status();
        match st {
            Ok(s) if s.success() => ns.names.push(n.clone()),
            Ok(_) => return Err("`ip netns add` failed: needs root".into()),
            Err(e) => return Err(format!("iproute2's `ip` is not available: {e}")),
        }
    }
    Ok(ns)
}

/// Runs `f` on a thread inside namespace `name` (sockets made there stay there).
fn inside<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = name.to_string();
    std::thread::spawn(move || {
        enter(&Which::Named(name)).expect("enter");
        backlogctl::source::netns::loopback_up().expect("lo up");
        f()
    })
    .join()
    .unwrap()
}

fn run(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(bin()).args(args).output().expect("run");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ids(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn netns_pid_and_all_netns_find_the_right_namespace() {
    let tag = std::process::id();
    let (a, b) = (format!("blt-a-{tag}"), format!("blt-b-{tag}"));
    let mut ns = match make(&[a.clone(), b.clone()]) {
        Ok(ns) => ns,
        Err(why) => return skip("netns_pid_and_all_netns_find_the_right_namespace", &why),
    };
    let _sockets: Vec<OwnedFd> = inside(&a, || {
        set_sysctl("net.core.somaxconn", 5);
        let mut fds = vec![listener("127.0.0.1:8100", 100)];
        fds.extend((0..20).map(|_| start_connect("127.0.0.1:8100")));
        fds
    });
    inside(&b, || set_sysctl("net.core.somaxconn", 300));
    let sleeper = Command::new("ip")
        .args(["netns", "exec", &a, "sleep", "60"])
        .spawn()
        .expect("sleep in a");
    let pid = sleeper.id().to_string();
    ns.children.push(sleeper);
    // `ip netns exec` replaces itself with sleep; wait until the pid is in namespace a.
    let a_inode = std::fs::metadata(format!("/run/netns/{a}"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    wait_for(300, || {
        let m = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
        (std::os::unix::fs::MetadataExt::ino(&m) == a_inode).then_some(())
    })
    .expect("sleep entered namespace a");

    for how in [vec!["--netns", a.as_str()], vec!["--pid", pid.as_str()]] {
        let mut args = how.clone();
        args.extend(["doctor", "--json", "--window", "200ms", ":8100"]);
        let (code, rep, err) = run(&args);
        assert_eq!(code, 2, "{how:?}: {err}");
        assert!(
            ids(&rep).contains(&"accept-queue-overflow".to_string()),
            "{how:?}: {rep}"
        );
        assert_eq!(rep["sysctls"]["somaxconn"], 5);
        assert_eq!(rep["listeners"][0]["send_q"], 5);
        assert_eq!(rep["netns"]["inode"], a_inode);
        // The fix speaks of that namespace, not of the host's sysctl.d.
        let fix = rep["findings"][0]["fix"].to_string();
        assert!(
            fix.contains(&format!(
                "ip netns exec {a} sysctl -w net.core.somaxconn=4096"
            )),
            "{fix}"
        );
    }
    let (code, snap, err) = run(&["snapshot", "--netns", &b]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(snap["sysctls"]["somaxconn"], 300);
    assert_eq!(snap["samples"][0]["listeners"].as_array().unwrap().len(), 0);

    let (code, all, err) = run(&["doctor", "--all-netns", "--json", "--window", "200ms"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(all["verdict"], "critical");
    let find = |name: &str| {
        all["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["names"].as_array().unwrap().iter().any(|x| x == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} not found in {all}"))
    };
    let na = find(&a);
    assert_eq!(na["inode"], a_inode);
    assert_eq!(na["report"]["verdict"], "critical");
    assert_eq!(na["report"]["sysctls"]["somaxconn"], 5);
    assert!(
        na["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"].as_u64().map(|x| x.to_string()) == Some(pid.clone())),
        "{na}"
    );
    let nb = find(&b);
    assert_eq!(nb["report"]["sysctls"]["somaxconn"], 300);
    assert_eq!(nb["report"]["verdict"], "ok");
}

#[test]
fn missing_namespace_or_pid_is_a_clear_error() {
    let (code, _, err) = run(&["--netns", "no-such-ns-backlogctl", "doctor"]);
    assert_eq!(code, 3);
    assert!(
        err.starts_with("error: no network namespace named") && err.lines().count() == 1,
        "{err}"
    );
    let (code, _, err) = run(&["snapshot", "--pid", "4000000"]);
    assert_eq!(code, 3);
    assert!(
        err.starts_with("error: no process with PID 4000000") && err.lines().count() == 1,
        "{err}"
    );
    let (code, _, err) = run(&["doctor", "--netns", "/etc/hostname"]);
    assert_eq!(code, 3);
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn all_netns_covers_unix_listeners() {
    let test = "all_netns_covers_unix_listeners";
    let tag = std::process::id();
    let c = format!("blt-u-{tag}");
    let _ns = match make(std::slice::from_ref(&c)) {
        Ok(ns) => ns,
        Err(why) => return skip(test, &why),
    };
    // An abstract name: it lives in namespace c only. B = 2 holds 3.
    let name = format!("@blt-unix-{tag}");
    let held = name.clone();
    let _sockets: Vec<OwnedFd> = inside(&c, move || {
        let mut fds = vec![unix_listener(&held, 2)];
        fds.extend((0..3).map(|_| unix_connect(&held).expect("room for B+1")));
        fds
    });
    let c_inode = std::fs::metadata(format!("/run/netns/{c}"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    let (code, all, err) = run(&["doctor", "--all-netns", "--json", "-x"]);
    assert!((0..=2).contains(&code), "{err}");
    let nc = all["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["inode"] == c_inode)
        .cloned()
        .unwrap_or_else(|| panic!("{c} not found in {all}"));
    let listeners = nc["report"]["listeners"].as_array().unwrap();
    let ours = listeners
        .iter()
        .find(|l| l.to_string().contains(&name[1..]))
        .unwrap_or_else(|| panic!("{name} not in {nc}"));
    assert_eq!(
        (ours["send_q"].as_u64(), ours["recv_q"].as_u64()),
        (Some(2), Some(3)),
        "{ours}"
    );
    let out = Command::new(bin())
        .args(["metrics", "--all-netns", "-x"])
        .output()
        .expect("run metrics");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let series = format!("backlogctl_listen_queue_length{{netns=\"{c_inode}\",path=\"{name}\"}} 3");
    assert!(text.lines().any(|l| l == series), "{series}\n{text}");
    assert!(!text.contains("backlogctl_listen_drops_total"), "{text}");
}
