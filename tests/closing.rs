//! Closing the loop on real servers, each in a private network namespace: a burst overflows
//! the accept queue, `doctor --json` prints its plan, the test carries the plan out as an
//! operator would (every printed command run as printed, in `sh -c`; the setting a step names
//! changed to the value it gives; the re-listen the plan asks for), and the next `doctor`
//! asks for nothing more. The host's somaxconn stays untouched. Python (a plain socket
//! server), Node.js and nginx (master + worker, reloaded with SIGHUP); every holder named as
//! `ss -p` names it.
//!
//! Needs root, and python3, node, nginx (Debian package nginx-light), ss (iproute2); the
//! printed commands use nsenter (util-linux) and sysctl (procps). A test whose server or tool
//! is missing is skipped with a printed reason, and fails under CI=true.

mod common;

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};

use backlogctl::collect::{self, Kernel, Sampling};
use backlogctl::model::Scope;
use backlogctl::model::Target;
use common::*;
use serde_json::Value;

const SMALL: u32 = 16;

/// (Send-Q, Recv-Q) of the listener on `port` in the calling thread's namespace.
fn queue(port: u16) -> Option<(u32, u32)> {
    let scope = Scope::new(vec![Target::parse(&format!(":{port}")).ok()?]);
    let (snap, _) = collect::record(Kernel::default(), &scope, &Sampling::ONCE).ok()?;
    let l = snap.last()?.listeners.first()?.clone();
    Some((l.send_q, l.recv_q))
}

fn doctor(port: u16) -> (i32, Value) {
    let (code, out, err) = run_bin(&["doctor", "--json", "--window", "300ms", &format!(":{port}")]);
    let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, json)
}

