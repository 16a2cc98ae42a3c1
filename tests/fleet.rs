//! End to end with the real engine: Debian's `prometheus` scrapes `backlogctl exporter
//! --all-netns` every second and evaluates the project's own `deploy/prometheus/alerts.yml`;
//! a listener overflows in a network namespace of its own; over Prometheus's HTTP API, the
//! listener's drop series is there with its namespace and process, and
//! BacklogctlListenerDropping reaches `firing`. The alert's `for:` is shortened to seconds in
//! a copy of the rules; nothing else is changed. Each wait is a bounded number of polls of the
//! API; the namespace, the exporter and Prometheus are stopped by PID and removed. Needs root,
//! iproute2 and the prometheus package: skipped with the reason without them, failed under
//! CI=true. A second test has Prometheus scrape over HTTPS with basic auth (certificates made
//! by openssl): up with the right password and gzip negotiated, down with a wrong one.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// Whatever this test started, stopped and removed when it ends, passing or not.
#[derive(Default)]
struct Started {
    children: Vec<Child>,
    netns: Option<String>,
    dir: Option<PathBuf>,
}

impl Drop for Started {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(n) = &self.netns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Starts `backlogctl ARGS` (an exporter) and returns the ADDR:PORT its first line says it
/// serves on over `scheme`.
fn start_exporter(args: &[&str], scheme: &str, started: &mut Started) -> String {
    let mut exporter = Command::new(bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("exporter");
    let mut first = String::new();
    BufReader::new(exporter.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    started.children.push(exporter);
    first
        .trim_end()
        .strip_prefix(&format!("backlogctl exporter: serving {scheme}://"))
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("exporter said {first:?}"))
        .to_string()
}

/// Starts the Prometheus server on `dir`'s prometheus.yml, its data and log in `dir`, on a
/// free loopback port, which it returns.
fn start_prometheus(prometheus: &Path, dir: &Path, started: &mut Started) -> u16 {
    let port = free_port();
    let prom = Command::new(prometheus)
        .current_dir(dir)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("prometheus.log")).unwrap(),
        ))
        .spawn()
        .expect("prometheus");
    started.children.push(prom);
    port
}

fn skip(why: &str) {
    common::skip(
        "prometheus_scrapes_the_exporter_and_the_dropping_alert_fires",
        why,
    );
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET on Prometheus's API; the `data` of a successful answer.
fn api(port: u16, path_and_query: &str) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    // Go's server may answer chunked: the JSON object is between the first { and the last }.
    let json = &body[body.find('{')?..=body.rfind('}')?];
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    (v["status"] == "success").then(|| v["data"].clone())
}

