//! How backlogctl fits beside ss, nstat, sysctl and Prometheus: `explain`, `completions`,
//! every command's help with an example, and `metrics` output that `promtool check metrics`
//! accepts.
//!
//! The metrics test needs root (a private network namespace) and promtool (Debian package
//! prometheus); without them it says `skipped: ...` (for promtool, only that part), and
//! fails under CI=true.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn run(args: &[&str]) -> (i32, String, String) {
    run_bin(args)
}

#[test]
fn explain_tells_meaning_value_and_source() {
    let (code, out, _) = run(&["explain", "TcpExt:ListenOverflows"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("counts segments, not clients")
            && out.contains("Now, in this network namespace: ")
    );
    assert!(out.contains("docs/kernel.md (§4"));
    let (code, out, _) = run(&["explain", "net.ipv4.tcp_max_syn_backlog"]);
    assert_eq!(code, 0);
    assert!(out.contains("only with net.ipv4.tcp_syncookies=0"), "{out}");
    let (code, out, _) = run(&["explain", "TCPBacklogDrop"]);
    assert_eq!(code, 0);
    assert!(out.contains("Not a listen queue"));
    let (code, _, err) = run(&["explain", "ListenOverflow"]);
    assert_eq!(code, 3);
    assert!(
        err.contains("did you mean ListenOverflows?") && err.lines().count() == 1,
        "{err}"
    );
    let (code, out, _) = run(&["explain"]);
    assert_eq!(code, 0);
    assert!(out.contains("somaxconn") && out.contains("Recv-Q"));
}

#[test]
fn completions_for_three_shells() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef backlogctl"),
        ("fish", "complete -c backlogctl"),
    ] {
        let (code, out, err) = run(&["completions", shell]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(marker), "{shell}");
        for sub in ["doctor", "watch", "snapshot", "lab", "explain", "metrics"] {
            assert!(out.contains(sub), "{shell} lacks {sub}");
        }
    }
    let (code, _, _) = run(&["completions", "tcsh"]);
    assert_eq!(code, 3);
}

