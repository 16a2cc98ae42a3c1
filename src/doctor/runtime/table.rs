//! The runtimes, one value each. `RUNTIMES` is the order of recognition (see `Recognise`): a
//! command line is matched against gunicorn and uvicorn before the generic Python server, and
//! the words list the Unix path settings in this order. Adding a runtime: one value here, one
//! line in `RUNTIMES`, one fixture recorded from the real server (fixtures/README.md).

use super::settings::{
    Flag, Include, Locate, NONE, OnCommandLine, Pools, Settings, Spelled, Syntax,
};
use super::{
    AtCap, CapHow, CapSpec, Cmdline, Counts, DefaultBacklog, Derived, Knob, Quirks, Recognise,
    Relisten, Reload, Runtime, Says, SetIn, UnixRefusal,
};

/// Every runtime we know, in the order of recognition.
pub static RUNTIMES: &[&Runtime] = &[
    &JAVA,
    &NGINX,
    &NODE,
    &PHP_FPM,
    &UWSGI,
    &GUNICORN,
    &UVICORN,
    &PYTHON_HTTP_SERVER,
    &PYTHON,
    &REDIS,
    &POSTGRES,
    &HAPROXY,
    &ENVOY,
    &HTTPD,
    &LIGHTTPD,
    &SYSTEMD,
];

/// A runtime with nothing said beyond its ids, for the values below to start from.
const BASE: Runtime = Runtime {
    id: "",
    name: "",
    restarted: None,
    recognise: Recognise {
        comm: &[],
        cmdline: &[],
        interpreter: &[],
    },
    default_backlog: DefaultBacklog::Somaxconn,
    tcp: Knob {
        name: "",
        set: SetIn::Code,
        how: "",
    },
    unix: None,
    derived: None,
    max_backlog: None,
    relisten: Relisten::Restart,
    reload: None,
    restart_note: "",
    concurrency: None,
    cap: None,
    settings: NONE,
    pool: None,
    unix_path_setting: None,
    holds_for_others: false,
    quirks: Quirks {
        close_sends_fin: None,
        read_whole_request: None,
        unix_refusal: None,
    },
};

/// The backlog of a listener whose runtime is not recognised: the argument of listen().
pub const UNKNOWN_KNOB: &str = "pass {n} as the backlog argument of listen() (Go's net.Listen asks for \
     somaxconn, read once at its first listen; Rust std's TcpListener asks for 128, socket2 lets \
     you choose)";
pub const UNKNOWN_UNIX_KNOB: &str = "pass {n} as the backlog argument of listen()";
/// A Go server reads somaxconn once, at its first listen: the restart is what re-reads it.
pub const UNKNOWN_RESTART_NOTE: &str = " (a Go server reads somaxconn once, at its first listen: \
     the restart is what makes it ask for the new value)";

/// `ServerSocket(port)` and NIO `bind(addr)` ask for 50; Tomcat's acceptCount is 100.
pub const JAVA: Runtime = Runtime {
    id: "java",
    name: "Java",
    recognise: Recognise {
        comm: &["java"],
        ..BASE.recognise
    },
    default_backlog: DefaultBacklog::Fixed(50),
    tcp: Knob {
        name: "backlog",
        set: SetIn::Code,
        how: "Java: pass the backlog, `new ServerSocket(port, {n})` or `channel.bind(addr, {n})` \
              ({default}); Tomcat/Spring Boot: `server.tomcat.accept-count={n}` (acceptCount, \
              default 100); Netty: `.option(ChannelOption.SO_BACKLOG, {n})` (default: somaxconn, \
              read once at start)",
    },
    concurrency: Some(Knob {
        name: "newFixedThreadPool(n)",
        set: SetIn::Code,
        how: "Java: the size of the pool that runs the requests, `Executors.newFixedThreadPool({n})` or \
              a `ThreadPoolExecutor`'s maximumPoolSize; Tomcat/Spring Boot: `maxThreads=\"{n}\"` on the \
              Connector (`server.tomcat.threads.max={n}`)",
    }),
    cap: Some(CapSpec {
        counts: Counts::Requests,
        how: CapHow::Unreadable,
        at_cap: AtCap::Waits,
    }),
    quirks: Quirks {
        close_sends_fin: Some("Socket.close()"),
        read_whole_request: Some("read until the blank line rather than one readLine()"),
        unix_refusal: None,
    },
    ..BASE
};

