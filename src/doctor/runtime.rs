//! What backlogctl knows of the server runtimes: how to recognise one from its process, what it
//! asks listen() for when not told, which setting changes that, and how the new value reaches
//! the socket (a reload that calls listen() again, or a restart). Typed facts only; the words
//! are in `words.rs`. Each entry was checked on the real server where it installs here (see
//! docs/kernel.md, "Runtime defaults").

use serde::Serialize;

use crate::model::Owner;

/// A server runtime whose backlog knob we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
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
    /// php-fpm's master and pool children (`php-fpm8.2`, `php-fpm: pool www`).
    PhpFpm,
    Uwsgi,
    /// systemd holding a `.socket` unit's listener for socket activation.
    Systemd,
}

/// What a runtime asks listen() for when its configuration does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultBacklog {
    Fixed(u32),
    /// Reads net.core.somaxconn itself (once, at start) and asks for that.
    Somaxconn,
    /// Computed from another setting (PostgreSQL: 2 × MaxBackends).
    Derived,
    /// A fixed number before a release, somaxconn from it on (php-fpm: 511, then -1 from
    /// PHP 8.2, php-src #8410).
    SomaxconnSince {
        release: &'static str,
        before: u32,
    },
}

/// How a new backlog reaches a socket that is already listening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relisten {
    /// A reload calls listen() again on the same socket (nginx: SIGHUP to the master): no
    /// connection is lost and the socket keeps its inode and its drop count.
    Reload,
    /// Only a restart calls listen() again; connections still queued are reset.
    Restart,
}

/// The PostgreSQL setting whose value sizes its listen() backlog.
pub(crate) const POSTGRES_LEVER: &str = "max_connections";
/// PostgreSQL's backlog with its defaults: 2 × MaxBackends = 2 × (max_connections 100 +
/// autovacuum_max_workers 3 + max_worker_processes 8 + max_wal_senders 10 + 1).
pub(crate) const POSTGRES_DEFAULT_BACKLOG: u32 = 244;
/// Defaults the words name beside a runtime's own: Tomcat's acceptCount (Spring Boot's
/// `server.tomcat.accept-count`), asyncio's `start_server`, Rust std's `TcpListener::bind`.
pub(crate) const TOMCAT_ACCEPT_COUNT: u32 = 100;
pub(crate) const ASYNCIO_BACKLOG: u32 = 100;
pub(crate) const RUST_STD_BACKLOG: u32 = 128;
/// PostgreSQL clamps its backlog to PG_SOMAXCONN (src/include/pg_config_manual.h).
pub const POSTGRES_CLAMP: u32 = 10_000;
/// php-fpm's `listen.backlog` before PHP 8.2; from 8.2 it is -1, which the kernel turns into
/// somaxconn (docs/kernel.md §9).
pub(crate) const PHP_FPM_OLD_BACKLOG: u32 = 511;
pub(crate) const PHP_FPM_SOMAXCONN_RELEASE: &str = "PHP 8.2";
/// uWSGI's `--listen` default.
pub(crate) const UWSGI_BACKLOG: u32 = 100;

/// The runtime of a listener's owners, from `comm` and the command line. systemd only when no
/// other holder is known: a socket-activated service that calls listen() itself (gunicorn
/// does) sets the backlog, not the unit's `Backlog=`.
pub fn runtime_of(owners: &[Owner]) -> Option<Runtime> {
    let known = || owners.iter().filter_map(of_one);
    known()
        .find(|r| *r != Runtime::Systemd)
        .or_else(|| known().next())
}

fn of_one(o: &Owner) -> Option<Runtime> {
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
        c if c.starts_with("php-fpm") => Runtime::PhpFpm,
        "uwsgi" => Runtime::Uwsgi,
        "systemd" => Runtime::Systemd,
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
        _ if cmd.contains("uvicorn") => Runtime::Uvicorn,
        _ if cmd.starts_with("php-fpm: ") => Runtime::PhpFpm,
        _ if cmd.starts_with("uwsgi ") || cmd.starts_with("uWSGI ") => Runtime::Uwsgi,
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
            Runtime::PhpFpm => "php-fpm",
            Runtime::Uwsgi => "uWSGI",
            Runtime::Systemd => "systemd",
        }
    }

    pub fn default_backlog(self) -> DefaultBacklog {
        match self {
            // ServerSocket(port) and NIO bind(addr); Tomcat's is TOMCAT_ACCEPT_COUNT.
            Runtime::Java => DefaultBacklog::Fixed(50),
            Runtime::Nginx | Runtime::Node | Runtime::Redis | Runtime::Httpd => {
                DefaultBacklog::Fixed(511)
            }
            Runtime::Gunicorn | Runtime::Uvicorn => DefaultBacklog::Fixed(2048),
            Runtime::PythonHttpServer => DefaultBacklog::Fixed(5),
            Runtime::Python => DefaultBacklog::Fixed(128),
            Runtime::Uwsgi => DefaultBacklog::Fixed(UWSGI_BACKLOG),
            Runtime::PhpFpm => DefaultBacklog::SomaxconnSince {
                release: PHP_FPM_SOMAXCONN_RELEASE,
                before: PHP_FPM_OLD_BACKLOG,
            },
            // A .socket unit without Backlog= asks for as much as somaxconn allows.
            Runtime::Envoy | Runtime::Systemd => DefaultBacklog::Somaxconn,
            Runtime::Postgres | Runtime::Haproxy => DefaultBacklog::Derived,
        }
    }

    /// The default as a number, when it is one.
    pub fn fixed_default(self) -> Option<u32> {
        match self.default_backlog() {
            DefaultBacklog::Fixed(n) => Some(n),
            _ => None,
        }
    }

    /// Whether the backlog is set in the program's code rather than in a setting.
    pub fn set_in_code(self) -> bool {
        matches!(
            self,
            Runtime::Java | Runtime::Node | Runtime::PythonHttpServer | Runtime::Python
        )
    }

    pub fn relisten(self) -> Relisten {
        match self {
            // At reload, nginx calls listen() again on an inherited socket whose backlog= value
            // changed, which also re-reads somaxconn (observed: same inode, new Send-Q); with
            // the value unchanged it does not, even after somaxconn was raised.
            Runtime::Nginx => Relisten::Reload,
            _ => Relisten::Restart,
        }
    }

    /// Whether its workers are a pool of processes whose size is a setting (php-fpm's
    /// `pm.max_children`): when all are busy nobody accepts, which is the usual cause of an
    /// overflow, so the plan says to size the pool rather than to write an acceptor thread.
    pub fn worker_pool(self) -> bool {
        matches!(self, Runtime::PhpFpm | Runtime::Uwsgi)
    }

    /// The highest backlog this runtime can be made to ask for, if it clamps.
    pub fn max_backlog(self) -> Option<u32> {
        match self {
            Runtime::Postgres => Some(POSTGRES_CLAMP),
            _ => None,
        }
    }
}