#[test]
fn every_command_has_an_example_in_its_help() {
    for cmd in [
        "doctor",
        "watch",
        "lab",
        "snapshot",
        "explain",
        "metrics",
        "completions",
    ] {
        let (code, out, _) = run(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Examples:\n  backlogctl "), "{cmd}");
    }
}

fn promtool_check(text: &str) -> Option<(bool, String)> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[test]
fn metrics_of_an_overflowing_listener_pass_promtool() {
    in_netns("metrics_of_an_overflowing_listener_pass_promtool", || {
        set_sysctl("net.core.somaxconn", 5);
        let _server = listener("127.0.0.1:8100", 100);
        let _clients: Vec<_> = (0..12).map(|_| start_connect("127.0.0.1:8100")).collect();
        wait_for(300, || (scenarios::queue_of(":8100")? == 6).then_some(())).expect("queue full");
        let (code, text, err) = run(&["metrics"]);
        assert_eq!(code, 0, "{err}");
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix}"))
        };
        assert!(line("backlogctl_listen_queue_length{").ends_with(" 6"));
        assert!(line("backlogctl_listen_backlog{").ends_with(" 5"));
        // A listener is (netns, address, port): no process, no inode outside SO_REUSEPORT groups.
        let queue = line("backlogctl_listen_queue_length{");
        assert!(
            queue.contains("address=\"127.0.0.1\",port=\"8100\"}"),
            "{queue}"
        );
        assert!(!queue.contains("process=") && !queue.contains("inode="));
        let drops: u64 = line("backlogctl_listen_drops_total{")
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(drops > 0);
        assert!(
            line("backlogctl_tcp_listen_overflows_total")
                .rsplit(' ')
                .next()
                .unwrap()
                != "0"
        );
        assert!(text.contains("name=\"net.core.somaxconn\"} 5"));
        // The six queued wait for accept(), none after it; the oldest since its handshake.
        let waiting = |place: &str| {
            let labels = format!("address=\"127.0.0.1\",port=\"8100\",place=\"{place}\"}}");
            text.lines()
                .find(|l| l.starts_with("backlogctl_listen_waiting{") && l.contains(&labels))
                .unwrap_or_else(|| panic!("no {place} series: {text}"))
        };
        assert!(waiting("accept_queue").ends_with(" 6"), "{text}");
        assert!(waiting("after_accept").ends_with(" 0"), "{text}");
        assert!(
            text.contains("# TYPE backlogctl_listen_oldest_wait_seconds gauge"),
            "{text}"
        );
        // The main holder in one info series per listener; no family declared without samples.
        let me = format!("pid=\"{}\"", std::process::id());
        let owner = line("backlogctl_listen_owner_info{");
        assert!(
            owner.contains(&me) && owner.contains("process=\""),
            "{text}"
        );
        assert_eq!(text.matches("backlogctl_listen_owner_info{").count(), 1);
        // The namespace itself: read, and not the host's.
        assert!(
            line("backlogctl_netns_info{").contains("name=\"\""),
            "{text}"
        );
        assert!(line("backlogctl_netns_scrape_success{").ends_with(" 1"));
        assert!(
            !text.contains("# TYPE backlogctl_listen_syn_recv"),
            "SYN_RECV was not counted: {text}"
        );
        match promtool_check(&text) {
            Some((ok, said)) => assert!(ok, "promtool: {said}\n{text}"),
            None => skip(
                "metrics_of_an_overflowing_listener_pass_promtool",
                "part: promtool not installed (Debian package prometheus)",
            ),
        }
        // -o writes the same atomically.
        let dir = std::env::temp_dir().join(format!("backlogctl-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("backlog.prom");
        let (code, out, _) = run(&["metrics", ":8100", "-o", file.to_str().unwrap()]);
        assert_eq!((code, out.as_str()), (0, ""));
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(written.contains("backlogctl_listen_backlog{") && written.ends_with('\n'));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn unix_listeners_have_a_path_label_and_no_drops_series() {
    let test = "unix_listeners_have_a_path_label_and_no_drops_series";
    in_netns(test, || {
        let dir =
            std::env::temp_dir().join(format!("backlogctl-metrics-unix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A quote and a backslash: the label value must escape both.
        let path = dir.join("odd\"name\\.sock").to_str().unwrap().to_owned();
        let _path = unix_listener(&path, 3);
        let _abs = unix_listener("@backlogctl-metrics", 2);
        let _clients: Vec<_> = (0..2).map(|_| unix_connect(&path).unwrap()).collect();
        let (code, text, err) = run(&["metrics", "-x"]);
        assert_eq!(code, 0, "{err}");
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let queue: Vec<&&str> = series
            .iter()
            .filter(|l| l.starts_with("backlogctl_listen_queue_length{"))
            .collect();
        assert_eq!(queue.len(), 2, "{text}");
        assert!(
            queue
                .iter()
                .any(|l| l.contains("path=\"@backlogctl-metrics\"}") && l.ends_with(" 0")),
            "{text}"
        );
        // Text output writes a backslash in a name as `\\`; the label escape doubles each again.
        let escaped = format!(
            "path=\"{}\"}}",
            path.replace('\\', "\\\\\\\\").replace('"', "\\\"")
        );
        assert!(
            queue
                .iter()
                .any(|l| l.contains(&escaped) && l.ends_with(" 2")),
            "{escaped}\n{text}"
        );
        for l in queue {
            assert!(!l.contains("address=") && !l.contains("port="), "{l}");
        }
        assert!(!text.contains("backlogctl_listen_drops_total"), "{text}");
        match promtool_check(&text) {
            Some((ok, said)) => assert!(ok, "promtool: {said}\n{text}"),
            None => skip(
                test,
                "part: promtool not installed (Debian package prometheus)",
            ),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    });
}