pub const NGINX: Runtime = Runtime {
    id: "nginx",
    name: "nginx",
    recognise: Recognise {
        comm: &["nginx*"],
        ..BASE.recognise
    },
    default_backlog: DefaultBacklog::Fixed(511),
    tcp: Knob {
        name: "backlog=",
        set: SetIn::ConfigFile,
        how: "nginx: `backlog={n}` on the listen directive, e.g. `listen 80 backlog={n};` \
              ({default} on Linux)",
    },
    unix: Some(Knob {
        name: "backlog=",
        set: SetIn::ConfigFile,
        how: "nginx: `listen unix:PATH backlog={n};` ({default} on Linux)",
    }),
    // At reload, nginx calls listen() again on an inherited socket whose backlog= value
    // changed, which also re-reads somaxconn (observed: same inode, new Send-Q); with the
    // value unchanged it does not, even after somaxconn was raised.
    relisten: Relisten::Reload,
    reload: Some(Reload {
        master: "nginx: master",
        command: "nginx -s reload",
    }),
    restart_note: " (a reload calls listen() again only when the backlog= value changes, and it \
                   may already say the new value)",
    concurrency: Some(Knob {
        name: "worker_connections",
        set: SetIn::ConfigFile,
        how: "`worker_connections {n};` in the events block, times `worker_processes`",
    }),
    cap: Some(CapSpec {
        counts: Counts::Connections,
        how: CapHow::Product(&["worker_processes", "worker_connections"]),
        at_cap: AtCap::Waits,
    }),
    // Only the master's title carries the arguments; `worker_processes auto` is one worker
    // per CPU, and the workers running say how many that made.
    settings: Settings {
        argv_after: Some("nginx: master process "),
        worker: Some("nginx: worker process"),
        inline: Some(Spelled::Short("-g")),
        // A relative -c is relative to nginx's prefix, which the command line does not show
        // unless -p gives it: read as relative to its working directory, it may be missed.
        files: &[&[
            Locate::Flag(Spelled::Short("-c")),
            Locate::Default("/etc/nginx/nginx.conf"),
        ]],
        syntax: Syntax::Nginx,
        keys: &[
            ("worker_processes", "worker_processes"),
            ("worker_connections", "worker_connections"),
        ],
        includes: &[("include", Include::Glob)],
        defaults: &[("worker_processes", 1), ("worker_connections", 512)],
        ..NONE
    },
    quirks: Quirks {
        unix_refusal: Some(UnixRefusal {
            log: "connect() to {upstream} failed (11: Resource temporarily unavailable) while \
                  connecting to upstream",
            path: "unix:",
            abstract_name: "unix:@",
            example: "unix:/run/php/php8.2-fpm.sock",
            answers: "502",
        }),
        ..BASE.quirks
    },
    ..BASE
};

pub const NODE: Runtime = Runtime {
    id: "node",
    name: "Node.js",
    recognise: Recognise {
        comm: &["node", "nodejs"],
        ..BASE.recognise
    },
    default_backlog: DefaultBacklog::Fixed(511),
    tcp: Knob {
        name: "backlog",
        set: SetIn::Code,
        how: "Node.js: `server.listen({ port, host, backlog: {n} })` ({default})",
    },
    unix: Some(Knob {
        name: "backlog",
        set: SetIn::Code,
        how: "Node.js: `server.listen({ path, backlog: {n} })` ({default})",
    }),
    // One event loop per process accepts and serves: synchronous work blocks both.
    concurrency: Some(Knob {
        name: "cluster",
        set: SetIn::Code,
        how: "Node.js: one event loop per process accepts and serves, and synchronous work \
              blocks both: run {n} processes with `cluster` (one per CPU), or move the work off \
              the loop (`worker_threads`)",
    }),
    cap: Some(CapSpec {
        counts: Counts::AcceptLoops,
        how: CapHow::Processes,
        at_cap: AtCap::Waits,
    }),
    ..BASE
};

