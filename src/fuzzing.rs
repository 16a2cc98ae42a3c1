//! The seam for the fuzz targets (`fuzz/fuzz_targets/`) and for their corpus replay
//! (`tests/fuzz_corpus.rs`), not an API: one function per target, taking the raw bytes and
//! handing them to the real parsers of everything read from outside (the exporter's web config
//! and request heads, snapshot files, targets and durations, `/proc` files and links, netlink
//! messages, tracefs lines, the configuration files of the servers we name), so that the
//! fuzzer and the replay run identical code. Bytes that are not UTF-8 reach the parsers that
//! are given bytes; those given text by a reader that refuses other bytes are given UTF-8 only.
//! Where a parser promises something cheap to check (a snapshot written back reads the same, a
//! duration printed in µs reads as itself), the function asserts it, so a fuzzer finds wrong
//! answers and not only panics. Errors are ignored: only a panic is a finding.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use base64::Engine;

use crate::doctor::runtime::{self, settings};
use crate::exporter::{auth, http, web_config};
use crate::model::{Local, Name, Owner, PortRange, UnixKind, UnixLocal, UnixName};
use crate::source::client_trace::{self, Capture, Here, Task};
use crate::source::diag::{self, ConnInfo, Dump};
use crate::source::{netns, netstat, pods, procs, sysctl, trace};

/// A target: it takes the bytes of one input.
pub type Target = fn(&[u8]);

/// Every target, by the name of its directories under `fuzz/` (`fuzz_targets/NAME.rs`,
/// `corpus/NAME/`, `regressions/NAME/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("web_config", web_config),
    ("http_head", http_head),
    ("auth_headers", auth_headers),
    ("snapshot", snapshot),
    ("targets", targets),
    ("proc_files", proc_files),
    ("inet_diag", inet_diag),
    ("unix_diag", unix_diag),
    ("tracefs", tracefs),
    ("runtime_settings", runtime_settings),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The directory a fuzzed web config is read from: none, so that a relative path leads nowhere.
const NO_DIR: &str = "/nonexistent/backlogctl-fuzz";

/// `--web.config.file`'s text (read with `read_to_string`: UTF-8 only). A file it names is
/// read: a text that could name one outside `NO_DIR` (a `/` where a `file` key can be, or an
/// escape, which can spell either) is left alone, so the fuzzer never reads `/dev/zero` for
/// ever, and the replay reads the same files on every host.
pub fn web_config(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if text.contains('\\') || (text.contains("file") && text.contains('/')) {
        return;
    }
    let _ = web_config::parse(text, Path::new(NO_DIR));
}

/// A connection's bytes as a client sends them: every request head of it, pipelined, until one
/// is refused or the bytes end. A request's path is a path; its credentials are read as basic
/// auth reads them.
pub fn http_head(data: &[u8]) {
    let mut conn = http::Connection::new(Replay { data }, http::Limits::default());
    while let Ok(req) = conn.read_request() {
        assert!(
            req.path.starts_with('/') && !req.path.contains(['?', '#']),
            "not a path: {req:?}"
        );
        if let Some(value) = &req.authorization {
            basic_credentials(value);
        }
    }
}

/// An in-memory client: reads give its bytes, writes go nowhere, time limits are no-ops.
struct Replay<'a> {
    data: &'a [u8],
}

impl std::io::Read for Replay<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.data.read(buf)
    }
}

