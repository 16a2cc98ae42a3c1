//! Fixes in the words of the runtime that owns the socket, and of the place somaxconn lives
//! (host sysctl.d, or the container's own namespace). Runtime defaults and knobs: KERNEL.md §7;
//! order of preference: §8. Pure: decides from the owner's comm/cmdline and the netns facts.

use crate::model::{Netns, Owner};

/// A server runtime we know the backlog knob of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Java,
    Nginx,
    Node,
    Gunicorn,
    Uvicorn,
    PythonHttpServer,
    Python,
    Redis,
    Postgres,
    Haproxy,
    Envoy,
    Httpd,
}

/// The runtime of a listener's owner, from `comm` and the command line.
pub fn runtime_of(owners: &[Owner]) -> Option<Runtime> {
    let o = owners.first()?;
    let comm = o.comm.as_str();
    let cmd = o.cmdline.as_str();
    let has = |w: &str| {
        cmd.split(|c: char| c.is_whitespace() || c == '/')
            .any(|t| t == w || t.starts_with(&format!("{w}:")))
    };
    Some(match comm {
        "java" => Runtime::Java,
        c if c.starts_with("nginx") => Runtime::Nginx,
        "node" | "nodejs" => Runtime::Node,
        "redis-server" => Runtime::Redis,
        "postgres" | "postmaster" => Runtime::Postgres,
        "haproxy" => Runtime::Haproxy,
        "envoy" => Runtime::Envoy,
        "httpd" | "apache2" => Runtime::Httpd,
        "gunicorn" => Runtime::Gunicorn,
        "uvicorn" => Runtime::Uvicorn,
        c if c.starts_with("python") => {
            if cmd.contains("gunicorn") {
                Runtime::Gunicorn
            } else if cmd.contains("uvicorn") {
                Runtime::Uvicorn
            } else if has("http.server") || cmd.contains("socketserver") {
                Runtime::PythonHttpServer
            } else {
                Runtime::Python
            }
        }
        _ if cmd.contains("gunicorn") => Runtime::Gunicorn,
        _ => return None,
    })
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Java => "Java",
            Runtime::Nginx => "nginx",
            Runtime::Node => "Node.js",
            Runtime::Gunicorn => "gunicorn",
            Runtime::Uvicorn => "uvicorn",
            Runtime::PythonHttpServer => "Python socketserver/http.server",
            Runtime::Python => "Python",
            Runtime::Redis => "Redis",
            Runtime::Postgres => "PostgreSQL",
            Runtime::Haproxy => "HAProxy",
            Runtime::Envoy => "Envoy",
            Runtime::Httpd => "Apache httpd",
        }
    }

    /// The backlog this runtime asks for when not told otherwise, if it is a fixed number.
    pub fn default_backlog(self) -> Option<u32> {
        match self {
            Runtime::Java => Some(50),
            Runtime::Nginx | Runtime::Node | Runtime::Redis | Runtime::Httpd => Some(511),
            Runtime::Gunicorn | Runtime::Uvicorn => Some(2048),
            Runtime::PythonHttpServer => Some(5),
            Runtime::Python => Some(128),
            Runtime::Postgres | Runtime::Haproxy | Runtime::Envoy => None,
        }
    }
}

/// How to make the application ask listen() for `n`.
pub fn backlog_knob(runtime: Option<Runtime>, n: u32) -> String {
    match runtime {
        Some(Runtime::Java) => format!(
            "Java: pass the backlog, `new ServerSocket(port, {n})` or `channel.bind(addr, {n})` (default 50); \
             Tomcat/Spring Boot: `server.tomcat.accept-count={n}` (acceptCount, default 100); \
             Netty: `.option(ChannelOption.SO_BACKLOG, {n})`"
        ),
        Some(Runtime::Nginx) => format!("nginx: `listen <port> backlog={n};` (default 511 on Linux)"),
        Some(Runtime::Node) => format!("Node.js: `server.listen({{ port, backlog: {n} }})` (default 511)"),
        Some(Runtime::Gunicorn) => format!("gunicorn: `--backlog {n}` (default 2048)"),
        Some(Runtime::Uvicorn) => format!("uvicorn: `--backlog {n}` (default 2048)"),
        Some(Runtime::PythonHttpServer) => format!(
            "Python socketserver/http.server: set `request_queue_size = {n}` on the server class (default 5)"
        ),
        Some(Runtime::Python) => format!(
            "Python: `sock.listen({n})` (default 128; `listen(-1)` gives 0), asyncio `start_server(..., backlog={n})` (default 100)"
        ),
        Some(Runtime::Redis) => format!("Redis: `tcp-backlog {n}` in redis.conf (default 511)"),
        Some(Runtime::Postgres) => {
            "PostgreSQL: its backlog is 2 × max_connections, capped by somaxconn; raising somaxconn is the lever".to_string()
        }
        Some(Runtime::Haproxy) => format!("HAProxy: `backlog {n}` in the frontend (default: its maxconn)"),
        Some(Runtime::Envoy) => format!("Envoy: `tcp_backlog_size: {n}` on the listener"),
        Some(Runtime::Httpd) => format!("Apache httpd: `ListenBacklog {n}` (default 511)"),
        None => format!(
            "the backlog argument the server passes to listen(): ask for {n} (Go's net.Listen uses somaxconn, \
             read once at the first listen; Rust std's TcpListener uses 128, use socket2 to choose)"
        ),
    }
}