/// php-fpm's master and pool children (`php-fpm8.2`, `php-fpm: pool www`). `listen.backlog`
/// is 511 before PHP 8.2 and -1 from it on, which the kernel turns into somaxconn.
pub const PHP_FPM: Runtime = Runtime {
    id: "php-fpm",
    name: "php-fpm",
    recognise: Recognise {
        comm: &["php-fpm*"],
        // A child whose comm was cut or renamed still says so in its command line.
        cmdline: &[Cmdline {
            comm: None,
            says: Says::Prefix("php-fpm: "),
        }],
        interpreter: &[],
    },
    default_backlog: DefaultBacklog::SomaxconnSince {
        release: "PHP 8.2",
        before: 511,
    },
    tcp: Knob {
        name: "listen.backlog",
        set: SetIn::ConfigFile,
        how: "php-fpm: `listen.backlog = {n}` in the pool file whose `listen =` names the socket \
              (Debian: /etc/php/VERSION/fpm/pool.d/; {default})",
    },
    restart_note: " (`systemctl restart php8.2-fpm`, the unit named after its PHP version: a \
                   reload, `systemctl reload` or USR2 to the master, re-reads the pool files but \
                   keeps the listening socket and its backlog, as observed with PHP 8.2)",
    concurrency: Some(Knob {
        name: "pm.max_children",
        set: SetIn::ConfigFile,
        how: "`pm.max_children = {n}` in the pool file",
    }),
    cap: Some(CapSpec {
        counts: Counts::Requests,
        how: CapHow::Product(&["pm.max_children"]),
        at_cap: AtCap::Waits,
    }),
    // The master's title names its configuration; the pool files come from its `include=`.
    settings: Settings {
        files: &[&[
            Locate::Parenthesised,
            Locate::Flag(Spelled::Short("-y")),
            Locate::Flag(Spelled::Long("--fpm-config")),
        ]],
        syntax: Syntax::KeyValue,
        keys: &[
            ("pm.max_children", "pm.max_children"),
            ("listen.backlog", "listen.backlog"),
        ],
        includes: &[("include", Include::Glob)],
        pools: Some(Pools {
            global: "global",
            listen: "listen",
        }),
        backlog: Some("listen.backlog"),
        ..NONE
    },
    pool: Some(
        "size the pool, the usual cause: php-fpm accepts a connection only when a child is free, \
         so while all `pm.max_children` are busy connections wait here (its log says \"server \
         reached pm.max_children setting\", the status page counts \"max children reached\"). \
         Raise `pm.max_children` in the pool file as far as memory allows (each child holds its \
         own PHP memory), with `pm = dynamic` or `pm = static`, and find what makes requests \
         slow (`request_slowlog_timeout` and `slowlog`)",
    ),
    unix_path_setting: Some("`listen =`"),
    ..BASE
};

/// uWSGI's `--listen` is 100, and it refuses to start above somaxconn: said by its knob's
/// words, wherever the plan says the backlog is set.
macro_rules! uwsgi_refuses {
    () => {
        "uWSGI refuses to start when it is above net.core.somaxconn (\"Listen queue size is \
         greater than the system max net.core.somaxconn\"), so that must be raised first"
    };
}