impl std::io::Write for Replay<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl http::Timed for Replay<'_> {
    fn set_read_timeout(&self, _: Option<Duration>) -> std::io::Result<()> {
        Ok(())
    }
    fn set_write_timeout(&self, _: Option<Duration>) -> std::io::Result<()> {
        Ok(())
    }
    fn shutdown_write(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A header value (httparse hands on UTF-8 only): as `Authorization`, as `Accept-Encoding`,
/// and as a `basic_auth_users` hash.
pub fn auth_headers(data: &[u8]) {
    let Some(value) = text(data) else { return };
    basic_credentials(value);
    let _ = http::accepts_gzip(value);
    let _ = auth::Users::new(BTreeMap::from([("user".to_string(), value.to_string())]));
}

/// Credentials read from a header: the user has no colon (the first one ends it), and sent
/// again as a client would encode them they read the same.
fn basic_credentials(value: &str) {
    let Some((user, password)) = auth::credentials(value) else {
        return;
    };
    assert!(!user.contains(':'), "user {user:?} of {value:?}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let again = auth::credentials(&format!("Basic {encoded}"));
    assert_eq!(again, Some((user, password)), "{value:?}");
}

/// A snapshot file (read with `read_to_string`: UTF-8 only). One that reads, written back as
/// `snapshot` writes it, reads the same.
pub fn snapshot(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(snap) = crate::store::parse(text) else {
        return;
    };
    let written = serde_json::to_string(&snap).expect("a snapshot serialises");
    match crate::store::parse(&written) {
        Ok(again) => assert!(again == snap, "written back, it reads otherwise: {written}"),
        Err(e) => panic!("written back, it does not read ({e}): {written}"),
    }
}

/// A command-line argument (clap gives UTF-8 only) as a TARGET, a host name target, a
/// duration. A target is stored as it displays and reads back the same; a duration is at most
/// 7 days, and printed in µs it reads as itself, to the µs.
pub fn targets(data: &[u8]) {
    let Some(arg) = text(data) else { return };
    if let Ok(t) = crate::model::Target::parse(arg) {
        let stored = serde_json::to_string(&t).expect("a target serialises");
        let again: crate::model::Target = serde_json::from_str(&stored)
            .unwrap_or_else(|e| panic!("{arg:?} stored as {stored} does not read: {e}"));
        assert_eq!(again, t, "{arg:?} stored as {stored}");
    }
    if let Some((host, port)) = crate::model::host_port(arg) {
        assert!(port > 0 && crate::model::host_port(&format!("{host}:{port}")).is_some());
    }
    let Ok(d) = crate::cli::parse_duration("--window", arg) else {
        return;
    };
    assert!(d <= Duration::from_secs(7 * 86_400), "{arg:?} gave {d:?}");
    let us = d.as_micros();
    let again = crate::cli::parse_duration("--window", &format!("{us}us"));
    let exact = Duration::from_micros(u64::try_from(us).expect("at most 7 days"));
    assert_eq!(again.ok(), Some(exact), "{arg:?} gave {d:?}");
}

/// A file or link of `/proc`: the byte parsers (fd links, command lines, a socket path to
/// stat) take the bytes; the text ones (read with `read_to_string`) UTF-8 only. `/proc/net`'s
/// counters, conntrack's and sockstat's; `/proc/PID/stat`, `status`, `fdinfo` lines;
/// namespace links; cgroup paths; `ip_local_port_range`.
pub fn proc_files(data: &[u8]) {
    let _ = procs::socket_inode(OsStr::from_bytes(data));
    let _ = procs::joined_args(data);
    let _ = sysctl::socket_file(data);
    let Some(text) = text(data) else { return };
    let (counters, _problems) = netstat::parse(text);
    assert!(counters.keys().all(|k| k.contains(':')), "{counters:?}");
    let mut conntrack = BTreeMap::new();
    netstat::parse_conntrack(text, &mut conntrack);
    let _ = netstat::parse_sockstat_tw(text);
    let _ = procs::stat_state(text);
    let _ = procs::fd_table_size(text);
    for line in text.lines() {
        let _ = procs::epoll_target(line);
    }
    let _ = netns::link_inode(text, "net");
    let _ = netns::container_id(text);
    let _ = pods::pod_uid(text);
    if let Some(r) = PortRange::parse(text) {
        assert!(r.low <= r.high && r.high <= 65535 && r.size() >= 1, "{r:?}");
    }
}

/// One inet_diag message's payload (after its `nlmsghdr`), as a listener dump (with and
/// without skmeminfo asked for), an established one and an outgoing one read it; its bytes
/// as `tcp_info` and as skmeminfo too. A message is one socket at most.
pub fn inet_diag(data: &[u8]) {
    for asked_drops in [true, false] {
        let mut out = Dump::default();
        if diag::parse_diag_msg(data, asked_drops, &mut out).is_ok() {
            let sockets = out.listeners.len() + out.requests.len() + out.conns.len();
            assert!(sockets <= 1 && out.drops_unknown <= usize::from(asked_drops));
        }
    }
    let mut out = Dump::default();
    if diag::parse_outgoing(data, &mut out).is_ok() {
        assert!(out.outgoing.len() <= 1);
    }
    let _ = ConnInfo::parse(data);
    let _ = diag::skmeminfo_drops(data);
}

/// One unix_diag message's payload, as the listener dump and the pending-connections answer
/// read it. A message is one listener at most.
pub fn unix_diag(data: &[u8]) {
    let mut out = Dump::default();
    if diag::parse_unix_msg(data, &mut out).is_ok() {
        assert!(out.listeners.len() <= 1);
    }
    let _ = diag::parse_icons(data);
}

/// A tracefs text (`trace_pipe` lines are read lossily): as the reset trace's `trace` file,
/// as `/proc/net/tcp` for its listeners, as the client trace's pipe (then attributed to a
/// namespace), as a per-CPU `stats` file.
pub fn tracefs(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (events, lost) = trace::parse(&text);
    let sockets = trace::listening_sockets(&text);
    let ends = trace::Ends {
        sockets: &sockets,
        listens_at: |a: SocketAddr| a.port() % 3 == 0,
        ephemeral: PortRange::DEFAULT,
    };
    let _ = trace::attribute(&events, lost, 1, &ends, |tid| Some(u64::from(tid % 2)));
    let capture = Capture::of_text(&text, |tid, tgid| Task {
        netns: Some(u64::from(tid % 2)),
        tgid,
    });
    let here = Here {
        netns: 1,
        addresses: &["10.0.0.1".parse().expect("an address")],
        listens_at: &|a| a.port() % 2 == 0,
    };
    let _ = client_trace::attribute(&capture, &here);
    let _ = client_trace::stats_lost(&text);
}

/// A server's command line (the first line) and one of its configuration files (the rest,
/// read lossily), as every runtime reads them: recognised, its settings and files from the
/// command line, the file's assignments and includes, merged; the file's lines as listen specs
/// and include patterns.
pub fn runtime_settings(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (cmdline, file) = text.split_once('\n').unwrap_or((&text, ""));
    let owner = |comm: &str| Owner {
        inode: 1,
        pid: 1,
        comm: comm.to_string(),
        cmdline: cmdline.to_string(),
        state: None,
        watches: None,
    };
    let comm = cmdline.split_whitespace().next().unwrap_or_default();
    let _ = runtime::runtime_of(&[owner(comm), owner(cmdline)]);
    let locals = [
        Local::Inet("127.0.0.1:9000".parse().expect("an address")),
        Local::Unix(UnixLocal {
            name: UnixName::Path(Name::new(b"/run/app.sock")),
            kind: UnixKind::Stream,
            vfs: None,
        }),
    ];
    for rt in runtime::RUNTIMES {
        let spec = &rt.settings;
        let Some(argv) = spec.argv(cmdline) else {
            continue;
        };
        let from_cmdline = settings::from_cmdline(spec, &argv);
        // Every variable of the environment is the file's first line.
        let env = file.lines().next().map(str::to_string);
        let _ = settings::config_files(spec, &argv, cmdline, &mut |_| env.clone());
        let _ = settings::of_cmdline(spec, 1, cmdline);
        let mut items = Vec::new();
        for item in settings::parse(spec, file) {
            match item {
                settings::Item::Set(a) => items.push(a),
                settings::Item::Include { pattern, .. } => {
                    for name in file.lines() {
                        let _ = settings::glob_matches(&pattern, name);
                    }
                }
            }
        }
        let read = settings::Read {
            path: "/etc/app.conf".to_string(),
            items,
        };
        let _ = settings::merge(spec, 1, from_cmdline, &[read]);
    }
    for line in file.lines() {
        for local in &locals {
            let _ = settings::listens_on(line, local);
        }
    }
}