/// PostgreSQL asks listen() for 2 × MaxBackends (max_connections + autovacuum_max_workers + 1 +
/// max_worker_processes + max_wal_senders; POSTGRES_DEFAULT_BACKLOG with the defaults), or 2 ×
/// max_connections in newer releases: `max_connections` = ⌈N/2⌉ gives a backlog of at least N
/// either way.
pub fn postgres_max_connections(backlog: u32) -> u32 {
    backlog.div_ceil(2)
}

/// The process to send a reload signal to: nginx's master (the holder whose command line
/// says so, else the lowest PID holding the socket).
pub fn reload_pid(owners: &[Owner]) -> Option<u32> {
    owners
        .iter()
        .find(|o| o.cmdline.starts_with("nginx: master"))
        .or_else(|| owners.iter().min_by_key(|o| o.pid))
        .map(|o| o.pid)
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
            (
                "postgres",
                "/usr/lib/postgresql/15/bin/postgres -D /x",
                Some(Runtime::Postgres),
            ),
            ("myserver", "./myserver", None),
        ];
        for (comm, cmd, want) in cases {
            assert_eq!(runtime_of(&owner(comm, cmd)), want, "{comm} {cmd}");
        }
        assert_eq!(runtime_of(&[]), None);
    }

    #[test]
    fn unix_socket_runtimes_from_comm_and_cmdline() {
        let cases = [
            (
                "php-fpm8.2",
                "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)",
                Some(Runtime::PhpFpm),
            ),
            ("php-fpm", "php-fpm: pool www", Some(Runtime::PhpFpm)),
            // A child whose comm was cut or renamed still says so in its command line.
            ("php8", "php-fpm: pool www", Some(Runtime::PhpFpm)),
            (
                "uwsgi",
                "uwsgi --ini /etc/uwsgi/app.ini",
                Some(Runtime::Uwsgi),
            ),
            ("systemd", "/sbin/init", Some(Runtime::Systemd)),
        ];
        for (comm, cmd, want) in cases {
            assert_eq!(runtime_of(&owner(comm, cmd)), want, "{comm} {cmd}");
        }
        // Socket activation: the service that calls listen() itself decides, not the unit.
        let mut held = owner("systemd", "/sbin/init");
        held.extend(owner(
            "gunicorn",
            "/usr/bin/python3 /usr/bin/gunicorn app:app",
        ));
        assert_eq!(runtime_of(&held), Some(Runtime::Gunicorn));
        held.truncate(1);
        held.extend(owner("myserver", "./myserver"));
        assert_eq!(runtime_of(&held), Some(Runtime::Systemd));
        assert!(Runtime::PhpFpm.worker_pool() && !Runtime::Gunicorn.worker_pool());
        assert_eq!(
            Runtime::PhpFpm.fixed_default(),
            None,
            "it depends on the release"
        );
        assert_eq!(Runtime::Uwsgi.fixed_default(), Some(UWSGI_BACKLOG));
    }

    #[test]
    fn postgres_lever_reaches_the_target() {
        // 2 × max_connections ≥ N, and 2 × (max_connections + 22) more so.
        for n in [1, 244, 4096, 4097, 9999] {
            assert!(2 * postgres_max_connections(n) >= n);
        }
        assert_eq!(postgres_max_connections(4096), 2048);
    }

    #[test]
    fn nginx_reload_goes_to_the_master() {
        let mut o = owner("nginx", "nginx: worker process");
        o[0].pid = 7;
        o.push(Owner {
            inode: 1,
            pid: 9,
            comm: "nginx".into(),
            cmdline: "nginx: master process nginx -c /etc/nginx/nginx.conf".into(),
        });
        assert_eq!(reload_pid(&o), Some(9));
        assert_eq!(reload_pid(&o[..1]), Some(7));
    }
}