pub const UWSGI: Runtime = Runtime {
    id: "uwsgi",
    name: "uWSGI",
    recognise: Recognise {
        comm: &["uwsgi"],
        cmdline: &[
            Cmdline {
                comm: None,
                says: Says::Prefix("uwsgi "),
            },
            Cmdline {
                comm: None,
                says: Says::Prefix("uWSGI "),
            },
        ],
        interpreter: &[],
    },
    default_backlog: DefaultBacklog::Fixed(100),
    tcp: Knob {
        name: "--listen",
        set: SetIn::CommandLine,
        how: concat!(
            "uWSGI: `--listen {n}` (or `listen = {n}` in its ini file; {default}); ",
            uwsgi_refuses!()
        ),
    },
    concurrency: Some(Knob {
        name: "--processes",
        set: SetIn::CommandLine,
        how: "`--processes {n}` (or `processes = {n}` in its ini file)",
    }),
    cap: Some(CapSpec {
        counts: Counts::Requests,
        how: CapHow::Product(&["processes", "threads"]),
        at_cap: AtCap::Waits,
    }),
    settings: Settings {
        flags: &[
            Flag {
                setting: "processes",
                spelled: &[
                    Spelled::Short("-p"),
                    Spelled::Long("--processes"),
                    Spelled::Long("--workers"),
                ],
            },
            Flag {
                setting: "threads",
                spelled: &[Spelled::Long("--threads")],
            },
            Flag {
                setting: "listen",
                spelled: &[Spelled::Short("-l"), Spelled::Long("--listen")],
            },
        ],
        files: &[&[Locate::Flag(Spelled::Long("--ini"))]],
        syntax: Syntax::KeyValue,
        keys: &[
            ("processes", "processes"),
            ("workers", "processes"),
            ("threads", "threads"),
            ("listen", "listen"),
        ],
        defaults: &[("processes", 1), ("threads", 1), ("listen", 100)],
        backlog: Some("listen"),
        on_command_line: Some(OnCommandLine {
            overrides: Some("its ini file"),
            restart: None,
            also: Some(uwsgi_refuses!()),
            change_at: "where uWSGI is started (its systemd unit, its Emperor's vassal file or a \
                        start script)",
        }),
        ..NONE
    },
    pool: Some(
        "size the pool, the usual cause: uWSGI accepts a connection only when a worker is free, \
         so while all are busy connections wait here: raise `--processes` (or `--threads`) as \
         far as memory allows, and find what makes requests slow",
    ),
    unix_path_setting: Some("`--socket`"),
    ..BASE
};

pub const GUNICORN: Runtime = Runtime {
    id: "gunicorn",
    name: "gunicorn",
    recognise: Recognise {
        comm: &["gunicorn"],
        cmdline: &[Cmdline {
            comm: None,
            says: Says::Contains("gunicorn"),
        }],
        interpreter: &[],
    },
    default_backlog: DefaultBacklog::Fixed(2048),
    tcp: Knob {
        name: "--backlog",
        set: SetIn::CommandLine,
        how: "gunicorn: `--backlog {n}` (or `backlog = {n}` in its config; {default})",
    },
    unix: Some(Knob {
        name: "--backlog",
        set: SetIn::CommandLine,
        how: "gunicorn: `--backlog {n}` (or `backlog = {n}` in its config; {default}); it calls \
              listen() on a socket systemd passes it too, so its backlog overrides the unit's \
              Backlog=",
    }),
    restart_note: " (a HUP reloads the configuration but keeps the listening socket and its \
                   backlog)",
    concurrency: Some(Knob {
        name: "--workers",
        set: SetIn::CommandLine,
        how: "`--workers {n}` (or `--threads`)",
    }),
    cap: Some(CapSpec {
        counts: Counts::Requests,
        how: CapHow::Product(&["workers", "threads"]),
        at_cap: AtCap::Waits,
    }),
    // gunicorn reads ./gunicorn.conf.py when -c names no file, and its command line beats it.
    settings: Settings {
        flags: &[
            Flag {
                setting: "workers",
                spelled: &[Spelled::Short("-w"), Spelled::Long("--workers")],
            },
            Flag {
                setting: "threads",
                spelled: &[Spelled::Long("--threads")],
            },
            Flag {
                setting: "backlog",
                spelled: &[Spelled::Long("--backlog")],
            },
        ],
        files: &[&[
            Locate::Flag(Spelled::Short("-c")),
            Locate::Flag(Spelled::Long("--config")),
            Locate::Default("gunicorn.conf.py"),
        ]],
        syntax: Syntax::KeyValue,
        keys: &[
            ("workers", "workers"),
            ("threads", "threads"),
            ("backlog", "backlog"),
        ],
        defaults: &[("workers", 1), ("threads", 1), ("backlog", 2048)],
        backlog: Some("backlog"),
        on_command_line: Some(OnCommandLine {
            overrides: Some("its configuration file"),
            restart: None,
            also: None,
            change_at: "where gunicorn is started (its systemd unit, supervisor program or start \
                        script)",
        }),
        ..NONE
    },
    unix_path_setting: Some("`--bind unix:`"),
    ..BASE
};

