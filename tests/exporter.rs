//! `backlogctl exporter` as Prometheus and bad clients see it: the real binary on a loopback
//! port of a private network namespace, spoken to over TCP. Paths and methods, limits on what
//! a client may send, a hundred idle connections, the connection cap, SIGTERM; and with
//! `--all-netns`, a listener overflowing in another namespace, labelled with its namespace and
//! process; a listener handed to a child process is owned by the child once the parent exits;
//! run as a pod on its own network (a private namespace, the host's PIDs in view), it still
//! labels the host's namespace `host` and its own as its own.
//!
//! Needs root (private and named namespaces), iproute2 (`ip netns`) and python3 for the
//! handed-over listener: skipped with the reason without them, failed under CI=true.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// The exporter, stopped and reaped when dropped.
struct Exporter {
    child: Child,
    port: u16,
    stderr: BufReader<std::process::ChildStderr>,
}

impl Exporter {
    /// Starts it on an ephemeral loopback port; reads the port from its first line.
    fn start(args: &[&str]) -> Exporter {
        let mut child = Command::new(bin())
            .arg("exporter")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the exporter");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let port = line
            .trim_end()
            .strip_prefix("backlogctl exporter: serving http://127.0.0.1:")
            .or_else(|| {
                line.trim_end()
                    .strip_prefix("backlogctl exporter: serving https://127.0.0.1:")
            })
            .and_then(|r| r.strip_suffix("/metrics"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Exporter {
            child,
            port,
            stderr,
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        // A bound on every wait, so that a hang fails the test instead of stalling it.
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// Sends `raw` on a new connection and reads the response until the server closes.
    fn exchange(&self, raw: &[u8]) -> Response {
        let mut s = self.connect();
        s.write_all(raw).unwrap();
        let mut bytes = Vec::new();
        s.read_to_end(&mut bytes).expect("response");
        Response::parse(&bytes)
    }

    fn get(&self, path: &str) -> Response {
        self.exchange(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    /// SIGTERM, then its exit status and what it said.
    fn terminate(mut self) -> (Option<i32>, String) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = wait_for(1000, || self.child.try_wait().unwrap()).expect("exits on SIGTERM");
        let mut rest = String::new();
        let _ = self.stderr.read_to_string(&mut rest);
        (status.code(), rest)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    head: String,
    body: String,
    /// The body as sent (gzip is not text).
    raw: Vec<u8>,
}

impl Response {
    fn parse(bytes: &[u8]) -> Response {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(bytes.len());
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let raw = bytes.get(end + 4..).unwrap_or_default().to_vec();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        Response {
            status,
            head,
            body: String::from_utf8_lossy(&raw).into_owned(),
            raw,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

#[test]
fn exporter_answers_prometheus_and_refuses_bad_clients() {
    in_netns(
        "exporter_answers_prometheus_and_refuses_bad_clients",
        || {
            let _server = listener("127.0.0.1:8100", 7);
            let e = Exporter::start(&[]);

            let m = e.get("/metrics");
            assert_eq!(m.status, 200);
            assert_eq!(
                m.header("content-type"),
                Some("text/plain; version=0.0.4; charset=utf-8")
            );
            assert_eq!(
                m.header("content-length"),
                Some(m.body.len().to_string().as_str())
            );
            assert!(
                m.body.contains("address=\"127.0.0.1\",port=\"8100\"} 7\n")
                    && m.body.contains(&format!(
                        "backlogctl_build_info{{version=\"{}\"}} 1",
                        env!("CARGO_PKG_VERSION")
                    ))
                    && m.body
                        .contains("# TYPE backlogctl_scrape_duration_seconds gauge"),
                "{}",
                m.body
            );
            assert!(!m.body.contains(" # TIMESTAMP") && !m.body.contains("cmdline"));

            let health = e.get("/healthz");
            assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
            let landing = e.get("/");
            assert!(landing.status == 200 && landing.body.contains("href=\"/metrics\""));
            assert_eq!(e.get("/metricz").status, 404);
            let post =
                e.exchange(b"POST /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            assert_eq!(
                (post.status, post.header("allow")),
                (405, Some("GET, HEAD"))
            );
            let head = e.exchange(b"HEAD /metrics HTTP/1.0\r\n\r\n");
            assert!(head.status == 200 && head.body.is_empty(), "{}", head.head);

            // Too large a head, a body, garbage: a status and a closed connection, never a hang.
            let big = format!(
                "GET /metrics HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
                "a".repeat(20_000)
            );
            assert_eq!(e.exchange(big.as_bytes()).status, 431);
            assert_eq!(
                e.exchange(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789")
                    .status,
                413
            );
            assert_eq!(e.exchange(b"\x16\x03\x01\x02\x00\x01\r\n\r\n").status, 400);

            // Two requests on one kept-alive connection.
            let mut s = e.connect();
            s.write_all(
                b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
            let mut both = String::new();
            s.read_to_string(&mut both).unwrap();
            assert_eq!(both.matches("HTTP/1.1 200 OK").count(), 2, "{both}");

            // Scrapes at the same time (two Prometheus servers): each gets a whole exposition.
            let port = e.port;
            let together: Vec<_> = (0..4)
                .map(|_| {
                    std::thread::spawn(move || {
                        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                        s.write_all(
                            b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                        )
                        .unwrap();
                        let mut bytes = Vec::new();
                        s.read_to_end(&mut bytes).unwrap();
                        Response::parse(&bytes)
                    })
                })
                .collect();
            for t in together {
                let r = t.join().unwrap();
                assert_eq!(r.status, 200);
                // Whole: the exposition's last family is there, ended by its newline.
                let last = r.body.lines().last().unwrap_or("");
                assert!(
                    r.body.ends_with('\n')
                        && last.starts_with("backlogctl_scrapes_total{encoding=\"identity\"} ")
                        && r.body.contains("backlogctl_build_info"),
                    "{last}"
                );
            }

            // A hundred idle connections, some halfway through a head: a scrape is still served.
            let idle: Vec<TcpStream> = (0..100)
                .map(|i| {
                    let mut c = e.connect();
                    if i % 2 == 0 {
                        c.write_all(b"GET /metrics HTTP/1.1\r\nHost:").unwrap();
                    }
                    c
                })
                .collect();
            let busy = e.get("/metrics");
            assert_eq!(busy.status, 200);
            drop(idle);

            let (code, said) = e.terminate();
            assert_eq!(code, Some(0), "{said}");
            assert!(said.contains("stopped on SIGTERM"), "{said}");
        },
    );
}

#[test]
fn past_the_connection_cap_idle_clients_make_room_and_busy_ones_get_503() {
    in_netns("past_the_connection_cap", || {
        let e = Exporter::start(&["--max-connections", "3"]);
        // Three clients that never send a byte: at the cap, one of them is closed for a new one.
        let mut silent: Vec<TcpStream> = (0..3).map(|_| e.connect()).collect();
        let served = wait_for(500, || (e.get("/healthz").status == 200).then_some(()));
        assert!(served.is_some(), "a new client is served at the cap");
        // Non-blocking reads tell them apart: end of stream for a closed one, WouldBlock for
        // one left open. Polled until one is closed, rather than read with a timeout.
        for s in &silent {
            s.set_nonblocking(true).unwrap();
        }
        let closed = wait_for(500, || {
            let closed = silent
                .iter_mut()
                .map(|s| matches!(s.read(&mut [0u8; 1]), Ok(0)))
                .filter(|closed| *closed)
                .count();
            (closed >= 1).then_some(closed)
        })
        .unwrap_or(0);
        assert!(closed >= 1, "an idle connection made room");
        drop(silent);

        // Three clients halfway through a request are busy: a fourth is refused with 503.
        // (A fresh exporter: the connections above may still be closing.)
        drop(e);
        let e = Exporter::start(&["--max-connections", "3"]);
        let start_request = || {
            let mut c = e.connect();
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost:").unwrap();
            c.set_nonblocking(true).unwrap();
            c
        };
        let mut busy: Vec<TcpStream> = (0..3).map(|_| start_request()).collect();
        let refused = wait_for(500, || {
            // A client whose first bytes the exporter had not read yet was still idle, and the
            // cap may have closed it for the newcomer: replaced by one starting a request again.
            for c in busy.iter_mut() {
                if matches!(c.read(&mut [0u8; 1]), Ok(0)) {
                    *c = start_request();
                }
            }
            let r = e.get("/healthz");
            (r.status == 503).then_some(r)
        })
        .expect("a fourth connection is refused while three are busy");
        assert!(refused.body.contains("too many connections"));
        drop(busy);
        let ok = wait_for(500, || (e.get("/healthz").status == 200).then_some(()));
        assert!(ok.is_some(), "served again once the busy ones closed");
    });
}

#[test]
fn bad_exporter_options_are_one_line_errors() {
    for (args, says) in [
        (vec!["--listen", "localhost"], "is not ADDR:PORT"),
        (vec!["--timeout", "0"], "--timeout must be longer than 0"),
        (vec!["--max-connections", "0"], "at least 1"),
        (vec!["--all-netns", "--pid", "1"], "drop --netns/--pid"),
        (
            vec!["--netns", "blt-no-such-ns"],
            "no network namespace named",
        ),
        (vec!["--pid", "4000000"], "no process with PID 4000000"),
    ] {
        let mut full = vec!["exporter"];
        full.extend(args.iter());
        let (code, _, err) = run_bin(&full);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(says) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn an_address_in_use_says_so_and_what_to_do() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = held.local_addr().expect("its address");
    let (code, _, err) = run_bin(&["exporter", "--listen", &addr.to_string()]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: cannot listen on {addr}: Address already in use; "
        )) && err.contains(&format!("ss -ltnp 'sport = :{}'", addr.port()))
            && err.contains("--listen")
            && err.lines().count() == 1,
        "{err}"
    );
}

/// A named namespace made with `ip netns add`, removed (with its sleeper) when dropped.
struct Named {
    name: String,
    sleeper: Option<Child>,
}

impl Drop for Named {
    fn drop(&mut self) {
        if let Some(c) = &mut self.sleeper {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn all_netns_labels_another_namespaces_drops_with_namespace_and_process() {
    let name = format!("blt-exp-{}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &name])
        .stderr(Stdio::null())
        .status();
    if !made.is_ok_and(|s| s.success()) {
        return skip(
            "all_netns_labels_another_namespaces_drops",
            "`ip netns add` failed (needs root and iproute2)",
        );
    }
    let mut ns = Named {
        name: name.clone(),
        sleeper: None,
    };
    let inode = std::fs::metadata(format!("/run/netns/{name}"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    // In the namespace, on a thread of ours: somaxconn 5, a listener, 20 clients.
    let path = format!("/run/netns/{name}");
    let sockets = std::thread::spawn(move || {
        use backlogctl::source::netns::{Which, enter, loopback_up};
        enter(&Which::Named(path)).unwrap();
        loopback_up().unwrap();
        set_sysctl("net.core.somaxconn", 5);
        let mut fds = vec![listener("127.0.0.1:8100", 100)];
        fds.extend((0..20).map(|_| start_connect("127.0.0.1:8100")));
        wait_for(300, || (scenarios::queue_of(":8100")? == 6).then_some(())).expect("queue full");
        fds
    })
    .join()
    .unwrap();
    ns.sleeper = Some(
        Command::new("ip")
            .args(["netns", "exec", &name, "sleep", "60"])
            .spawn()
            .unwrap(),
    );

    let e = Exporter::start(&["--all-netns"]);
    let netns = format!("netns=\"{inode}\"");
    let body = wait_for(500, || {
        let m = e.get("/metrics");
        let drops = m
            .body
            .lines()
            .find(|l| l.starts_with("backlogctl_listen_drops_total{") && l.contains(&netns))?;
        let n: u64 = drops.rsplit(' ').next()?.parse().ok()?;
        (n > 0).then_some(m.body)
    })
    .expect("the drops of the listener in the other namespace");
    let line = |prefix: &str| {
        body.lines()
            .find(|l| l.starts_with(prefix) && l.contains(&netns))
            .unwrap_or_else(|| panic!("no {prefix} for {netns}:\n{body}"))
            .to_string()
    };
    assert!(line("backlogctl_netns_info{").contains(&format!("name=\"{name}\"")));
    assert!(line("backlogctl_netns_scrape_success{").ends_with(" 1"));
    assert!(body.contains(&format!(
        "backlogctl_sysctl{{{netns},name=\"net.core.somaxconn\"}} 5"
    )));
    let owner = line("backlogctl_listen_owner_info{");
    assert!(
        owner.contains(&format!("pid=\"{}\"", std::process::id())),
        "the test process holds the listener: {owner}"
    );
    // The host namespace is there too, named.
    assert!(body.contains("name=\"host\""), "{body}");

    // The namespace goes away: its series go with it at the next scrape, and the descriptors
    // the exporter held it by (its netlink socket and /proc files, some 18) are let go, or
    // they would keep it alive.
    let fds = || std::fs::read_dir(format!("/proc/{}/fd", e.child.id())).map_or(0, |d| d.count());
    // Settled first: a namespace read by lookups opens its socket counts at its second
    // scrape, which on a host with many namespaces outnumbers one namespace's descriptors.
    let mut holding = fds();
    for _ in 0..10 {
        e.get("/metrics");
        let now = std::mem::replace(&mut holding, fds());
        if now == holding {
            break;
        }
    }
    drop(sockets);
    drop(ns);
    let gone = wait_for(500, || {
        let m = e.get("/metrics");
        (!m.body.contains(&netns)).then_some(())
    });
    assert!(gone.is_some(), "series of a deleted namespace disappear");
    let after = fds();
    assert!(
        after + 10 <= holding,
        "the deleted namespace's descriptors are closed: {holding} before, {after} after"
    );
}

/// What the alert rules, the dashboard and docs/fleet.md query is what a live exporter serves:
/// every `backlogctl_*` name they use is a family declared in a real scrape. Needs no root: the
/// exporter reads its own namespace, where this test listens.
#[test]
fn deploy_files_query_only_families_the_exporter_serves() {
    let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let e = Exporter::start(&[]);
    let m = e.get("/metrics");
    assert_eq!(m.status, 200);
    let served: std::collections::BTreeSet<&str> = m
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .collect();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/backlogctl.json",
        "docs/fleet.md",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut used = 0;
        for (i, _) in text.match_indices("backlogctl_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            // Family names, not prose such as "backlogctl_tcp_…" or "backlogctl_*".
            if name.ends_with('_') {
                continue;
            }
            used += 1;
            assert!(
                served.contains(name.as_str()),
                "{file} uses {name}, which the exporter does not serve; it serves {served:?}"
            );
        }
        assert!(used > 3, "{file} queries the exporter's families");
    }
}

/// A listener handed over keeps its inode: when the process it was cached for exits (a daemon
/// that binds, forks and lets its parent go; a binary upgrade), the next scrape names the one
/// that holds it now, not a dead PID.
#[test]
fn a_listener_handed_to_a_child_is_owned_by_the_child_after_the_parent_exits() {
    in_netns("a_listener_handed_to_a_child", || {
        let script = "import os, socket, sys, time\n\
            s = socket.socket(); s.bind(('127.0.0.1', 8100)); s.listen(8)\n\
            child = os.fork()\n\
            if child == 0:\n    time.sleep(60); os._exit(0)\n\
            print(os.getpid(), child, flush=True)\n\
            sys.stdin.readline()\n";
        let mut python = match Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(p) => p,
            Err(e) => {
                return skip(
                    "a_listener_handed_to_a_child",
                    &format!("no python3 (Debian package python3): {e}"),
                );
            }
        };
        let mut line = String::new();
        BufReader::new(python.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pids: Vec<u32> = line
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        let (parent, child) = (pids[0], pids[1]);
        let e = Exporter::start(&[]);
        let owner = |body: &str| {
            body.lines()
                .find(|l| {
                    l.starts_with("backlogctl_listen_owner_info{") && l.contains("port=\"8100\"")
                })
                .map(str::to_string)
        };
        let first = owner(&e.get("/metrics").body).expect("an owner");
        assert!(first.contains(&format!("pid=\"{parent}\"")), "{first}");
        // The parent exits; the child keeps the socket.
        drop(python.stdin.take());
        python.wait().unwrap();
        let now = wait_for(500, || {
            let o = owner(&e.get("/metrics").body)?;
            o.contains(&format!("pid=\"{child}\"")).then_some(o)
        });
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        assert!(now.is_some(), "the child is named once the parent is gone");
    });
}

/// The exporter as a DaemonSet pod runs it (issue 24): in a network namespace of its own, with
/// the host's PID namespace visible (`hostPID: true`, no `hostNetwork`). The host's namespace,
/// reached through `/proc/PID/ns/net`, is still the one labelled `name="host"`, once, with no
/// pod; the exporter's own namespace is its own: not `host`, holding the exporter's listener
/// and its own sysctls. The same for one `metrics --all-netns` run. Only the private
/// namespace's somaxconn is set; the host's is read, never written.
#[test]
fn outside_the_host_namespace_the_host_is_still_host_and_its_own_namespace_its_own() {
    let test = "outside_the_host_namespace_the_host_is_still_host";
    // The oracle for "the host's namespace": kthreadd's (PID 2 in the initial PID namespace;
    // every kernel thread lives in init_net), and PID 1's where it may be read (some sandboxes
    // deny it even to root). A pod with hostPID sees the same PIDs. The exporter asks neither
    // on kernels from 6.18 on (init_net has a fixed inode there): the ways must agree.
    let pid_ns = std::fs::read_link("/proc/self/ns/pid").map(|l| l.display().to_string());
    if pid_ns.as_deref().ok() != Some("pid:[4026531836]") {
        return skip(
            test,
            &format!("not in the host's PID namespace ({pid_ns:?}), as a pod without hostPID"),
        );
    }
    let inode_of = |link: &str| -> Option<String> {
        let target = std::fs::read_link(link).ok()?;
        let s = target.to_str()?;
        Some(s.strip_prefix("net:[")?.strip_suffix(']')?.to_string())
    };
    let comm = std::fs::read_to_string("/proc/2/comm").unwrap_or_default();
    assert_eq!(
        comm.trim_end(),
        "kthreadd",
        "PID 2 of the initial PID namespace"
    );
    let Some(host) = inode_of("/proc/2/ns/net") else {
        return skip(test, "cannot read /proc/2/ns/net (needs root)");
    };
    if let Some(init) = inode_of("/proc/1/ns/net") {
        assert_eq!(init, host, "PID 1 and kthreadd share the host's namespace");
    }
    // Read on this thread, in the namespace the tests started in: the host's, checked below.
    let host_somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse::<u32>()
        .unwrap();
    if inode_of("/proc/thread-self/ns/net").as_deref() != Some(host.as_str()) {
        return skip(test, "the tests do not run in the host's network namespace");
    }
    let own_somaxconn = if host_somaxconn == 1234 { 1235 } else { 1234 };

    in_netns(test, move || {
        let own = inode_of("/proc/thread-self/ns/net").expect("own namespace");
        assert_ne!(own, host, "unshare(CLONE_NEWNET) made a new namespace");
        set_sysctl("net.core.somaxconn", own_somaxconn);

        // Lines of a scrape about one namespace, starting with `family{`.
        let lines = |body: &str, family: &str, inode: &str| -> Vec<String> {
            let prefix = format!("{family}{{netns=\"{inode}\"");
            body.lines()
                .filter(|l| l.starts_with(&prefix))
                .map(str::to_string)
                .collect()
        };
        let check = |what: &str, body: &str| {
            let hosts: Vec<&str> = body
                .lines()
                .filter(|l| l.starts_with("backlogctl_netns_info{") && l.contains("name=\"host\""))
                .collect();
            assert_eq!(
                hosts,
                [format!(
                    "backlogctl_netns_info{{netns=\"{host}\",name=\"host\",container_id=\"\",\
                     pod_namespace=\"\",pod=\"\",pod_uid=\"\"}} 1"
                )],
                "{what}: one host namespace, kthreadd's, no container or pod:\n{body}"
            );
            let info = lines(body, "backlogctl_netns_info", &own);
            assert_eq!(
                info.len(),
                1,
                "{what}: its own namespace is listed:\n{body}"
            );
            assert!(info[0].contains("name=\"\""), "{what}: {}", info[0]);
            for (inode, somaxconn) in [(&host, host_somaxconn), (&own, own_somaxconn)] {
                assert_eq!(
                    lines(body, "backlogctl_netns_scrape_success", inode),
                    [format!(
                        "backlogctl_netns_scrape_success{{netns=\"{inode}\"}} 1"
                    )],
                    "{what}: namespace {inode} entered and read:\n{body}"
                );
                assert!(
                    body.contains(&format!(
                        "backlogctl_sysctl{{netns=\"{inode}\",name=\"net.core.somaxconn\"}} \
                         {somaxconn}\n"
                    )),
                    "{what}: namespace {inode} read from inside it (somaxconn {somaxconn}):\n{body}"
                );
            }
        };

        let e = Exporter::start(&["--all-netns"]);
        let m = e.get("/metrics");
        assert_eq!(m.status, 200);
        check("exporter", &m.body);
        // Its own listener is in its own namespace, held by itself.
        let owner = lines(&m.body, "backlogctl_listen_owner_info", &own);
        let port = format!("address=\"127.0.0.1\",port=\"{}\"", e.port);
        assert!(
            owner
                .iter()
                .any(|l| l.contains(&port) && l.contains(&format!("pid=\"{}\"", e.child.id()))),
            "the exporter's listener, owned by it, in its own namespace: {owner:?}"
        );
        assert!(
            !lines(&m.body, "backlogctl_listen_owner_info", &host)
                .iter()
                .any(|l| l.contains(&format!("pid=\"{}\"", e.child.id()))),
            "nothing of the exporter's is in the host's namespace"
        );
        let (code, _) = e.terminate();
        assert_eq!(code, Some(0));

        let (code, out, err) = run_bin(&["metrics", "--all-netns"]);
        assert_eq!(code, 0, "metrics --all-netns: {err}");
        check("metrics", &out);
    });
}

/// The exposition without the lines that differ from one scrape to the next.
fn stable(body: &str) -> String {
    body.lines()
        .filter(|l| {
            !l.starts_with("backlogctl_scrape_duration_seconds ")
                && !l.starts_with("backlogctl_scrapes_total{")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn gunzip(raw: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(raw)
        .read_to_string(&mut text)
        .expect("a gzip body");
    text
}

#[test]
fn gzip_is_negotiated_by_accept_encoding_and_decompresses_to_the_identity_body() {
    in_netns("gzip_is_negotiated_by_accept_encoding", || {
        // Enough listeners for an exposition well past the gzip threshold.
        let _servers: Vec<_> = (0..20)
            .map(|i| listener(&format!("127.0.0.1:{}", 8100 + i), 7))
            .collect();
        let e = Exporter::start(&[]);
        let get = |accept: &str, method: &str| {
            e.exchange(
                format!(
                    "{method} /metrics HTTP/1.1\r\nHost: t\r\n{accept}Connection: close\r\n\r\n"
                )
                .as_bytes(),
            )
        };
        let identity = get("", "GET");
        assert_eq!(identity.status, 200);
        assert_eq!(identity.header("content-encoding"), None);
        assert_eq!(identity.header("vary"), Some("Accept-Encoding"));
        assert!(identity.body.contains("port=\"8119\"") && identity.raw.len() > 4000);

        let gz = get("Accept-Encoding: gzip, deflate, br\r\n", "GET");
        assert_eq!(gz.status, 200);
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{}", gz.head);
        assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
        assert_eq!(
            gz.header("content-length"),
            Some(gz.raw.len().to_string().as_str())
        );
        let text = gunzip(&gz.raw);
        assert_eq!(stable(&text), stable(&identity.body));
        assert!(
            gz.raw.len() * 4 < identity.raw.len(),
            "{} bytes gzipped, {} identity",
            gz.raw.len(),
            identity.raw.len()
        );
        // This scrape counted itself, by encoding.
        assert!(text.contains("backlogctl_scrapes_total{encoding=\"gzip\"} 1\n"));
        assert!(text.contains("backlogctl_scrapes_total{encoding=\"identity\"} 1\n"));

        // gzip refused, even after `*`; `*` alone takes it.
        for (accept, gzipped) in [
            ("Accept-Encoding: *, gzip;q=0\r\n", false),
            ("Accept-Encoding: identity\r\n", false),
            ("Accept-Encoding: br;q=1, *;q=0.5\r\n", true),
        ] {
            let r = get(accept, "GET");
            assert_eq!(
                r.header("content-encoding").is_some(),
                gzipped,
                "{accept}: {}",
                r.head
            );
        }

        // HEAD: GET's headers, the compressed length, no body.
        let head = get("Accept-Encoding: gzip\r\n", "HEAD");
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-encoding"), Some("gzip"));
        assert_eq!(head.header("vary"), Some("Accept-Encoding"));
        assert!(head.raw.is_empty());
        let length: usize = head.header("content-length").unwrap().parse().unwrap();
        assert!(
            length.abs_diff(gz.raw.len()) < 64,
            "HEAD says {length}, a GET sent {}",
            gz.raw.len()
        );

        // Small bodies and errors stay as they were.
        let health = e.exchange(
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        );
        assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
        assert_eq!(health.header("content-encoding"), None);
        let missing = e.exchange(
            b"GET /nothing HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(missing.status, 404);
        assert!(missing.header("content-encoding").is_none() && missing.header("vary").is_none());
    });
}

/// A web config file for the certificates of `c`, with `extra` appended.
fn web_config(c: &common::certs::Certs, name: &str, extra: &str) -> String {
    let path = c.write(
        name,
        &format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}"),
    );
    path.to_string_lossy().into_owned()
}

fn https(e: &Exporter, path: &str) -> String {
    format!("https://localhost:{}{path}", e.port)
}

#[test]
fn https_with_basic_auth_client_certificates_and_a_certificate_reload() {
    const T: &str = "https_with_basic_auth_client_certificates";
    in_netns(T, || {
        use common::certs::{Certs, bcrypt_hash, curl};
        let Some(c) = Certs::make(T) else { return };
        let _server = listener("127.0.0.1:8100", 7);
        let config = web_config(
            &c,
            "web.yml",
            &format!(
                "basic_auth_users:\n  prometheus: {}\nhttp_server_config:\n  headers:\n    \
                 X-Content-Type-Options: nosniff\n",
                bcrypt_hash("s3cret:with colon")
            ),
        );
        let e = Exporter::start(&["--web.config.file", &config]);
        let ca = c.path("ca.crt");
        let ca = ca.to_str().unwrap();
        let resolve = format!("localhost:{}:127.0.0.1", e.port);
        let base = ["--cacert", ca, "--resolve", &resolve];
        let run = |extra: &[&str], path: &str| {
            let mut args: Vec<&str> = base.to_vec();
            args.extend(extra);
            let url = https(&e, path);
            args.push(&url);
            curl(T, &args)
        };
        let Some((code, head, _)) = run(&[], "/metrics") else {
            return;
        };
        assert_eq!(code, 0, "{head}");
        assert!(head.starts_with("HTTP/1.1 401"), "no credentials: {head}");
        assert!(head.contains("WWW-Authenticate: Basic"), "{head}");
        assert!(head.contains("X-Content-Type-Options: nosniff"), "{head}");
        let (_, head, _) = run(&["-u", "prometheus:wrong"], "/metrics").unwrap();
        assert!(head.starts_with("HTTP/1.1 401") && head.contains("WWW-Authenticate: Basic"));
        // /healthz is not excluded by this file: the toolkit exempts nothing by itself.
        let (_, head, _) = run(&[], "/healthz").unwrap();
        assert!(head.starts_with("HTTP/1.1 401"), "{head}");
        let (code, head, body) = run(
            &["-u", "prometheus:s3cret:with colon", "--compressed"],
            "/metrics",
        )
        .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(code, 0);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("Content-Encoding: gzip"), "{head}");
        assert!(
            body.contains("address=\"127.0.0.1\",port=\"8100\"} 7\n"),
            "{body}"
        );
        let (_, head, body) =
            run(&["-u", "prometheus:s3cret:with colon", "-I"], "/metrics").unwrap();
        assert!(head.starts_with("HTTP/1.1 200") && body.starts_with(b"HTTP/1.1 200"));

        // A silent TLS client, half a ClientHello, garbage and plain HTTP, all held open,
        // while a good scrape is served.
        let silent = e.connect();
        let mut half = e.connect();
        half.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            .unwrap();
        let mut garbage = e.connect();
        garbage.write_all(b"\x00\x01\x02\x03garbage").unwrap();
        let plain = e.exchange(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(plain.status, 400);
        assert!(
            plain.body.contains("HTTP request to an HTTPS server"),
            "{}",
            plain.body
        );
        let (code, head, _) = run(&["-u", "prometheus:s3cret:with colon"], "/metrics").unwrap();
        assert!(code == 0 && head.starts_with("HTTP/1.1 200"), "{head}");
        // Garbage is closed at once, without a word.
        let mut rest = Vec::new();
        garbage.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        drop((silent, half));

        // At the connection cap, TLS clients that never sent a byte are idle like plain ones:
        // one is closed to make room for a scrape.
        {
            let capped = Exporter::start(&["--web.config.file", &config, "--max-connections", "2"]);
            let silent: Vec<TcpStream> = (0..2).map(|_| capped.connect()).collect();
            let resolve = format!("localhost:{}:127.0.0.1", capped.port);
            let url = https(&capped, "/metrics");
            // The silent clients' threads may not wait for their first byte yet: polled.
            let served = wait_for(100, || {
                let (code, head, _) = curl(
                    T,
                    &[
                        "--cacert",
                        ca,
                        "--resolve",
                        &resolve,
                        "-u",
                        "prometheus:s3cret:with colon",
                        &url,
                    ],
                )?;
                (code == 0 && head.starts_with("HTTP/1.1 200")).then_some(())
            });
            assert!(
                served.is_some(),
                "a scrape at the cap, past two silent TLS clients"
            );
            drop(silent);
        }

        // A new certificate (of another CA) on disk: the next connection gets it.
        std::fs::copy(c.path("server.crt"), c.path("orig.crt")).unwrap();
        std::fs::copy(c.path("server.key"), c.path("orig.key")).unwrap();
        std::fs::copy(c.path("server2.crt"), c.path("server.crt")).unwrap();
        std::fs::copy(c.path("server2.key"), c.path("server.key")).unwrap();
        let ca2 = c.path("ca2.crt");
        let url = https(&e, "/metrics");
        let (code, head, _) = curl(
            T,
            &[
                "--cacert",
                ca2.to_str().unwrap(),
                "--resolve",
                &resolve,
                "-u",
                "prometheus:s3cret:with colon",
                &url,
            ],
        )
        .unwrap();
        assert!(
            code == 0 && head.starts_with("HTTP/1.1 200"),
            "after the reload: {head}"
        );
        let (code, _, _) = run(&[], "/metrics").unwrap();
        assert_ne!(code, 0, "the old CA no longer verifies the server");
        // A broken pair on disk: the last good one stays, said once.
        std::fs::write(c.path("server.key"), "not a key").unwrap();
        let (code, ..) = curl(
            T,
            &[
                "--cacert",
                ca2.to_str().unwrap(),
                "--resolve",
                &resolve,
                "-u",
                "prometheus:s3cret:with colon",
                &url,
            ],
        )
        .unwrap();
        assert_eq!(code, 0, "still served with the last good certificate");
        let (status, said) = e.terminate();
        assert_eq!(status, Some(0));
        assert!(said.contains("TLS certificate reloaded"), "{said}");
        assert_eq!(
            said.matches("keeping the last TLS certificate").count(),
            1,
            "{said}"
        );

        // Client certificates required: none fails the handshake, one the CA signed passes.
        let config = web_config(
            &c,
            "mtls.yml",
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
             client_allowed_sans: [scraper.test]\n",
        );
        // The first CA's server pair again.
        std::fs::copy(c.path("orig.crt"), c.path("server.crt")).unwrap();
        std::fs::copy(c.path("orig.key"), c.path("server.key")).unwrap();
        let e = Exporter::start(&["--web.config.file", &config]);
        let url = https(&e, "/metrics");
        let resolve = format!("localhost:{}:127.0.0.1", e.port);
        let (code, head, _) = curl(T, &["--cacert", ca, "--resolve", &resolve, &url]).unwrap();
        assert_ne!(code, 0, "no client certificate: {head}");
        // curl presenting the certificate NAME.crt with its key.
        let with_cert = |name: &str| {
            let (crt, key) = (
                c.path(&format!("{name}.crt")),
                c.path(&format!("{name}.key")),
            );
            let (crt, key) = (crt.to_str().unwrap(), key.to_str().unwrap());
            curl(
                T,
                &[
                    "--cacert",
                    ca,
                    "--resolve",
                    &resolve,
                    "--cert",
                    crt,
                    "--key",
                    key,
                    &url,
                ],
            )
            .unwrap()
        };
        let (code, head, _) = with_cert("client");
        assert!(
            code == 0 && head.starts_with("HTTP/1.1 200"),
            "with one: {head}"
        );
        // Signed by the CA, but naming none of client_allowed_sans: refused.
        let (code, head, _) = with_cert("stranger");
        assert_ne!(code, 0, "a certificate outside client_allowed_sans: {head}");
        // A certificate of another CA is refused.
        let (code, ..) = with_cert("server2");
        assert_ne!(code, 0, "a client certificate of another CA");
    });
}

#[test]
fn bad_web_config_files_are_one_error_line_and_exit_3() {
    const T: &str = "bad_web_config_files";
    use common::certs::{Certs, bcrypt_hash};
    let Some(c) = Certs::make(T) else { return };
    c.write("garbage.key", "-----BEGIN PRIVATE KEY-----\nnot base64\n");
    let hash = bcrypt_hash("x");
    let tls = |cert: &str, key: &str| {
        format!("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
    };
    let cases = [
        (tls("missing.crt", "server.key"), "cert_file: cannot read"),
        (
            tls("server.crt", "garbage.key"),
            "no usable PEM private key",
        ),
        (
            tls("server.crt", "server2.key"),
            "does not match the certificate",
        ),
        (
            "tls_server_config: {cert_file: a\n".into(),
            "web.config.file",
        ),
        (
            format!(
                "{}  client_auth: RequireAndVerifyClientCert\n",
                tls("server.crt", "server.key")
            ),
            "unknown field `client_auth`",
        ),
        (
            "basic_auth_users:\n  alice: plaintext\n".into(),
            "\"alice\" is not a bcrypt hash",
        ),
        (
            format!(
                "{}  client_auth_type: RequireAndVerifyClientCert\n",
                tls("server.crt", "server.key")
            ),
            "needs client_ca_file",
        ),
        (
            format!(
                "basic_auth_users:\n  alice: {hash}\nhttp_server_config:\n  headers:\n    \
                 Authorization: x\n"
            ),
            "http_server_config.headers: unknown field `Authorization`, expected one of",
        ),
    ];
    for (i, (yaml, says)) in cases.iter().enumerate() {
        let path = c.write(&format!("bad{i}.yml"), yaml);
        let (code, out, err) = run_bin(&[
            "exporter",
            "--listen",
            "127.0.0.1:0",
            "--web.config.file",
            path.to_str().unwrap(),
        ]);
        assert_eq!(code, 3, "{yaml}: {err}");
        assert!(out.is_empty(), "nothing served: {out}");
        assert!(
            err.starts_with(&format!("error: --web.config.file {}: ", path.display()))
                && err.contains(says)
                && err.lines().count() == 1,
            "{yaml}: {err}"
        );
    }
    let (code, _, err) = run_bin(&["exporter", "--web.config.file", "/nonexistent/web.yml"]);
    assert!(
        code == 3 && err.contains("cannot read it: No such file"),
        "{err}"
    );
}

/// The file node_exporter users already have works unchanged: exporter-toolkit's example
/// `docs/web-config.yml`, key for key — relative `server.crt`/`server.key`, two users with
/// `$2y$10$` hashes (ours, so that the test knows a password), and the example's
/// `basic_auth_excluded_paths`.
#[test]
fn exporter_toolkits_example_web_config_works_unchanged() {
    const T: &str = "exporter_toolkits_example_web_config";
    in_netns(T, || {
        use common::certs::{Certs, curl};
        let Some(c) = Certs::make(T) else { return };
        let cost10 = |p: &str| bcrypt::hash(p, 10).unwrap().replacen("$2b$", "$2y$", 1);
        let config = c.write(
            "web-config.yml",
            &format!(
                "# TLS and basic authentication configuration example.\n#\n\
                 # Additionally, a certificate and a key file are needed.\n\
                 tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\n\
                 # Usernames and passwords required to connect.\n\
                 basic_auth_users:\n  alice: {}\n  bob: {}\n\n\
                 # Exclude /-/healthy and /-/ready from basic authentication\n\
                 basic_auth_excluded_paths:\n- /-/healthy\n- /-/ready\n",
                cost10("alice-pw"),
                cost10("bob-pw")
            ),
        );
        // Started from elsewhere: the paths are relative to the file, as in the toolkit.
        let e = Exporter::start(&["--web.config.file", config.to_str().unwrap()]);
        let ca = c.path("ca.crt");
        let resolve = format!("localhost:{}:127.0.0.1", e.port);
        let get = |user: Option<&str>, path: &str| {
            let url = https(&e, path);
            let mut args = vec!["--cacert", ca.to_str().unwrap(), "--resolve", &resolve];
            if let Some(u) = user {
                args.extend(["-u", u]);
            }
            args.push(&url);
            curl(T, &args).map(|(_, head, _)| head)
        };
        let Some(head) = get(None, "/metrics") else {
            return;
        };
        assert!(head.starts_with("HTTP/1.1 401"), "{head}");
        // Excluded from auth: no such page here, so a 404, not a 401.
        assert!(get(None, "/-/healthy").unwrap().starts_with("HTTP/1.1 404"));
        for user in ["alice:alice-pw", "bob:bob-pw"] {
            let head = get(Some(user), "/metrics").unwrap();
            assert!(head.starts_with("HTTP/1.1 200"), "{user}: {head}");
        }
        assert!(
            get(Some("alice:bob-pw"), "/metrics")
                .unwrap()
                .starts_with("HTTP/1.1 401")
        );
    });
}