fn ids(rep: &Value) -> BTreeSet<String> {
    rep["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn signal(pids: &[u32], sig: &str) {
    for pid in pids {
        let _ = Command::new("kill")
            .args([sig, &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// The process and its children (nginx's workers).
fn family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(pid) {
                out.push(child);
            }
        }
    }
    out
}

/// Connects that overflow a queue of `SMALL`+1, kept open until dropped.
fn burst(port: u16, n: usize) -> Vec<OwnedFd> {
    (0..n)
        .map(|_| start_connect(&format!("127.0.0.1:{port}")))
        .collect()
}

/// A server under test: started with a backlog, restarted by the test when the plan says so.
trait Server {
    fn name(&self) -> &'static str;
    fn port(&self) -> u16;
    fn start(&mut self, backlog: u32) -> Child;
    /// Changes the backlog setting without restarting (nginx's config file); false when the
    /// runtime only takes it at start.
    fn set_backlog(&mut self, _backlog: u32) -> bool {
        false
    }
    /// Children of the started process that hold the listener too (nginx's workers).
    fn workers(&self) -> usize {
        0
    }
}

/// The processes holding the listener once the server has settled: the one started and its
/// `workers()` children, none of them one of `old` (the workers from before a reload, which
/// nginx tells to quit once the new ones run). Stopping all of them leaves nobody to accept().
fn settled_holders(server: &dyn Server, pid: u32, old: &[u32]) -> Vec<u32> {
    let want = 1 + server.workers();
    wait_for(500, || {
        let f = family(pid);
        (f.len() == want && f[1..].iter().all(|p| !old.contains(p))).then_some(f)
    })
    .unwrap_or_else(|| {
        panic!(
            "{}: want pid {pid} and {} new worker(s), have {:?}",
            server.name(),
            want - 1,
            family(pid)
        )
    })
}

struct Python;
impl Server for Python {
    fn name(&self) -> &'static str {
        "python3"
    }
    fn port(&self) -> u16 {
        8301
    }
    fn start(&mut self, backlog: u32) -> Child {
        Command::new("python3")
            .args([
                "-c",
                "import socket,sys,time\n\
                 s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                 s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(int(sys.argv[2])); time.sleep(120)",
                &self.port().to_string(),
                &backlog.to_string(),
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("python3")
    }
}

struct Node;
impl Server for Node {
    fn name(&self) -> &'static str {
        "node"
    }
    fn port(&self) -> u16 {
        8302
    }
    fn start(&mut self, backlog: u32) -> Child {
        Command::new("node")
            .args([
                "-e",
                "require('net').createServer(c => {}).listen({port: +process.argv[1], host: '127.0.0.1', backlog: +process.argv[2]}); setTimeout(() => {}, 120000)",
                &self.port().to_string(),
                &backlog.to_string(),
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("node")
    }
}

const NGINX_WORKERS: usize = 1;

struct Nginx {
    dir: std::path::PathBuf,
}
impl Nginx {
    fn conf(&self, backlog: u32) {
        let d = self.dir.display();
        std::fs::write(
            self.dir.join("nginx.conf"),
            format!(
                "daemon off; master_process on; worker_processes {NGINX_WORKERS}; pid {d}/nginx.pid;\n\
                 error_log {d}/error.log; events {{}}\n\
                 http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};\n\
                 fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
                 server {{ listen 127.0.0.1:{} backlog={backlog}; }} }}\n",
                self.port()
            ),
        )
        .expect("nginx.conf");
    }
}
impl Server for Nginx {
    fn name(&self) -> &'static str {
        "nginx"
    }
    fn port(&self) -> u16 {
        8303
    }
    fn start(&mut self, backlog: u32) -> Child {
        self.conf(backlog);
        Command::new("nginx")
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .spawn()
            .expect("nginx")
    }
    fn set_backlog(&mut self, backlog: u32) -> bool {
        self.conf(backlog);
        true
    }
    fn workers(&self) -> usize {
        NGINX_WORKERS
    }
}

/// The loop, inside the calling thread's private namespace. Returns what the last doctor said.
fn close_the_loop(server: &mut dyn Server) -> (i32, Value) {
    let port = server.port();
    set_sysctl("net.core.somaxconn", 128);
    let mut child = server.start(SMALL);
    wait_for(1000, || (queue(port)? == (SMALL, 0)).then_some(()))
        .unwrap_or_else(|| panic!("{}: no listener with backlog {SMALL}", server.name()));
    // Once the workers are up, stop every holder so nothing accepts.
    let holders = settled_holders(&*server, child.id(), &[]);
    signal(&holders, "-STOP");
    let clients = burst(port, 3 * SMALL as usize);
    wait_for(500, || (queue(port)? == (SMALL, SMALL + 1)).then_some(()))
        .unwrap_or_else(|| panic!("{}: the queue did not fill", server.name()));
    let (code, rep) = doctor(port);
    assert_eq!(code, 2, "{}: {rep}", server.name());
    assert!(ids(&rep).contains("accept-queue-overflow"), "{rep}");
    let f = &rep["findings"][0];
    let steps = f["fix"]["steps"]
        .as_array()
        .expect("structured steps")
        .clone();
    // Every finding of the listener carries the same plan.
    for g in rep["findings"].as_array().unwrap() {
        if !g["fix"]["plan"].is_null() {
            assert_eq!(g["fix"]["steps"], f["fix"]["steps"], "{}", g["id"]);
        }
    }
    let target = f["fix"]["target_backlog"].as_u64().expect("a target") as u32;
    assert_eq!(target, 4096, "{}", server.name());

    drop(clients);
    signal(&holders, "-CONT");
    let mut relisten = None;
    for step in &steps {
        let action = &step["action"];
        match action["do"].as_str().unwrap() {
            "sysctl" => {
                let cmd = step["command"].as_str().expect("a sysctl command");
                assert!(
                    cmd.starts_with("nsenter -t ")
                        && cmd.contains(" -n sysctl -w net.core.somaxconn="),
                    "{cmd}: an unnamed namespace is entered through a process"
                );
                let ok = Command::new("sh")
                    .args(["-c", cmd])
                    .stdout(Stdio::null())
                    .status()
                    .expect("sh");
                assert!(ok.success(), "{cmd}");
            }
            "app-backlog" => {
                assert_eq!(action["value"].as_u64(), Some(u64::from(target)));
                if !server.set_backlog(target) {
                    relisten = Some(None);
                }
            }
            "relisten" => match step["command"].as_str() {
                Some(cmd) => {
                    assert_eq!(action["how"], "reload", "{step}");
                    let ok = Command::new("sh").args(["-c", cmd]).status().expect("sh");
                    assert!(ok.success(), "{cmd}");
                    relisten = Some(Some(()));
                }
                None => {
                    assert_eq!(action["how"], "restart", "{step}");
                    let _ = child.kill();
                    let _ = child.wait();
                    wait_for(1000, || queue(port).is_none().then_some(()))
                        .expect("old listener gone");
                    child = server.start(target);
                    relisten = Some(Some(()));
                }
            },
            _ => {}
        }
    }
    assert_eq!(
        relisten,
        Some(Some(())),
        "{}: the plan re-listens",
        server.name()
    );
    wait_for(1000, || (queue(port)?.0 == target).then_some(()))
        .unwrap_or_else(|| panic!("{}: backlog did not become {target}", server.name()));
    // The same burst again, once the reload's new workers have replaced the old ones: the
    // queue now absorbs it.
    let holders = settled_holders(&*server, child.id(), &holders);
    signal(&holders, "-STOP");
    let clients = burst(port, 3 * SMALL as usize);
    wait_for(500, || (queue(port)?.1 == 3 * SMALL).then_some(()))
        .unwrap_or_else(|| panic!("{}: burst not queued", server.name()));
    let after = doctor(port);
    drop(clients);
    signal(&holders, "-CONT");
    let _ = child.kill();
    let _ = child.wait();
    // nginx's master runs its worker: make sure none outlives the test.
    signal(&holders, "-KILL");
    after
}

fn host_somaxconn() -> String {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap_or_default()
}

#[test]
fn python_plan_ends_clean() {
    if !need("python_plan_ends_clean", "python3", "-V", "python3") {
        return;
    }
    let host = host_somaxconn();
    let Some((code, rep)) = in_netns("python_plan_ends_clean", || close_the_loop(&mut Python))
    else {
        return;
    };
    assert_eq!(ids(&rep), BTreeSet::new(), "{rep}");
    assert_eq!(code, 0);
    assert_eq!(host_somaxconn(), host, "the host's somaxconn was touched");
}

#[test]
fn node_plan_ends_clean() {
    if !need("node_plan_ends_clean", "node", "--version", "nodejs") {
        return;
    }
    let host = host_somaxconn();
    let Some((code, rep)) = in_netns("node_plan_ends_clean", || close_the_loop(&mut Node)) else {
        return;
    };
    assert_eq!(ids(&rep), BTreeSet::new(), "{rep}");
    assert_eq!(code, 0);
    assert_eq!(host_somaxconn(), host, "the host's somaxconn was touched");
}

/// nginx keeps its socket across the reload: the old drops stay, and doctor says only that,
/// with a check to run — not a bigger backlog.
#[test]
fn nginx_reload_plan_asks_for_nothing_more() {
    if !need(
        "nginx_reload_plan_asks_for_nothing_more",
        "nginx",
        "-v",
        "nginx-light",
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("backlogctl-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let host = host_somaxconn();
    let d = dir.clone();
    let result = in_netns("nginx_reload_plan_asks_for_nothing_more", move || {
        close_the_loop(&mut Nginx { dir: d })
    });
    let _ = std::fs::remove_dir_all(&dir);
    let Some((code, rep)) = result else { return };
    assert_eq!(
        ids(&rep),
        BTreeSet::from(["accept-queue-dropped".to_string()]),
        "{rep}"
    );
    assert_eq!(code, 1);
    assert!(
        rep["plans"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["steps"].as_array().unwrap())
            .all(|s| s["kind"] == "check")
    );
    assert_eq!(host_somaxconn(), host, "the host's somaxconn was touched");
}

/// Every holder named, as `ss -ltnp` does: nginx's master and its workers.
#[test]
fn every_holder_is_named_like_ss_does() {
    let test = "every_holder_is_named_like_ss_does";
    if !need(test, "nginx", "-v", "nginx-light") || !need(test, "ss", "-V", "iproute2") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("backlogctl-holders-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.clone();
    let result = in_netns("every_holder_is_named_like_ss_does", move || {
        let nginx = Nginx { dir: d.clone() };
        nginx.conf(SMALL);
        let conf = std::fs::read_to_string(d.join("nginx.conf"))
            .unwrap()
            .replace("worker_processes 1;", "worker_processes 3;");
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let mut child = Command::new("nginx")
            .arg("-e")
            .arg(d.join("error.log"))
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .stdin(Stdio::null())
            .spawn()
            .expect("nginx");
        let port = nginx.port();
        wait_for(1000, || queue(port).map(|_| ())).expect("nginx listens");
        wait_for(1000, || (family(child.id()).len() == 4).then_some(())).expect("3 workers");
        let ss = Command::new("ss")
            .args(["-ltnpH", &format!("sport = :{port}")])
            .output()
            .unwrap();
        let ss = String::from_utf8_lossy(&ss.stdout).into_owned();
        let mut from_ss: Vec<u64> = ss
            .split("pid=")
            .skip(1)
            .filter_map(|p| p.split(',').next()?.parse().ok())
            .collect();
        from_ss.sort_unstable();
        let (code, rep) = doctor(port);
        let mut ours: Vec<u64> = rep["listeners"][0]["owners"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["pid"].as_u64())
            .collect();
        ours.sort_unstable();
        let label = rep["findings"][0]["summary"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let holders = family(child.id());
        let _ = child.kill();
        let _ = child.wait();
        signal(&holders, "-KILL");
        (code, from_ss, ours, label)
    });
    let _ = std::fs::remove_dir_all(&dir);
    let Some((_, from_ss, ours, label)) = result else {
        return;
    };
    assert_eq!(from_ss.len(), 4, "ss shows the master and 3 workers");
    assert_eq!(ours, from_ss, "doctor names what ss names");
    assert!(label.contains("nginx: master"), "{label}");
}

/// A listener opened late (past the first descriptors) and inherited by forked children: every
/// holder is still named, as `ss -p` does.
#[test]
fn a_late_listener_names_all_its_holders() {
    if !need(
        "a_late_listener_names_all_its_holders",
        "python3",
        "-V",
        "python3",
    ) {
        return;
    }
    let got = in_netns("a_late_listener_names_all_its_holders", || {
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import socket, os, time\n\
                 files = [open('/dev/null') for _ in range(40)]\n\
                 s = socket.socket(); s.bind(('127.0.0.1', 8304)); s.listen(5)\n\
                 for _ in range(2):\n    if os.fork() == 0:\n        time.sleep(60); os._exit(0)\n\
                 time.sleep(60)",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("python3");
        wait_for(1000, || queue(8304).map(|_| ())).expect("listening");
        wait_for(1000, || (family(child.id()).len() == 3).then_some(())).expect("2 children");
        let (code, out, err) = run_bin(&["snapshot", ":8304"]);
        let holders = family(child.id());
        let _ = child.kill();
        let _ = child.wait();
        signal(&holders, "-KILL");
        assert_eq!(code, 0, "{err}");
        let snap: Value = serde_json::from_str(&out).unwrap();
        let mut pids: Vec<u64> = snap["owners"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["pid"].as_u64())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        let mut want: Vec<u64> = holders.iter().map(|p| u64::from(*p)).collect();
        want.sort_unstable();
        (pids, want)
    });
    if let Some((pids, want)) = got {
        assert_eq!(pids, want, "the parent and both children");
    }
}