pub const UVICORN: Runtime = Runtime {
    id: "uvicorn",
    name: "uvicorn",
    recognise: Recognise {
        comm: &["uvicorn"],
        cmdline: &[Cmdline {
            comm: None,
            says: Says::Contains("uvicorn"),
        }],
        interpreter: &[],
    },
    default_backlog: DefaultBacklog::Fixed(2048),
    tcp: Knob {
        name: "--backlog",
        set: SetIn::CommandLine,
        how: "uvicorn: `--backlog {n}` ({default})",
    },
    unix: Some(Knob {
        name: "--backlog",
        set: SetIn::CommandLine,
        how: "uvicorn: `--uds PATH --backlog {n}` ({default})",
    }),
    settings: Settings {
        flags: &[Flag {
            setting: "backlog",
            spelled: &[Spelled::Long("--backlog")],
        }],
        backlog: Some("backlog"),
        on_command_line: Some(OnCommandLine {
            overrides: None,
            restart: None,
            also: None,
            change_at: "where uvicorn is started (its systemd unit, supervisor program or start \
                        script)",
        }),
        ..NONE
    },
    unix_path_setting: Some("`--uds`"),
    ..BASE
};

/// `socketserver.TCPServer` and `http.server`: `request_queue_size`, 5.
pub const PYTHON_HTTP_SERVER: Runtime = Runtime {
    id: "python-http-server",
    name: "Python socketserver/http.server",
    recognise: Recognise {
        comm: &[],
        cmdline: &[
            Cmdline {
                comm: Some("python*"),
                says: Says::Word("http.server"),
            },
            Cmdline {
                comm: Some("python*"),
                says: Says::Contains("socketserver"),
            },
        ],
        interpreter: &[],
    },
    default_backlog: DefaultBacklog::Fixed(5),
    tcp: Knob {
        name: "request_queue_size",
        set: SetIn::Code,
        how: "Python socketserver/http.server: set `request_queue_size = {n}` on the server class \
              ({default})",
    },
    ..BASE
};

/// `socket.listen()` and `create_server` ask for 128; asyncio's servers for 100.
pub const PYTHON: Runtime = Runtime {
    id: "python",
    name: "Python",
    recognise: Recognise {
        interpreter: &["python*"],
        ..BASE.recognise
    },
    default_backlog: DefaultBacklog::Fixed(128),
    tcp: Knob {
        name: "backlog",
        set: SetIn::Code,
        how: "Python: `sock.listen({n})` ({default}; `listen(-1)` gives 0), asyncio \
              `start_server(..., backlog={n})` (default 100)",
    },
    unix: Some(Knob {
        name: "backlog",
        set: SetIn::Code,
        how: "Python: `sock.listen({n})` ({default}; `listen(-1)` gives 0), asyncio \
              `start_unix_server(..., backlog={n})` (default 100)",
    }),
    ..BASE
};

