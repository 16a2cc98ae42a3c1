//! Real servers on Unix-domain listeners: php-fpm 8.2, gunicorn and uWSGI, each on a socket in
//! a temp dir, started inside a private network namespace. Live: a burst of non-blocking
//! Unix connects that nobody answers (the workers block reading the requests they accepted)
//! fills the queue while `doctor --json --window` watches; doctor must go CRITICAL with
//! `accept-queue-overflow` on that socket, see Recv-Q reach B+1 and name the server's process.
//! A healthy php-fpm (listen.backlog 511) under a few connects gets no warning. Replayed: the
//! snapshots recorded with the same servers behind nginx and overflowed by `ab`
//! (fixtures/README.md, re-recorded with fixtures/recipes/unix-servers.sh) give the same; so
//! does uvicorn's, replayed only (it comes from PyPI, not Debian).
//!
//! Only typed things are asserted — rule ids, severity, exit code, the owners' comm and the
//! queue numbers in the JSON — never the words, which are the doctor's to change.
//!
//! The live tests need root, php-fpm8.2 (php8.2-fpm), gunicorn (gunicorn) and uwsgi with its
//! python3 plugin (uwsgi, uwsgi-plugin-python3); without them they say `skipped: ...`, and
//! fail under CI=true. The replays need nothing.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use backlogctl::doctor::{RuleId, Severity, diagnose};
use common::scenarios::listener_of;
use common::*;
use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use serde_json::Value;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    PhpFpm,
    Gunicorn,
    Uwsgi,
}

struct Case {
    name: &'static str,
    /// None: recorded only, its server not in Debian (uvicorn, from PyPI).
    kind: Option<Kind>,
    /// The server's own backlog setting: listen.backlog, --backlog, --listen.
    backlog: u32,
    workers: u32,
    /// Non-blocking connects of the live burst.
    clients: usize,
    /// The server's process name (`/proc/PID/comm`) as the JSON's owners give it.
    comm: &'static str,
    /// Recorded with the same server behind nginx (fixtures/README.md).
    fixture: &'static str,
    overflow: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "php-fpm-backlog8-burst",
        kind: Some(Kind::PhpFpm),
        backlog: 8,
        workers: 2,
        clients: 40,
        comm: "php-fpm8.2",
        fixture: "6.18-php-fpm-unix-backlog8-burst.json",
        overflow: true,
    },
    Case {
        name: "php-fpm-backlog511-healthy",
        kind: Some(Kind::PhpFpm),
        backlog: 511,
        workers: 8,
        clients: 5,
        comm: "php-fpm8.2",
        fixture: "6.18-php-fpm-unix-backlog511-healthy.json",
        overflow: false,
    },
    Case {
        name: "gunicorn-backlog16-burst",
        kind: Some(Kind::Gunicorn),
        backlog: 16,
        workers: 2,
        clients: 60,
        comm: "gunicorn",
        fixture: "6.18-gunicorn-unix-backlog16-burst.json",
        overflow: true,
    },
    Case {
        name: "uwsgi-backlog16-burst",
        kind: Some(Kind::Uwsgi),
        backlog: 16,
        workers: 2,
        clients: 60,
        comm: "uwsgi",
        fixture: "6.18-uwsgi-unix-backlog16-burst.json",
        overflow: true,
    },
    Case {
        name: "uvicorn-backlog16-burst",
        kind: None,
        backlog: 16,
        workers: 1,
        clients: 0,
        comm: "uvicorn",
        fixture: "6.18-uvicorn-unix-backlog16-burst.json",
        overflow: true,
    },
];

const APP: &str = "import time\n\
def application(environ, start_response):\n    \
    time.sleep(0.2)\n    \
    start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
    return [b'ok\\n']\n\
app = application\n";

const UWSGI_PYTHON3: &str = "/usr/lib/uwsgi/plugins/python3_plugin.so";