#[test]
fn prometheus_scrapes_the_exporter_and_the_dropping_alert_fires() {
    if !nix::unistd::geteuid().is_root() {
        return skip("needs root for ip netns and setns");
    }
    let Ok(prometheus) = which("prometheus") else {
        return skip("no prometheus server (Debian package prometheus)");
    };
    let mut started = Started::default();
    let name = format!("blt-prom-{}", std::process::id());
    if !Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .is_ok_and(|s| s.success())
    {
        return skip("`ip netns add` failed (iproute2)");
    }
    started.netns = Some(name.clone());
    let dir = std::env::temp_dir().join(format!("blt-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    started.dir = Some(dir.clone());
    let inode = std::fs::metadata(format!("/run/netns/{name}"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();

    // The overflow: somaxconn 5, nobody accepting, and a client connecting every 100 ms for
    // the length of the test, so the listener keeps dropping (rate > 0), as in an incident.
    let path = format!("/run/netns/{name}");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let load = std::thread::spawn(move || {
        use backlogctl::source::netns::{Which, enter, loopback_up};
        enter(&Which::Named(path)).unwrap();
        loopback_up().unwrap();
        set_sysctl("net.core.somaxconn", 5);
        let mut fds = vec![listener("127.0.0.1:8100", 100)];
        for _ in 0..600 {
            fds.push(start_connect("127.0.0.1:8100"));
            if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                break;
            }
        }
        fds
    });

    let exporter_addr = start_exporter(
        &["exporter", "--all-netns", "--listen", "127.0.0.1:0"],
        "http",
        &mut started,
    );

    // The project's rules, with `for:` in seconds so that pending turns firing within the test.
    let rules = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml"),
    )
    .unwrap();
    let fast: String = rules
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 5s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(fast, rules, "the rules have a `for:` to shorten");
    std::fs::write(dir.join("alerts.yml"), fast).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [alerts.yml]\n\
             scrape_configs:\n  - job_name: backlogctl\n    static_configs:\n      - targets: ['{exporter_addr}']\n"
        ),
    )
    .unwrap();
    let web = start_prometheus(&prometheus, &dir, &mut started);

    // Each wait polls Prometheus's API at most 240 times, 250 ms apart: about a minute.
    let log = || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let poll = |what: &str, probe: &dyn Fn() -> Option<serde_json::Value>| {
        for _ in 0..240 {
            if let Some(v) = probe() {
                return v;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("{what} not seen in 240 tries; prometheus said:\n{}", log());
    };

    // The drop series of that listener, labelled with its namespace, rising.
    let selector = format!(
        "rate(backlogctl_listen_drops_total{{netns=\"{inode}\",address=\"127.0.0.1\",port=\"8100\"}}[1m]) > 0"
    );
    let query = format!("/api/v1/query?query={}", percent_encode(&selector));
    let series = poll("a rising drop series of the listener", &|| {
        let data = api(web, &query)?;
        data["result"].as_array()?.first().cloned()
    });
    assert_eq!(series["metric"]["job"], "backlogctl");
    // Its process: the test process holds the listener.
    let owner = format!(
        "/api/v1/query?query={}",
        percent_encode(&format!(
            "backlogctl_listen_owner_info{{netns=\"{inode}\",port=\"8100\"}}"
        ))
    );
    let owner = poll("the listener's owner", &|| {
        api(web, &owner)?["result"].as_array()?.first().cloned()
    });
    assert_eq!(
        owner["metric"]["pid"],
        std::process::id().to_string(),
        "{owner}"
    );
    let process = owner["metric"]["process"].as_str().unwrap().to_string();

    // The project's alert, for that listener, firing.
    let alert = poll("BacklogctlListenerDropping firing", &|| {
        let data = api(web, "/api/v1/alerts")?;
        data["alerts"]
            .as_array()?
            .iter()
            .find(|a| {
                a["labels"]["alertname"] == "BacklogctlListenerDropping"
                    && a["labels"]["netns"] == inode.to_string().as_str()
                    && a["state"] == "firing"
            })
            .cloned()
    });
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["name"], name.as_str(), "{alert}");
    let summary = alert["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("process {process} (pid {})", std::process::id()))
            && summary.contains("127.0.0.1:8100"),
        "{summary}"
    );
    let runbook = alert["annotations"]["runbook"].as_str().unwrap();
    assert!(
        runbook.contains(&format!(
            "backlogctl doctor --pid {} :8100",
            std::process::id()
        )),
        "{runbook}"
    );

    let _ = tx.send(());
    drop(load.join());
}

fn which(cmd: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
        .ok_or(())
}

/// The real Prometheus scrapes the exporter over HTTPS with basic auth, trusting a CA made for
/// the test: the target with the right password is up with our series, gzip negotiated (by
/// Prometheus's default Accept-Encoding, counted by the exporter); the target with a wrong
/// password is down (up == 0). Needs no namespace: the exporter serves its own.
#[test]
fn prometheus_scrapes_over_https_with_basic_auth_and_gzip() {
    const T: &str = "prometheus_scrapes_over_https_with_basic_auth_and_gzip";
    let Ok(prometheus) = which("prometheus") else {
        return common::skip(T, "no prometheus server (Debian package prometheus)");
    };
    let Some(certs) = common::certs::Certs::make(T) else {
        return;
    };
    let mut started = Started::default();
    let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web = certs.write(
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  prometheus: {}\n",
            common::certs::bcrypt_hash("scrape-secret")
        ),
    );
    let web = web.to_str().unwrap();
    let target = start_exporter(
        &[
            "exporter",
            "--listen",
            "127.0.0.1:0",
            "--web.config.file",
            web,
        ],
        "https",
        &mut started,
    );

    let ca = certs.path("ca.crt");
    let job = |name: &str, password: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {}\n    \
             basic_auth:\n      username: prometheus\n      password: {password}\n    \
             static_configs:\n      - targets: ['{target}']\n",
            ca.display()
        )
    };
    std::fs::write(
        certs.path("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}",
            job("good", "scrape-secret"),
            job("bad", "wrong")
        ),
    )
    .unwrap();
    let port = start_prometheus(&prometheus, &certs.dir, &mut started);

    let log = || std::fs::read_to_string(certs.path("prometheus.log")).unwrap_or_default();
    let value = |query: &str| -> Option<f64> {
        let data = api(
            port,
            &format!("/api/v1/query?query={}", percent_encode(query)),
        )?;
        data["result"].as_array()?.first()?["value"][1]
            .as_str()?
            .parse()
            .ok()
    };
    let poll = |what: &str, probe: &dyn Fn() -> bool| {
        for _ in 0..240 {
            if probe() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("{what} not seen in 240 tries; prometheus said:\n{}", log());
    };
    poll("the good target up", &|| {
        value("up{job=\"good\"}") == Some(1.0)
    });
    poll("the bad target scraped and down", &|| {
        value("up{job=\"bad\"}") == Some(0.0)
    });
    poll("our series through the good target", &|| {
        value("backlogctl_build_info{job=\"good\"}") == Some(1.0)
    });
    // Every scrape Prometheus made was answered gzipped: it asks for gzip by default.
    poll("gzip negotiated", &|| {
        value("backlogctl_scrapes_total{job=\"good\",encoding=\"gzip\"}").is_some_and(|n| n >= 1.0)
    });
    assert_eq!(
        value("backlogctl_scrapes_total{job=\"good\",encoding=\"identity\"}"),
        Some(0.0),
        "no scrape answered without gzip"
    );
    assert_eq!(
        value("count(backlogctl_build_info{job=\"bad\"})"),
        None,
        "nothing ingested with the wrong password"
    );
}