pub const REDIS: Runtime = Runtime {
    id: "redis",
    name: "Redis",
    recognise: Recognise {
        comm: &["redis-server"],
        ..BASE.recognise
    },
    default_backlog: DefaultBacklog::Fixed(511),
    tcp: Knob {
        name: "tcp-backlog",
        set: SetIn::ConfigFile,
        how: "Redis: `tcp-backlog {n}` in redis.conf or `--tcp-backlog {n}` ({default}; not \
              settable with CONFIG SET)",
    },
    restart_note: " (tcp-backlog is read only at start: CONFIG SET refuses it)",
    concurrency: Some(Knob {
        name: "maxclients",
        set: SetIn::ConfigFile,
        how: "`maxclients {n}` in redis.conf",
    }),
    cap: Some(CapSpec {
        counts: Counts::Connections,
        how: CapHow::Product(&["maxclients"]),
        at_cap: AtCap::Refused("-ERR max number of clients reached"),
    }),
    // Redis rewrites its title (`redis-server 127.0.0.1:6379`): once it runs, its command line
    // shows neither its configuration file nor its flags, and nothing is read.
    settings: Settings {
        flags: &[
            Flag {
                setting: "maxclients",
                spelled: &[Spelled::Long("--maxclients")],
            },
            Flag {
                setting: "tcp-backlog",
                spelled: &[Spelled::Long("--tcp-backlog")],
            },
        ],
        files: &[&[Locate::FirstArg]],
        syntax: Syntax::Directives,
        keys: &[("maxclients", "maxclients"), ("tcp-backlog", "tcp-backlog")],
        includes: &[("include", Include::File)],
        // Redis lowers maxclients to what its file descriptor limit allows, and says so in its log.
        defaults: &[("maxclients", 10_000), ("tcp-backlog", 511)],
        defaults_need_a_file: true,
        backlog: Some("tcp-backlog"),
        on_command_line: Some(OnCommandLine {
            overrides: Some("redis.conf"),
            restart: None,
            also: None,
            change_at: "where Redis is started (its systemd unit or start script)",
        }),
        ..NONE
    },
    ..BASE
};

/// PostgreSQL clamps its backlog to PG_SOMAXCONN (src/include/pg_config_manual.h).
pub const POSTGRES_CLAMP: u32 = 10_000;

/// PostgreSQL asks listen() for 2 × MaxBackends (max_connections, autovacuum_max_workers,
/// max_worker_processes and max_wal_senders, plus 1: 244 with the defaults 100, 3, 8, 10), or 2 ×
/// max_connections in newer releases: max_connections = ⌈N/2⌉ gives a backlog of at least N
/// either way.
fn postgres_max_connections(backlog: u32) -> u32 {
    backlog.div_ceil(2)
}

