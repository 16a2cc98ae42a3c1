//! `watch` against the real kernel, in a private network namespace: a burst drained between
//! two refreshes still shows as a peak of B+1 with drops, a listener that closes mid-run is
//! reported as gone, SIGTERM ends the run with a last refresh and the summary, `--record` feeds
//! `doctor --from`, on a terminal each listener gets a sparkline of its last minute, a full
//! Unix listener shows its peak with drops not counted (`n/a`, null in JSON), and clients left
//! waiting (in the accept queue and after accept) show in watch's rows and in `metrics`, and
//! connects to a server that never answers show as its outgoing row, in `metrics` by server
//! and in `snapshot`. Among 2,000 listeners a burst makes its listener hot (sampled alone,
//! more often) and shows at its peak; a Unix target among 1,000 is sampled alone.
//!
//! Needs root for the namespaces (skipped otherwise, failed under CI=true); bad options are
//! checked everywhere. No test depends on how fast the machine is: the burst waits for watch's
//! own samples, and the refresh after it is asked for with SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::*;

fn refreshes(stdout: &str) -> (Vec<serde_json::Value>, serde_json::Value) {
    let mut lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let summary = lines.pop().expect("summary line");
    (lines, summary["summary"].clone())
}

#[test]
fn short_burst_is_caught_between_refreshes_and_recorded() {
    in_netns(
        "short_burst_is_caught_between_refreshes_and_recorded",
        || {
            set_sysctl("net.core.somaxconn", 5);
            let server = listener("127.0.0.1:8100", 100);
            let closing = listener("127.0.0.1:8200", 10);
            let dir = std::env::temp_dir().join(format!("backlogctl-watch-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let rec = dir.join("watch.json");
            // A long interval: after the first refresh, at the start, the only other one is the
            // one SIGTERM asks for, once the burst is over. The burst cannot straddle a refresh.
            let rec_arg = rec.to_str().expect("a UTF-8 path");
            let (refs, summary, _, held) = watch_around(&["--record", rec_arg], |pid| {
                let clients: Vec<_> = (0..20).map(|_| start_connect("127.0.0.1:8100")).collect();
                wait_for(300, || (scenarios::queue_of(":8100")? == 6).then_some(()))
                    .expect("B+1 = 6 queued");
                // The full queue lasts until watch's sampler has seen it: a whole sample of
                // watch's, begun after the queue filled, counted through /proc.
                wait_for_samples(pid).expect("watch sampled the full queue");
                let mut accepted = Vec::new();
                nix::fcntl::fcntl(
                    &server,
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                )
                .unwrap();
                while let Ok(c) = nix::sys::socket::accept(&server) {
                    accepted.push(c);
                }
                assert_eq!(accepted.len(), 6, "B+1 were queued");
                drop(closing);
                (clients, accepted)
            });
            refs[0]["sample_interval_us"]
                .as_u64()
                .expect("sampling period");
            assert_eq!(refs.len(), 2, "the first refresh and SIGTERM's");
            let rows = |r: &serde_json::Value, port: &str| -> Vec<serde_json::Value> {
                r["listeners"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|l| l["local"].as_str().unwrap().ends_with(port))
                    .cloned()
                    .collect()
            };
            // The refresh after the burst: queue already empty, peak held at B+1, drops counted.
            let hit = refs
                .iter()
                .find(|r| rows(r, ":8100").first().is_some_and(|l| l["peak"] == 6))
                .expect("a refresh with peak 6");
            let l = &rows(hit, ":8100")[0];
            assert_eq!(
                l["recv_q"], 0,
                "drained before the refresh: only the peak shows it"
            );
            assert!(l["drops_per_s"].as_f64().unwrap() > 0.0, "{l}");
            assert!(hit["rates"]["ListenOverflows"].as_f64().unwrap() > 0.0);
            assert!(hit["time"].as_str().unwrap().ends_with('Z'));
            // Every refresh names the process holding the listener: this test.
            let me = format!(", pid {}", std::process::id());
            for r in &refs {
                let p = rows(r, ":8100")[0]["process"].as_str().map(str::to_owned);
                assert!(p.as_ref().is_some_and(|p| p.ends_with(&me)), "{p:?} {r}");
            }
            // The closed listener is reported as gone, once.
            let gone: Vec<_> = refs
                .iter()
                .flat_map(|r| rows(r, ":8200"))
                .filter(|l| l["event"] == "gone")
                .collect();
            assert_eq!(gone.len(), 1, "{refs:?}");
            // The summary keeps the worst moment.
            let s8100 = summary["listeners"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["local"] == "127.0.0.1:8100")
                .unwrap();
            assert_eq!(s8100["peak"], 6);
            assert!(s8100["drops"].as_u64().unwrap() > 0);
            assert!(summary["worst"]["time"].is_string());
            // The recording diagnoses as an overflow.
            let doc = Command::new(bin())
                .args(["doctor", "--json", "--from"])
                .arg(&rec)
                .output()
                .unwrap();
            assert_eq!(
                doc.status.code(),
                Some(2),
                "{}",
                String::from_utf8_lossy(&doc.stderr)
            );
            let report: serde_json::Value = serde_json::from_slice(&doc.stdout).unwrap();
            assert!(
                report["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["id"] == "accept-queue-overflow")
            );
            std::fs::remove_dir_all(&dir).unwrap();
            drop(held);
        },
    );
}

#[test]
fn a_unix_listener_shows_its_peak_and_no_drops_column() {
    in_netns("a_unix_listener_shows_its_peak_and_no_drops_column", || {
        let dir =
            std::env::temp_dir().join(format!("backlogctl-watch-unix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.sock").to_str().unwrap().to_owned();
        let _server = unix_listener(&path, 4);
        let (refs, summary, _, queued) = watch_around(&[&path], |pid| {
            // B = 4 holds 5; the other 15 non-blocking connects get EAGAIN at once.
            let (mut queued, mut refused) = (Vec::new(), 0);
            for _ in 0..20 {
                match unix_connect(&path) {
                    Ok(fd) => queued.push(fd),
                    Err(nix::errno::Errno::EAGAIN) => refused += 1,
                    Err(e) => panic!("connect {path}: {e}"),
                }
            }
            assert_eq!((queued.len(), refused), (5, 15));
            wait_for_samples(pid).expect("watch sampled the full queue");
            queued
        });
        let last = &refs.last().expect("SIGTERM's refresh")["listeners"][0];
        assert_eq!(last["local"]["path"], path.as_str(), "{last}");
        assert_eq!(
            (last["peak"].as_u64(), last["send_q"].as_u64()),
            (Some(5), Some(4))
        );
        assert_eq!(last["fill_pct"], 100);
        assert!(
            last["drops_per_s"].is_null() && last["syn_recv"].is_null(),
            "{last}"
        );
        let s = &summary["listeners"][0];
        assert_eq!(
            (s["peak"].as_u64(), &s["drops"]),
            (Some(5), &serde_json::Value::Null)
        );
        // The same listener in lines: its peak, and drops not counted rather than unknown.
        let (code, text, err) = run_bin(&["watch", "-x", "--count", "1"]);
        assert_eq!(code, 0, "{err}");
        let row = text.lines().find(|l| l.contains(&path)).expect(&text);
        assert!(
            row.contains("recv_q=5 peak=5 send_q=4 fill=100% drops/s=n/a"),
            "{row}"
        );
        drop(queued);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn plain_lines_when_not_a_terminal() {
    in_netns("plain_lines_when_not_a_terminal", || {
        let _l = listener("127.0.0.1:8100", 7);
        let out = Command::new(bin())
            .args(["watch", ":8100", "--count", "2", "--interval", "100ms"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" 127.0.0.1:8100 recv_q="))
            .collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert!(
            rows[0].contains("recv_q=0 peak=0 send_q=7 fill=0%"),
            "{text}"
        );
        assert!(text.contains("Summary: 2 refresh(es)"), "{text}");
        assert!(!text.contains('\x1b'), "no escapes off a terminal");
    });
}

/// Runs watch with its stdout on a pseudo-terminal `cols` wide, in the given locale; returns
/// the last frame of the table (escapes and carriage returns removed) and the exit code.
fn on_a_terminal(args: &[&str], cols: u16, lang: &str) -> (String, Option<i32>) {
    use nix::pty::{Winsize, openpty};
    let size = Winsize {
        ws_row: 30,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(&size, None).expect("openpty");
    let child = Command::new(bin())
        .args(args)
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR")
        .env("LANG", lang)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::from(pty.slave))
        .stderr(Stdio::piped())
        .spawn();
    // The Command, and with it our copy of the slave, is gone: EOF (EIO) once watch exits.
    let mut child = child.expect("spawn watch");
    let mut master = std::fs::File::from(pty.master);
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let status = child.wait().expect("watch ends by itself");
    let text = String::from_utf8(raw).expect("UTF-8 output");
    let frame = text
        .rsplit("\x1b[H\x1b[2J")
        .next()
        .unwrap_or_default()
        .replace('\r', "")
        .replace("\x1b[?25h", "");
    (frame, status.code())
}

#[test]
fn a_terminal_shows_the_last_minute_per_listener() {
    in_netns("a_terminal_shows_the_last_minute_per_listener", || {
        // B = 2, three queued: full (B+1), the top of the scale on every refresh.
        let _full = listener("127.0.0.1:8100", 2);
        let _empty = listener("127.0.0.1:8200", 2);
        let clients: Vec<_> = (0..3).map(|_| start_connect("127.0.0.1:8100")).collect();
        wait_for(300, || (scenarios::queue_of(":8100")? == 3).then_some(()))
            .expect("B+1 = 3 queued");
        let args = [
            "watch",
            "--count",
            "3",
            "--interval",
            "1s",
            "--sample-interval",
            "100ms",
            "--color",
            "never",
        ];
        for (lang, full, empty) in [("C.UTF-8", '█', '▁'), ("C", '#', '_')] {
            let (frame, code) = on_a_terminal(&args, 120, lang);
            assert_eq!(code, Some(0), "{frame}");
            let table: Vec<&str> = frame.lines().take_while(|l| !l.is_empty()).collect();
            assert!(
                table
                    .iter()
                    .any(|l| l.starts_with("LISTENER") && l.ends_with(" LAST 60s")),
                "{lang}: {frame}"
            );
            let row = |port: &str| {
                table
                    .iter()
                    .find(|l| l.starts_with(&format!("127.0.0.1:{port} ")))
                    .unwrap_or_else(|| panic!("{lang}: no row for {port}: {frame}"))
            };
            // 120 columns: two refreshes a slot, so three refreshes make two slots.
            let spark = |port| row(port).rsplit(' ').next().unwrap().to_string();
            assert_eq!(spark("8100"), format!("{full}{full}"), "{lang}: {frame}");
            assert_eq!(spark("8200"), format!("{empty}{empty}"), "{lang}: {frame}");
            for l in frame.lines() {
                assert!(l.chars().count() <= 120, "{lang}: past 120 columns: {l}");
            }
        }
        drop(clients);
    });
}

/// Runs `watch --json --interval 1h --sample-interval 10ms ARGS`, lets `during` act once the
/// first refresh is out (it gets watch's pid), then SIGTERM (Ctrl-C likewise): one last
/// refresh, then the summary. Watch sleeps after its first refresh, so the signal cannot cut
/// that one short. Returns the refreshes, the summary, stderr and what `during` returned.
fn watch_around<T>(
    args: &[&str],
    during: impl FnOnce(u32) -> T,
) -> (Vec<serde_json::Value>, serde_json::Value, String, T) {
    let mut child = Command::new(bin())
        .args([
            "watch",
            "--json",
            "--interval",
            "1h",
            "--sample-interval",
            "10ms",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut early = String::new();
    stdout.read_line(&mut early).expect("read a refresh");
    assert!(early.ends_with('\n'), "watch ended early: {early}");
    let held = during(child.id());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read the rest");
    let out = child.wait_with_output().expect("watch ends on SIGTERM");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let (refs, summary) = refreshes(&(early + &rest));
    (refs, summary, stderr, held)
}

/// The row of the listener whose `local` (an address, or a Unix name's JSON) contains `name`.
fn row_of<'a>(refresh: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    refresh["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["local"].to_string().contains(name))
        .unwrap_or_else(|| panic!("no row of {name} in {refresh}"))
}

/// Among 1,000 TCP and 1,000 Unix listeners: a burst on one, seen by a dump of the whole
/// namespace, makes it hot, sampled alone by exact requests between the dumps (more samples
/// than an idle listener gets), and the refresh shows its peak of B+1; a Unix target among
/// the 1,000 is sampled alone at every sample (pinned), the namespace dumped only at
/// refreshes. Counts of watch's own samples (`wait_for_samples`), not time, pace the test.
#[test]
fn a_burst_among_2000_listeners_is_sampled_hot_at_its_peak() {
    let test = "a_burst_among_2000_listeners_is_sampled_hot_at_its_peak";
    in_netns(test, || {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        if soft < 3000 {
            if hard < 3000 {
                return skip(test, &format!("RLIMIT_NOFILE hard limit {hard} < 3000"));
            }
            setrlimit(Resource::RLIMIT_NOFILE, 3000, hard).expect("raise RLIMIT_NOFILE");
        }
        let _tcp: Vec<_> = (0..1000)
            .map(|i| listener(&format!("127.0.0.1:{}", 30000 + i), 64))
            .collect();
        let _unix: Vec<_> = (0..1000)
            .map(|i| unix_listener(&format!("@hot-{i}"), 64))
            .collect();
        let server = listener("127.0.0.1:8100", 16);
        let (refs, _, _, ()) = watch_around(&[], |pid| {
            let clients: Vec<_> = (0..40).map(|_| start_connect("127.0.0.1:8100")).collect();
            wait_for(300, || (scenarios::queue_of(":8100")? == 17).then_some(()))
                .expect("B+1 = 17 queued");
            for _ in 0..10 {
                wait_for_samples(pid).expect("watch samples");
            }
            nix::fcntl::fcntl(
                &server,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            )
            .unwrap();
            while nix::sys::socket::accept(&server).is_ok() {}
            drop(clients);
        });
        let last = refs.last().expect("the last refresh");
        let (hot, idle) = (
            row_of(last, "127.0.0.1:8100"),
            row_of(last, "127.0.0.1:30000"),
        );
        assert_eq!(hot["peak"], 17, "{hot}");
        assert!(last["hot"].as_u64().unwrap() >= 1, "{last}");
        assert!(
            hot["samples"].as_u64().unwrap() > idle["samples"].as_u64().unwrap(),
            "{hot} {idle}"
        );
        let (refs, _, stderr, ()) = watch_around(&["@hot-500"], |pid| {
            for _ in 0..10 {
                wait_for_samples(pid).expect("watch samples");
            }
        });
        assert!(stderr.is_empty(), "{stderr}");
        let last = refs.last().expect("the last refresh");
        assert_eq!(last["listeners"].as_array().unwrap().len(), 1, "{last}");
        assert_eq!(last["hot"], 1, "{last}");
        // Ten whole samples since the first refresh, all of the target alone; the refresh's.
        let samples = row_of(last, "hot-500")["samples"].as_u64().unwrap();
        assert!(samples >= 11, "{last}");
    });
}

#[test]
fn bad_watch_options_exit_3() {
    for args in [
        &["watch", "--interval", "0"][..],
        &["watch", "--count", "0"],
        &["watch", "--duration", "x"],
    ] {
        let out = Command::new(bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error: ") && err.lines().count() == 1,
            "{err}"
        );
    }
}

/// A listener that never serves: three clients wait in its accept queue, a fourth was
/// accepted and its request left unanswered. Polled (bounded) until a reading has seen every
/// one of them wait at least a millisecond, watch's JSON row and the metrics both carry the
/// wait, by place; counts are asserted, durations only as "some".
#[test]
fn clients_left_waiting_show_in_watch_and_metrics() {
    in_netns("clients_left_waiting_show_in_watch_and_metrics", || {
        let server = listener("127.0.0.1:8650", 16);
        let clients: Vec<_> = (0..4).map(|_| start_connect("127.0.0.1:8650")).collect();
        wait_for(300, || (scenarios::queue_of(":8650")? == 4).then_some(())).expect("4 queued");
        // Every handshake is complete (Recv-Q counts only those): each sends its request.
        for c in &clients {
            let sent = nix::unistd::write(c, b"GET / HTTP/1.0\r\n\r\n").expect("send the request");
            assert_eq!(sent, 18);
        }
        let accepted = nix::sys::socket::accept(&server).expect("accept one");
        wait_for(300, || (scenarios::queue_of(":8650")? == 3).then_some(())).expect("3 left");
        // watch --json, one refresh: its one sample is full and reads the wait.
        let row = wait_for(300, || {
            let (code, out, err) = run_bin(&["watch", "--json", "--count", "1", ":8650"]);
            assert_eq!(code, 0, "{err}");
            let (refs, summary) = refreshes(&out);
            let row = refs[0]["listeners"][0].clone();
            let w = &row["wait"];
            let all = w["queued"] == 3 && w["unanswered"] == 1 && w["unread"] == 1;
            let some = |f: &str| w[f].as_u64().is_some_and(|ms| ms > 0);
            (all && some("queued_oldest_ms") && some("unanswered_oldest_ms"))
                .then_some((row, summary))
        });
        let (row, summary) = row.expect("a reading with 3 queued and 1 unanswered, each waiting");
        assert_eq!(row["recv_q"], 3, "{row}");
        let longest = summary["listeners"][0]["longest_wait_ms"].as_u64().unwrap();
        assert!(longest > 0, "{summary}");
        // The same in the lines: waiting counts both places.
        let (code, text, err) = run_bin(&["watch", "--count", "1", ":8650"]);
        assert_eq!(code, 0, "{err}");
        assert!(text.contains(" waiting=4 after_accept=1 wait="), "{text}");
        // metrics: one series per place, from the scrape's one full sample.
        let series = |text: &str, family: &str, place: &str| -> Option<f64> {
            let labels = format!("address=\"127.0.0.1\",port=\"8650\",place=\"{place}\"}} ");
            let line = text.lines().find(|l| {
                l.starts_with(&format!("backlogctl_{family}{{")) && l.contains(&labels)
            })?;
            line.rsplit(' ').next()?.parse().ok()
        };
        let (code, text, err) = run_bin(&["metrics", ":8650"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            series(&text, "listen_waiting", "accept_queue"),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            series(&text, "listen_waiting", "after_accept"),
            Some(1.0),
            "{text}"
        );
        for place in ["accept_queue", "after_accept"] {
            let oldest = series(&text, "listen_oldest_wait_seconds", place);
            assert!(oldest.is_some_and(|s| s > 0.0), "{place}: {text}");
        }
        drop((accepted, clients));
    });
}

/// A server that never answers, reached over a veth: the SYN leaves for a neighbour that
/// exists only as a permanent entry (a MAC nobody has), so it is dropped without an ICMP and
/// the connects retransmit as against a full accept queue. Once the kernel has sent every SYN
/// again (≥ 1 s, the first retransmission timeout), `watch` (JSON and lines), `metrics` and
/// `snapshot` name the server with its 3 connects, all retried; `doctor --from` reads the
/// snapshot back. A connect to a local listener that answers is no server in trouble.
#[test]
fn connects_to_a_silent_server_show_in_watch_metrics_and_snapshot() {
    let test = "connects_to_a_silent_server_show_in_watch_metrics_and_snapshot";
    if !need(test, "ip", "-V", "iproute2") {
        return;
    }
    in_netns(test, || {
        let ip = |args: &str| {
            let out = Command::new("ip")
                .args(args.split(' '))
                .output()
                .expect("run ip");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "ip {args}: {err}");
        };
        ip("link add bc0 type veth peer name bc1");
        ip("addr add 10.77.0.2/24 dev bc0");
        ip("link set bc0 up");
        ip("link set bc1 up");
        ip("neigh add 10.77.0.1 lladdr 02:00:00:00:00:01 dev bc0 nud permanent");
        // A healthy local pair, for contrast: its connect completes at once.
        let server = listener("127.0.0.1:8660", 8);
        let healthy = start_connect("127.0.0.1:8660");
        let silent: Vec<_> = (0..3).map(|_| start_connect("10.77.0.1:9000")).collect();
        let remote = wait_for(500, || {
            let (code, out, err) = run_bin(&["watch", "--json", "--count", "1"]);
            assert_eq!(code, 0, "{err}");
            let (refs, _) = refreshes(&out);
            let rows = refs[0]["outgoing"]["remotes"].as_array()?.clone();
            (rows.len() == 1 && rows[0]["syn_retried"] == 3).then(|| rows[0].clone())
        })
        .expect("watch lists the silent server with its 3 connects retried");
        assert_eq!(remote["remote"], "10.77.0.1:9000", "{remote}");
        assert_eq!(remote["syn_sent"], 3, "{remote}");
        assert!(remote["syn_retrans_max"].as_u64() >= Some(1), "{remote}");
        let (code, text, err) = run_bin(&["watch", "--count", "1"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            text.contains(" remote 10.77.0.1:9000 syn_sent=3 peak=3 retried=3 "),
            "{text}"
        );
        assert!(!text.contains("127.0.0.1:8660 syn_sent"), "{text}");
        // metrics: the server by name, nothing else to sum, and the namespace's SYN retransmits.
        let (code, text, err) = run_bin(&["metrics"]);
        assert_eq!(code, 0, "{err}");
        let value = |family: &str, remote: &str| -> Option<f64> {
            let line = text.lines().find(|l| {
                l.starts_with(&format!("backlogctl_{family}{{"))
                    && l.contains(&format!(",remote=\"{remote}\"}} "))
            })?;
            line.rsplit(' ').next()?.parse().ok()
        };
        assert_eq!(
            value("client_syn_sent", "10.77.0.1:9000"),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            value("client_syn_retried", "10.77.0.1:9000"),
            Some(3.0),
            "{text}"
        );
        assert_eq!(value("client_syn_sent", "other"), Some(0.0), "{text}");
        let retrans = text
            .lines()
            .find(|l| l.starts_with("backlogctl_tcp_syn_retrans_total{"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
        assert!(retrans >= Some(3), "{text}");
        // snapshot keeps the server; doctor reads the file back.
        let dir = std::env::temp_dir().join(format!("backlogctl-silent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("snap.json");
        let (code, _, err) = run_bin(&["snapshot", "-o", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let snap: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(snap["schema_version"], 5);
        let kept = &snap["samples"][0]["outgoing"]["remotes"][0];
        assert_eq!(
            (&kept["addr"], &kept["syn_sent"], &kept["syn_retried"]),
            (&"10.77.0.1:9000".into(), &3.into(), &3.into()),
            "{snap}"
        );
        let (code, _, err) = run_bin(&["doctor", "--from", file.to_str().unwrap()]);
        assert_ne!(code, 3, "doctor --from reads it: {err}");
        let _ = std::fs::remove_dir_all(&dir);
        drop((silent, healthy, server));
    });
}