/// A server started in its own process group, killed with it, its temp dir removed.
struct Server {
    child: Child,
    dir: PathBuf,
    sock: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the case's server can be started here; `skip`s (or fails under CI) when not.
fn available(test: &str, kind: Kind) -> bool {
    match kind {
        Kind::PhpFpm => need(test, "php-fpm8.2", "-v", "php8.2-fpm"),
        Kind::Gunicorn => need(test, "gunicorn", "--version", "gunicorn"),
        Kind::Uwsgi => {
            if !need(test, "uwsgi", "--version", "uwsgi") {
                return false;
            }
            let there = Path::new(UWSGI_PYTHON3).exists();
            if !there {
                skip(
                    test,
                    &format!("{UWSGI_PYTHON3} missing (Debian package uwsgi-plugin-python3)"),
                );
            }
            there
        }
    }
}

/// Starts the case's server in the calling thread's namespace, on `DIR/server.sock`.
fn start(c: &Case, kind: Kind) -> Server {
    use std::os::unix::fs::PermissionsExt;
    let dir =
        std::env::temp_dir().join(format!("backlogctl-unix-{}-{}", std::process::id(), c.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.join("server.sock");
    let s = sock.display();
    let d = dir.display();
    let (b, w) = (c.backlog, c.workers);
    let mut cmd = match kind {
        Kind::PhpFpm => {
            let conf = dir.join("php-fpm.conf");
            std::fs::write(
                &conf,
                format!(
                    "[global]\npid = {d}/php-fpm.pid\nerror_log = {d}/php-fpm.log\n\
                     daemonize = no\n[www]\nuser = www-data\ngroup = www-data\n\
                     listen = {s}\nlisten.mode = 0666\nlisten.backlog = {b}\n\
                     pm = static\npm.max_children = {w}\n"
                ),
            )
            .unwrap();
            let mut cmd = Command::new("php-fpm8.2");
            cmd.arg("-F").arg("-y").arg(conf);
            cmd
        }
        Kind::Gunicorn => {
            std::fs::write(dir.join("app.py"), APP).unwrap();
            let mut cmd = Command::new("gunicorn");
            cmd.arg("--bind")
                .arg(format!("unix:{s}"))
                .args(["--backlog", &b.to_string(), "--workers", &w.to_string()])
                .arg("app:app")
                .current_dir(&dir);
            cmd
        }
        Kind::Uwsgi => {
            std::fs::write(dir.join("app.py"), APP).unwrap();
            let mut cmd = Command::new("uwsgi");
            cmd.args(["--plugin", "python3", "--master", "--socket"])
                .arg(&sock)
                .args(["--listen", &b.to_string(), "--processes", &w.to_string()])
                .arg("--wsgi-file")
                .arg(dir.join("app.py"));
            cmd
        }
    };
    let log = std::fs::File::create(dir.join("server.out")).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: start: {e}", c.name));
    Server { child, dir, sock }
}

/// A non-blocking connect to a Unix stream socket: Ok once queued, EAGAIN when the queue is
/// full.
fn unix_connect(path: &Path) -> Result<OwnedFd, Errno> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}

/// The JSON report's listener on `path`.
fn listener<'a>(rep: &'a Value, path: &str) -> &'a Value {
    rep["listeners"]
        .as_array()
        .expect("listeners")
        .iter()
        .find(|l| l["local"]["path"] == path)
        .unwrap_or_else(|| panic!("no listener {path} in {rep}"))
}

/// The typed checks of one report (live or replayed) on the listener at `path`.
fn check(c: &Case, code: i32, rep: &Value, path: &str) -> Result<(), String> {
    let l = listener(rep, path);
    let comms: Vec<&str> = l["owners"]
        .as_array()
        .map(|o| o.iter().filter_map(|x| x["comm"].as_str()).collect())
        .unwrap_or_default();
    let findings = rep["findings"].as_array().expect("findings");
    let why = format!(
        "{}: exit {code}, listener {l}, findings {findings:?}",
        c.name
    );
    let send_q = l["send_q"].as_u64();
    if send_q != Some(u64::from(c.backlog)) {
        return Err(format!("Send-Q is not {}: {why}", c.backlog));
    }
    if c.overflow {
        let overflow = findings.iter().find(|f| f["id"] == "accept-queue-overflow");
        let ok = code == 2
            && overflow.is_some_and(|f| f["severity"] == "critical" && f["listener"] == path)
            && l["recv_q_peak"].as_u64() == Some(u64::from(c.backlog) + 1)
            && l["full_seen"] == true
            && comms.first() == Some(&c.comm);
        if !ok {
            return Err(format!(
                "want CRITICAL accept-queue-overflow, Recv-Q peak B+1, owner {}: {why}",
                c.comm
            ));
        }
    } else {
        let loud = findings
            .iter()
            .any(|f| f["severity"] == "warning" || f["severity"] == "critical");
        if code != 0 || loud {
            return Err(format!("want exit 0 and no warning: {why}"));
        }
    }
    Ok(())
}

