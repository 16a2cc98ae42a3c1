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
}

impl Response {
    fn parse(bytes: &[u8]) -> Response {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        Response {
            status,
            head: head.to_string(),
            body: body.to_string(),
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
            let post = e.exchange(b"POST /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
            assert_eq!(
                (post.status, post.header("allow")),
                (405, Some("GET, HEAD"))
            );
            let head = e.exchange(b"HEAD /metrics HTTP/1.0\r\n\r\n");
            assert!(head.status == 200 && head.body.is_empty(), "{}", head.head);

            // Too large a head, a body, garbage: a status and a closed connection, never a hang.
            let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
            assert_eq!(e.exchange(big.as_bytes()).status, 431);
            assert_eq!(
                e.exchange(b"GET / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789")
                    .status,
                413
            );
            assert_eq!(e.exchange(b"\x16\x03\x01\x02\x00\x01\r\n\r\n").status, 400);

            // Two requests on one kept-alive connection.
            let mut s = e.connect();
            s.write_all(
                b"GET /healthz HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
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
                        s.write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
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
                assert!(r.body.ends_with("} 1\n") && r.body.contains("backlogctl_build_info"));
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

    // The namespace goes away: its series go with it at the next scrape.
    drop(sockets);
    drop(ns);
    let gone = wait_for(500, || {
        let m = e.get("/metrics");
        (!m.body.contains(&netns)).then_some(())
    });
    assert!(gone.is_some(), "series of a deleted namespace disappear");
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