pub const POSTGRES: Runtime = Runtime {
    id: "postgres",
    name: "PostgreSQL",
    recognise: Recognise {
        comm: &["postgres", "postmaster"],
        ..BASE.recognise
    },
    default_backlog: DefaultBacklog::Derived,
    tcp: Knob {
        name: "max_connections",
        set: SetIn::ConfigFile,
        how: "PostgreSQL: see max_connections (backlog {n})",
    },
    derived: Some(Derived {
        setting: "max_connections",
        value_for: postgres_max_connections,
        how: "PostgreSQL asks listen() for 2 × MaxBackends (max_connections + \
              autovacuum_max_workers + max_worker_processes + max_wal_senders + 1: 244 with the \
              defaults; 2 × max_connections in newer releases), clamped to 10000 up to release \
              15, so somaxconn alone does not change it: set max_connections to {value} for a \
              backlog of at least {n}{where}. max_connections also sizes shared memory and lets \
              that many backends run at once: a pooler such as PgBouncer in front, which absorbs \
              the burst on its own backlog, is the usual alternative",
        set_in: ", with `ALTER SYSTEM SET max_connections = {value};` or in postgresql.conf",
    }),
    max_backlog: Some(POSTGRES_CLAMP),
    restart_note: " (`pg_ctl restart`: a reload does not change max_connections nor the backlog)",
    concurrency: Some(Knob {
        name: "max_connections",
        set: SetIn::ConfigFile,
        how: "`max_connections = {n}` in postgresql.conf",
    }),
    cap: Some(CapSpec {
        counts: Counts::Connections,
        how: CapHow::Product(&["max_connections"]),
        at_cap: AtCap::Refused("FATAL: sorry, too many clients already"),
    }),
    // postgresql.conf (or -c config_file=), then postgresql.auto.conf (ALTER SYSTEM), both in
    // the data directory (-D, else PGDATA); the command line beats both (pg_settings.source =
    // command line).
    settings: Settings {
        flags: &[Flag {
            setting: "max_connections",
            spelled: &[
                Spelled::Assign {
                    flag: "-c",
                    key: "max_connections",
                },
                Spelled::Long("--max_connections"),
                Spelled::Long("--max-connections"),
                Spelled::Short("-N"),
            ],
        }],
        files: &[
            &[
                Locate::Flag(Spelled::Assign {
                    flag: "-c",
                    key: "config_file",
                }),
                Locate::Flag(Spelled::Long("--config_file")),
                Locate::Flag(Spelled::Long("--config-file")),
                Locate::InDir {
                    flag: Spelled::Short("-D"),
                    file: "postgresql.conf",
                },
                Locate::EnvDir {
                    var: "PGDATA",
                    file: "postgresql.conf",
                },
            ],
            &[
                Locate::InDir {
                    flag: Spelled::Short("-D"),
                    file: "postgresql.auto.conf",
                },
                Locate::EnvDir {
                    var: "PGDATA",
                    file: "postgresql.auto.conf",
                },
            ],
        ],
        syntax: Syntax::KeyValue,
        keys: &[("max_connections", "max_connections")],
        includes: &[
            ("include", Include::File),
            ("include_if_exists", Include::IfExists),
            ("include_dir", Include::Dir),
        ],
        defaults: &[("max_connections", 100)],
        defaults_need_a_file: true,
        on_command_line: Some(OnCommandLine {
            overrides: Some("postgresql.conf and ALTER SYSTEM"),
            change_at: "where the server is started (its unit, or `pg_ctl -o`)",
            also: None,
            restart: Some(
                "; start it with the changed options (`pg_ctl restart -o '...'`, or its unit): \
                 `pg_ctl restart` alone starts it again with the options of its last start, kept \
                 in postmaster.opts, and a reload changes neither max_connections nor the \
                 backlog",
            ),
        }),
        ..NONE
    },
    ..BASE
};

/// HAProxy's backlog is the frontend's `backlog`, else its maxconn.
pub const HAPROXY: Runtime = Runtime {
    id: "haproxy",
    name: "HAProxy",
    recognise: Recognise {
        comm: &["haproxy"],
        ..BASE.recognise
    },
    default_backlog: DefaultBacklog::Derived,
    tcp: Knob {
        name: "backlog",
        set: SetIn::ConfigFile,
        how: "HAProxy: `backlog {n}` in the frontend ({default} from its maxconn)",
    },
    concurrency: Some(Knob {
        name: "maxconn",
        set: SetIn::ConfigFile,
        how: "`maxconn {n}` in the global section and the frontend",
    }),
    // A frontend's maxconn is its own, else its defaults section's, else the global one (its
    // configuration manual: "When this value is set to zero, which is the default, the global
    // maxconn value is used"); without a global maxconn it follows `ulimit -n`.
    cap: Some(CapSpec {
        counts: Counts::Connections,
        how: CapHow::Lowest("maxconn"),
        at_cap: AtCap::Waits,
    }),
    settings: Settings {
        flags: &[Flag {
            setting: "maxconn",
            spelled: &[Spelled::Short("-n")],
        }],
        files: &[&[Locate::Flag(Spelled::Short("-f"))]],
        syntax: Syntax::Haproxy,
        keys: &[("maxconn", "maxconn"), ("backlog", "backlog")],
        backlog: Some("backlog"),
        ..NONE
    },
    ..BASE
};