/// The live burst on `sock`: the clients kept open, and how many connects got EAGAIN.
fn burst(c: &Case, sock: &Path) -> Result<(Vec<OwnedFd>, usize), String> {
    let mut held = Vec::new();
    let mut eagain = 0;
    let mut connect = |held: &mut Vec<OwnedFd>| match unix_connect(sock) {
        Ok(fd) => {
            held.push(fd);
            Ok(true)
        }
        Err(Errno::EAGAIN) => {
            eagain += 1;
            Ok(false)
        }
        Err(e) => Err(format!("{}: connect {}: {e}", c.name, sock.display())),
    };
    for _ in 0..c.clients {
        connect(&mut held)?;
    }
    if c.overflow {
        // Each worker takes one queued client right after the wave and then blocks reading
        // it: the queue is full only until the workers wake, maybe between two samples. More
        // clients keep coming, as in a real burst, every few milliseconds while the workers
        // settle (python ones may still be booting); then the queue stays full, which a
        // sample of our own must see.
        for _ in 0..100 {
            while connect(&mut held)? {}
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        let path = sock.to_str().expect("a UTF-8 temp dir");
        let full = wait_for(100, || {
            while connect(&mut held).ok()? {}
            (listener_of(path)?.recv_q == c.backlog + 1).then_some(())
        });
        if full.is_none() {
            return Err(format!("{}: the queue never stayed full", c.name));
        }
    }
    Ok((held, eagain))
}

/// One case live, in its own namespace: the server, `doctor --json --window 700ms SOCKET`,
/// and once doctor has sampled, the burst. Some(Err) with what was seen when it fails.
fn live(c: &'static Case, kind: Kind) -> Option<Result<(), String>> {
    in_netns(c.name, move || {
        let server = start(c, kind);
        let path = server.sock.to_str().unwrap().to_string();
        let up = wait_for(1500, || {
            let l = listener_of(&path)?;
            (l.send_q == c.backlog).then_some(())
        });
        if up.is_none() {
            let log = std::fs::read_to_string(server.dir.join("server.out")).unwrap_or_default();
            return Err(format!(
                "{}: no listener on {path} with backlog {}: {log}",
                c.name, c.backlog
            ));
        }
        let observer = Command::new(bin())
            .args(["doctor", "--json", "--window", "700ms", &path])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run backlogctl");
        if wait_until_asleep(observer.id()).is_none() {
            let out = observer.wait_with_output().unwrap();
            return Err(format!(
                "{}: doctor ended before its first sample: {}",
                c.name,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // The observer is waited for whatever the burst gives.
        let burst = burst(c, &server.sock);
        let out = observer.wait_with_output().expect("wait for doctor");
        let (held, eagain) = burst?;
        drop(held);
        let rep: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let code = out.status.code().unwrap_or(-1);
        // A full Unix queue refuses a non-blocking connect at once: the burst's own evidence.
        if c.overflow != (eagain > 0) {
            return Err(format!(
                "{}: {eagain} of {} connects got EAGAIN",
                c.name, c.clients
            ));
        }
        check(c, code, &rep, &path).map_err(|e| {
            format!(
                "{e}; {eagain} EAGAIN; stderr {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    })
}

#[test]
fn unix_servers_live() {
    let mut failures = Vec::new();
    for c in CASES {
        let Some(kind) = c.kind else { continue };
        if !available(c.name, kind) {
            continue;
        }
        match live(c, kind) {
            None => return, // not allowed to make namespaces; in_netns said why
            Some(Err(e)) => failures.push(e),
            Some(Ok(())) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The recorded snapshots, through the library and through `doctor --json --from`.
#[test]
fn unix_server_fixtures_replay() {
    for c in CASES {
        let f = fixture(&format!("snapshots/{}", c.fixture));
        let snap = backlogctl::store::load(&f).expect("fixture loads");
        let report = diagnose(&snap);
        let worst = report.findings.iter().map(|x| x.severity).max();
        let overflow = report
            .findings
            .iter()
            .any(|x| x.id == RuleId::AcceptQueueOverflow && x.severity == Severity::Critical);
        assert_eq!(overflow, c.overflow, "{}: {:?}", c.fixture, report.findings);
        if !c.overflow {
            assert!(worst.is_none_or(|s| s == Severity::Ok), "{}", c.fixture);
        }
        let (code, out, err) = run_bin(&["doctor", "--json", "--from", f.to_str().unwrap()]);
        let rep: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {err}"));
        let path = rep["listeners"][0]["local"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no Unix listener: {rep}", c.fixture))
            .to_string();
        check(c, code, &rep, &path).unwrap();
    }
}