/// Where and how to set net.core.somaxconn for a listener in this namespace (KERNEL.md §2:
/// it is per network namespace; a container does not see the host's sysctl.conf).
pub fn somaxconn_fix(netns: &Netns, n: u32) -> String {
    let host = format!(
        "`sysctl -w net.core.somaxconn={n}` now and `net.core.somaxconn = {n}` in /etc/sysctl.d/90-backlog.conf to keep it"
    );
    let container = format!(
        "in its own network namespace: `docker run --sysctl net.core.somaxconn={n}`, or Kubernetes pod \
         `securityContext.sysctls: [{{name: net.core.somaxconn, value: \"{n}\"}}]` with the kubelet allowing it \
         (`--allowed-unsafe-sysctls=net.core.somaxconn`); the host's sysctl.conf does not reach it"
    );
    if let Some(name) = netns.names.first() {
        return format!(
            "raise net.core.somaxconn to {n} inside the namespace: `ip netns exec {name} sysctl -w \
             net.core.somaxconn={n}` (and in whatever sets up {name}, to keep it); the host's value does not reach it"
        );
    }
    match netns.initial {
        Some(true) => format!("raise net.core.somaxconn to {n}: {host}"),
        Some(false) => format!("raise net.core.somaxconn to {n} for this container, {container}"),
        None => format!(
            "raise net.core.somaxconn to {n}: on a host, {host}; for a container, {container}"
        ),
    }
}

/// A backlog that absorbs bursts: the modern somaxconn default (4096, since 5.4), or double
/// the current one when that is already reached.
pub fn recommended_backlog(current: u32) -> u32 {
    if current < 4096 {
        4096
    } else {
        current.saturating_mul(2).min(65535)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(comm: &str, cmdline: &str) -> Vec<Owner> {
        vec![Owner {
            inode: 1,
            pid: 1,
            comm: comm.into(),
            cmdline: cmdline.into(),
        }]
    }

    #[test]
    fn runtimes_from_comm_and_cmdline() {
        let cases = [
            ("java", "java -jar app.jar", Some(Runtime::Java)),
            ("nginx", "nginx: worker process", Some(Runtime::Nginx)),
            (
                "python3",
                "python3 -m http.server 8000",
                Some(Runtime::PythonHttpServer),
            ),
            (
                "python3",
                "/usr/bin/python3 /usr/bin/gunicorn app:app",
                Some(Runtime::Gunicorn),
            ),
            ("python3.11", "python3.11 server.py", Some(Runtime::Python)),
            ("redis-server", "redis-server *:6379", Some(Runtime::Redis)),
            ("myserver", "./myserver", None),
        ];
        for (comm, cmd, want) in cases {
            assert_eq!(runtime_of(&owner(comm, cmd)), want, "{comm} {cmd}");
        }
        assert_eq!(runtime_of(&[]), None);
    }

    #[test]
    fn somaxconn_advice_follows_the_namespace() {
        let host = somaxconn_fix(
            &Netns {
                inode: None,
                initial: Some(true),
                names: vec![],
            },
            4096,
        );
        assert!(host.contains("sysctl.d") && !host.contains("docker"));
        let pod = somaxconn_fix(
            &Netns {
                inode: None,
                initial: Some(false),
                names: vec![],
            },
            4096,
        );
        assert!(
            pod.contains("docker run --sysctl")
                && pod.contains("allowed-unsafe-sysctls")
                && !pod.contains("sysctl -w")
        );
        let named = somaxconn_fix(
            &Netns {
                inode: None,
                initial: Some(false),
                names: vec!["blue".into()],
            },
            4096,
        );
        assert!(
            named.contains("ip netns exec blue sysctl -w net.core.somaxconn=4096"),
            "{named}"
        );
        assert_eq!(recommended_backlog(50), 4096);
        assert_eq!(recommended_backlog(4096), 8192);
        assert_eq!(recommended_backlog(60000), 65535);
    }
}