pub const ENVOY: Runtime = Runtime {
    id: "envoy",
    name: "Envoy",
    recognise: Recognise {
        comm: &["envoy"],
        ..BASE.recognise
    },
    default_backlog: DefaultBacklog::Somaxconn,
    tcp: Knob {
        name: "tcp_backlog_size",
        set: SetIn::ConfigFile,
        how: "Envoy: `tcp_backlog_size: {n}` on the listener ({default} on Linux)",
    },
    ..BASE
};

pub const HTTPD: Runtime = Runtime {
    id: "httpd",
    name: "Apache httpd",
    recognise: Recognise {
        comm: &["httpd", "apache2"],
        ..BASE.recognise
    },
    default_backlog: DefaultBacklog::Fixed(511),
    tcp: Knob {
        name: "ListenBacklog",
        set: SetIn::ConfigFile,
        how: "Apache httpd: `ListenBacklog {n}` ({default})",
    },
    ..BASE
};

/// lighttpd 1.4: `server.listen-backlog`, 1024 (measured with 1.4.69). A graceful restart
/// (SIGUSR1, Debian's `systemctl reload lighttpd`) re-reads the configuration but keeps the
/// listening socket and its backlog (observed: same inode, Send-Q unchanged).
pub const LIGHTTPD: Runtime = Runtime {
    id: "lighttpd",
    name: "lighttpd",
    recognise: Recognise {
        comm: &["lighttpd"],
        ..BASE.recognise
    },
    default_backlog: DefaultBacklog::Fixed(1024),
    tcp: Knob {
        name: "server.listen-backlog",
        set: SetIn::ConfigFile,
        how: "lighttpd: `server.listen-backlog = {n}` in lighttpd.conf (Debian: \
              /etc/lighttpd/lighttpd.conf; {default})",
    },
    restart_note: " (`systemctl restart lighttpd`: a graceful restart, SIGUSR1 or `systemctl \
                   reload lighttpd`, re-reads the configuration but keeps the listening socket \
                   and its backlog)",
    concurrency: Some(Knob {
        name: "server.max-connections",
        set: SetIn::ConfigFile,
        how: "`server.max-connections = {n}` in lighttpd.conf",
    }),
    cap: Some(CapSpec {
        counts: Counts::Connections,
        how: CapHow::Product(&["server.max-connections"]),
        at_cap: AtCap::Waits,
    }),
    settings: Settings {
        files: &[&[Locate::Flag(Spelled::Short("-f"))]],
        syntax: Syntax::KeyValue,
        keys: &[
            ("server.max-connections", "server.max-connections"),
            ("server.listen-backlog", "server.listen-backlog"),
        ],
        includes: &[("include", Include::Glob)],
        backlog: Some("server.listen-backlog"),
        ..NONE
    },
    ..BASE
};

/// systemd holding a `.socket` unit's listener for socket activation; a unit without
/// `Backlog=` asks for as much as somaxconn allows.
pub const SYSTEMD: Runtime = Runtime {
    id: "systemd",
    name: "systemd",
    restarted: Some("the socket unit"),
    recognise: Recognise {
        comm: &["systemd"],
        ..BASE.recognise
    },
    default_backlog: DefaultBacklog::Somaxconn,
    tcp: Knob {
        name: "Backlog=",
        set: SetIn::Unit,
        how: "systemd: `Backlog={n}` in the [Socket] section of the .socket unit that holds it \
              (`systemctl list-sockets` names the unit; {default}); a service that calls listen() \
              itself overrides it",
    },
    restart_note: " (for a socket unit: stop its service, `systemctl daemon-reload`, then \
                   `systemctl restart NAME.socket`; a service still holding the old socket keeps \
                   its backlog)",
    holds_for_others: true,
    ..BASE
};
