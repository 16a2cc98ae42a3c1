//! The binary as a user runs it: exit codes, the single `error:` line, `| head`, and
//! `snapshot` against a real listener (in a private network namespace).
//!
//! The tests with a listener need root (skipped with the reason without it, failed under
//! CI=true); the rest need nothing.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn run(args: &[&str]) -> (i32, String, String) {
    run_bin(args)
}

/// One line, starting with `error: `, no panic or backtrace.
fn assert_one_error_line(stderr: &str, contains: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got {stderr:?}");
    assert!(lines[0].starts_with("error: "), "{stderr:?}");
    assert!(lines[0].contains(contains), "{stderr:?} lacks {contains:?}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"));
}

#[test]
fn malformed_targets_exit_3_with_one_line() {
    for bad in ["foo_bar:80", ":0", "::1:80", "abc", "[::1]", ":99999"] {
        let (code, stdout, stderr) = run(&["snapshot", bad]);
        assert_eq!(code, 3, "{bad}: {stderr}");
        assert!(stdout.is_empty());
        assert_one_error_line(&stderr, "malformed target");
    }
}

#[test]
fn a_host_name_that_does_not_resolve_exits_3_with_one_line() {
    let (code, stdout, stderr) = run(&["doctor", "no-such-host.invalid:80"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.is_empty());
    assert_one_error_line(&stderr, "cannot resolve the host name");
}

#[test]
fn bad_options_exit_3_with_one_line() {
    let (code, _, stderr) = run(&["snapshot", "--window", "soon"]);
    assert_eq!(code, 3);
    assert_one_error_line(&stderr, "--window");
}

/// Usage errors keep clap's whole message, `error:` line first: the missing argument's name,
/// "a similar argument exists", the usage line. Still exit 3 (clap's 2 reads as critical).
#[test]
fn usage_errors_keep_claps_detail_and_exit_3() {
    let first = |stderr: &str| stderr.lines().next().unwrap_or_default().to_string();
    for (args, want) in [
        (&["snapshot", "--no-such-flag"][..], "--no-such-flag"),
        (&["no-such-command"][..], "no-such-command"),
        (&["completions"][..], "<SHELL>"),
        (&["doctor", "--jsn"][..], "--json"),
        (&["completions", "elvish"][..], "bash"),
    ] {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, 3, "{args:?}: {stderr}");
        assert!(stdout.is_empty());
        assert!(first(&stderr).starts_with("error: "), "{stderr:?}");
        assert!(stderr.contains(want), "{args:?}: {stderr:?} lacks {want:?}");
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn help_and_version_exit_0_and_document_exit_codes() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Exit codes:") && stdout.contains("snapshot"));
    let (code, stdout, _) = run(&["snapshot", "--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("[::1]:8100") && stdout.contains("--window"));
    // Only doctor can end with 1 or 2; the other commands do not claim it.
    assert!(!stdout.contains("critical finding"), "{stdout}");
    let (_, stdout, _) = run(&["doctor", "--help"]);
    assert!(stdout.contains("2  doctor: a critical finding"), "{stdout}");
    let (code, stdout, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("backlogctl "));
}

#[test]
fn unwritable_output_fails_before_sampling() {
    let (code, stdout, stderr) = run(&[
        "snapshot",
        "-o",
        "/nonexistent-dir/x.json",
        "--window",
        "5s",
    ]);
    assert_eq!(code, 3);
    assert!(stdout.is_empty());
    assert_one_error_line(&stderr, "/nonexistent-dir/x.json");
    let dir = std::env::temp_dir();
    let (code, _, stderr) = run(&["snapshot", "-o", dir.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert_one_error_line(&stderr, "directory");
}

#[test]
fn closed_stdout_is_not_an_error() {
    let mut child = Command::new(bin())
        .args(["snapshot"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take()); // like `| head -0`: the reader is gone before we write
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn snapshot_of_a_real_listener_prints_its_queues() {
    in_netns("snapshot_of_a_real_listener_prints_its_queues", || {
        set_sysctl("net.core.somaxconn", 3);
        let _server = listener("127.0.0.1:8100", 64);
        let _clients: Vec<_> = (0..4).map(|_| start_connect("127.0.0.1:8100")).collect();
        // The child process inherits this thread's network namespace.
        let snap = wait_for(300, || {
            let (code, stdout, stderr) = run(&["snapshot", ":8100", "--compact"]);
            assert_eq!(code, 0, "{stderr}");
            let s = backlogctl::store::parse(&stdout).expect("valid snapshot");
            (s.samples[0].listeners.first()?.recv_q == 4).then_some(s)
        })
        .expect("Recv-Q never reached 4");
        let l = &snap.samples[0].listeners[0];
        assert_eq!((l.send_q, l.recv_q), (3, 4));
        assert_eq!(
            snap.targets,
            vec![backlogctl::model::Target::parse(":8100").unwrap()]
        );

        // -o writes the same thing atomically, and nothing else is left behind.
        let dir = std::env::temp_dir().join(format!("backlogctl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("snap.json");
        let (code, stdout, stderr) = run(&["snapshot", ":8100", "-o", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.is_empty());
        let s = backlogctl::store::load(&file).expect("load");
        assert_eq!(s.samples[0].listeners[0].send_q, 3);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();

        // --no-processes skips /proc/*/fd and says so.
        let (code, stdout, _) = run(&["snapshot", ":8100", "--no-processes"]);
        assert_eq!(code, 0);
        let s = backlogctl::store::parse(&stdout).unwrap();
        assert!(s.owners.is_empty());
        assert!(
            s.gaps
                .iter()
                .any(|g| g.what == "process-owners" && g.reason.contains("--no-processes"))
        );
        let (code, stdout, _) = run(&["snapshot", ":8100"]);
        assert_eq!(code, 0);
        assert_eq!(
            backlogctl::store::parse(&stdout).unwrap().owners.len(),
            1,
            "named by default"
        );

        // A target nothing listens on is reported, not an error.
        let (code, _, stderr) = run(&["snapshot", ":9999"]);
        assert_eq!(code, 0);
        assert!(stderr.contains("nothing listens on :9999"), "{stderr}");
    });
}

/// Colour only where asked for: `--color always|never`, and in `auto` never for a pipe,
/// NO_COLOR or TERM=dumb. Notes that cannot change the verdict only with --verbose.
#[test]
fn colour_and_notes_follow_the_flags() {
    let f = fixture("snapshots/6.18-nginx-reloaded-backlog4096-old-drops.json");
    let f = f.to_str().unwrap();
    let out = |args: &[&str], env: &[(&str, &str)]| {
        let o = Command::new(bin())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let esc = "\x1b[";
    assert!(out(&["--color", "always", "doctor", "--from", f], &[]).contains(esc));
    assert!(!out(&["--color", "never", "doctor", "--from", f], &[]).contains(esc));
    assert!(!out(&["doctor", "--from", f], &[("TERM", "dumb")]).contains(esc));
    let plain = out(&["doctor", "--from", f], &[]);
    assert!(!plain.contains(esc), "a pipe gets no colour");
    assert!(!plain.contains("SYN_RECV not counted"), "{plain}");
    let verbose = out(&["doctor", "--verbose", "--from", f], &[]);
    assert!(verbose.contains("SYN_RECV not counted"), "{verbose}");
}

/// `watch` on a port nothing listens on says so (on stderr), instead of an empty view.
#[test]
fn watch_says_when_nothing_listens() {
    in_netns("watch_says_when_nothing_listens", || {
        let (code, _, stderr) = run(&["watch", ":9999", "-n", "1", "-i", "100ms"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("nothing listens on :9999"), "{stderr:?}");
    });
}

/// lab refuses --netns/--pid, so its help does not offer them; the commands that read a
/// namespace take them before or after their name, not both.
#[test]
fn namespace_options_where_they_apply() {
    let (code, stdout, _) = run(&["lab", "--help"]);
    assert_eq!(code, 0);
    assert!(
        !stdout.contains("--netns") && !stdout.contains("--pid"),
        "{stdout}"
    );
    let (_, stdout, _) = run(&["doctor", "--help"]);
    assert!(stdout.contains("--netns") && stdout.contains("--pid"));
    let (code, _, stderr) = run(&["--pid", "1", "lab"]);
    assert_eq!(code, 3);
    assert!(
        stderr.contains("lab makes its own private namespace"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["--pid", "1", "doctor", "--pid", "1"]);
    assert_eq!(code, 3);
    assert!(stderr.contains("given twice"), "{stderr}");
}
