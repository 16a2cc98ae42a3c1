//! The parsers on real command lines (from `/proc/PID/cmdline` of the servers behind the
//! fixtures) and real configuration files (Debian 12's packages, and the files the fixtures'
//! servers ran with).

use super::super::{GUNICORN, HAPROXY, NGINX, PHP_FPM, POSTGRES, REDIS, UWSGI};
use super::*;

fn cmdline(spec: &Settings, cmd: &str) -> Vec<(String, Option<SettingValue>, String)> {
    from_cmdline(spec, &spec.argv(cmd).expect("arguments"))
        .into_iter()
        .map(|a| (a.setting, a.value, a.written))
        .collect()
}

fn n(v: u64) -> Option<SettingValue> {
    Some(SettingValue::Number(v))
}

fn set(spec: &Settings, text: &str) -> Vec<(String, Option<SettingValue>, u32)> {
    parse(spec, text)
        .into_iter()
        .filter_map(|i| match i {
            Item::Set(a) => Some((a.setting, a.value, a.line)),
            Item::Include { .. } => None,
        })
        .collect()
}

#[test]
fn postgres_command_lines() {
    // The fixture's PostgreSQL 15, started by pg_ctl -o.
    let pg = "/usr/lib/postgresql/15/bin/postgres -D /tmp/rt/pg -c listen_addresses=127.0.0.1 \
              -p 5440 -k /tmp/rt/pgrun -c max_connections=5";
    assert_eq!(
        cmdline(&POSTGRES.settings, pg),
        [(
            "max_connections".into(),
            n(5),
            "-c max_connections=5".into()
        )]
    );
    let files = config_files(
        &POSTGRES.settings,
        &POSTGRES.settings.argv(pg).unwrap(),
        pg,
        &mut |_| None,
    );
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/tmp/rt/pg/postgresql.conf",
            "/tmp/rt/pg/postgresql.auto.conf"
        ]
    );
    // Debian's pg_ctlcluster names the configuration file apart from the data directory.
    let debian = "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main -c \
                  config_file=/etc/postgresql/15/main/postgresql.conf";
    let files = config_files(
        &POSTGRES.settings,
        &POSTGRES.settings.argv(debian).unwrap(),
        debian,
        &mut |_| None,
    );
    assert_eq!(files[0].path, "/etc/postgresql/15/main/postgresql.conf");
    assert_eq!(
        files[1].path,
        "/var/lib/postgresql/15/main/postgresql.auto.conf"
    );
    assert!(files.iter().all(|f| !f.optional));
    // `pg_ctl restart -o ...` (and the Docker image) start it with PGDATA and no -D.
    let restarted = "/usr/lib/postgresql/15/bin/postgres -c listen_addresses=127.0.0.1 -p 5440";
    let argv = POSTGRES.settings.argv(restarted).unwrap();
    let paths: Vec<String> = config_files(&POSTGRES.settings, &argv, restarted, &mut |v| {
        (v == "PGDATA").then(|| "/tmp/cap/pg".to_string())
    })
    .into_iter()
    .map(|f| f.path)
    .collect();
    assert_eq!(
        paths,
        [
            "/tmp/cap/pg/postgresql.conf",
            "/tmp/cap/pg/postgresql.auto.conf"
        ]
    );
    assert!(config_files(&POSTGRES.settings, &argv, restarted, &mut |_| None).is_empty());
    // Other spellings PostgreSQL takes; the last one given wins.
    assert_eq!(
        cmdline(
            &POSTGRES.settings,
            "postgres -N 7 --max_connections=9 -cmax-connections=11"
        )
        .iter()
        .map(|a| a.1)
        .collect::<Vec<_>>(),
        [n(7), n(9), n(11)]
    );
}

#[test]
fn gunicorn_and_uwsgi_command_lines() {
    let gunicorn = "/root/.pyenv/versions/3.11.7/bin/python3.11 /root/.pyenv/versions/3.11.7/bin/\
                    gunicorn --bind 127.0.0.1:8082 --workers 2 --backlog 16 --no-control-socket \
                    --pid /tmp/rt/gunicorn.pid app:app";
    assert_eq!(
        cmdline(&GUNICORN.settings, gunicorn),
        [
            ("workers".into(), n(2), "--workers 2".into()),
            ("backlog".into(), n(16), "--backlog 16".into()),
        ]
    );
    let short = "gunicorn -w2 --threads=4 --worker-class gthread -c conf.py app:app";
    assert_eq!(
        cmdline(&GUNICORN.settings, short),
        [
            ("workers".into(), n(2), "-w2".into()),
            ("threads".into(), n(4), "--threads=4".into()),
        ]
    );
    let argv = GUNICORN.settings.argv(short).unwrap();
    assert_eq!(
        config_files(&GUNICORN.settings, &argv, short, &mut |_| None),
        [ConfigFile {
            path: "conf.py".into(),
            optional: false
        }]
    );
    // Without -c, ./gunicorn.conf.py, which may not exist.
    let argv = GUNICORN.settings.argv(gunicorn).unwrap();
    assert_eq!(
        config_files(&GUNICORN.settings, &argv, gunicorn, &mut |_| None),
        [ConfigFile {
            path: "gunicorn.conf.py".into(),
            optional: true
        }]
    );

    let uwsgi = "uwsgi --plugin python3 --socket /tmp/u-real/rt-uwsgi/uwsgi.sock \
                 --chmod-socket=666 --listen 16 --processes 2 --master --wsgi-file \
                 /tmp/u-real/rt-uwsgi/app.py --pidfile /tmp/u-real/rt-uwsgi/uwsgi.pid";
    assert_eq!(
        cmdline(&UWSGI.settings, uwsgi),
        [
            ("listen".into(), n(16), "--listen 16".into()),
            ("processes".into(), n(2), "--processes 2".into()),
        ]
    );
}

#[test]
fn haproxy_and_nginx_command_lines() {
    // HAProxy in Debian's unit: -f names the file; -n would set the global maxconn.
    let haproxy = "/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid -S \
                   /run/haproxy-master.sock";
    let argv = HAPROXY.settings.argv(haproxy).unwrap();
    assert_eq!(
        config_files(&HAPROXY.settings, &argv, haproxy, &mut |_| None)[0].path,
        "/etc/haproxy/haproxy.cfg"
    );
    assert!(cmdline(&HAPROXY.settings, haproxy).is_empty());
    assert_eq!(
        cmdline(&HAPROXY.settings, "haproxy -n 50 -f a.cfg")[0].1,
        n(50)
    );

    // nginx: the master's title carries the arguments, a worker's none.
    let master = "nginx: master process nginx -c /tmp/rt/nginx.conf";
    let argv = NGINX.settings.argv(master).unwrap();
    assert_eq!(
        config_files(&NGINX.settings, &argv, master, &mut |_| None)[0].path,
        "/tmp/rt/nginx.conf"
    );
    assert_eq!(NGINX.settings.argv("nginx: worker process"), None);
    let debian = "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;";
    let argv = NGINX.settings.argv(debian).unwrap();
    assert_eq!(
        config_files(&NGINX.settings, &argv, debian, &mut |_| None),
        [ConfigFile {
            path: "/etc/nginx/nginx.conf".into(),
            optional: true
        }]
    );
    assert!(cmdline(&NGINX.settings, debian).is_empty());
    assert_eq!(
        cmdline(
            &NGINX.settings,
            "nginx: master process nginx -g daemon off; worker_processes 3;"
        ),
        [(
            "worker_processes".into(),
            n(3),
            "worker_processes 3;".into()
        )]
    );
}

#[test]
fn php_fpm_and_redis_command_lines() {
    // php-fpm's master names its file in its title; a pool's child nothing.
    let fpm = "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)";
    let argv = PHP_FPM.settings.argv(fpm).unwrap();
    assert_eq!(
        config_files(&PHP_FPM.settings, &argv, fpm, &mut |_| None)[0].path,
        "/etc/php/8.2/fpm/php-fpm.conf"
    );
    let child = "php-fpm: pool www";
    let argv = PHP_FPM.settings.argv(child).unwrap();
    assert!(config_files(&PHP_FPM.settings, &argv, child, &mut |_| None).is_empty());

    // Redis's title hides its arguments once it runs; started by hand they are there.
    for title in ["redis-server 127.0.0.1:6390", "redis-server *:6379"] {
        let argv = REDIS.settings.argv(title).unwrap();
        assert!(config_files(&REDIS.settings, &argv, title, &mut |_| None).is_empty());
        assert!(cmdline(&REDIS.settings, title).is_empty());
    }
    let by_hand = "redis-server /etc/redis/redis.conf --maxclients 20 --tcp-backlog 16";
    let argv = REDIS.settings.argv(by_hand).unwrap();
    assert_eq!(
        config_files(&REDIS.settings, &argv, by_hand, &mut |_| None)[0].path,
        "/etc/redis/redis.conf"
    );
    assert_eq!(cmdline(&REDIS.settings, by_hand).len(), 2);
}

#[test]
fn an_unreadable_value_is_unknown_and_keeps_the_default_away() {
    let spec = &GUNICORN.settings;
    let items = parse(
        spec,
        "import multiprocessing\nworkers = multiprocessing.cpu_count() * 2 + 1\nthreads = 2\n",
    );
    let Item::Set(w) = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!((w.setting.as_str(), w.value, w.line), ("workers", None, 2));
    let read = Read {
        path: "gunicorn.conf.py".into(),
        items: items
            .into_iter()
            .filter_map(|i| match i {
                Item::Set(a) => Some(a),
                Item::Include { .. } => None,
            })
            .collect(),
    };
    let won = merge(spec, 7, Vec::new(), &[read]);
    let names: Vec<(&str, SettingValue)> = won.iter().map(|s| (s.name.as_str(), s.value)).collect();
    // workers: unknown (no default 1); threads from the file; backlog the default.
    assert_eq!(
        names,
        [
            ("threads", SettingValue::Number(2)),
            ("backlog", SettingValue::Number(2048))
        ]
    );
}

/// Debian 12's postgresql.conf.sample has every setting commented out; a cluster's file then
/// sets some, ALTER SYSTEM writes postgresql.auto.conf, and the command line beats both.
#[test]
fn postgres_last_assignment_wins_within_a_file() {
    let spec = &POSTGRES.settings;
    let conf = "\
# -----------------------------
# PostgreSQL configuration file
# -----------------------------
#listen_addresses = 'localhost'\t\t# what IP address(es) to listen on;
#port = 5432\t\t\t\t# (change requires restart)
#max_connections = 100\t\t\t# (change requires restart)
max_connections = 100\t\t\t# (change requires restart)
include_dir = 'conf.d'\t\t\t# include files ending in '.conf' from
max_connections = 50
";
    let items = parse(spec, conf);
    assert_eq!(
        items,
        [
            Item::Set(Assignment {
                setting: "max_connections".into(),
                value: n(100),
                written: "max_connections = 100".into(),
                line: 7,
                section: None,
            }),
            Item::Include {
                kind: Include::Dir,
                pattern: "conf.d".into(),
                line: 8,
            },
            Item::Set(Assignment {
                setting: "max_connections".into(),
                value: n(50),
                written: "max_connections = 50".into(),
                line: 9,
                section: None,
            }),
        ]
    );
}

/// A file's assignments alone, as `collect` hands them to `merge`.
fn only(spec: &Settings, text: &str, path: &str) -> Read {
    Read {
        path: path.into(),
        items: parse(spec, text)
            .into_iter()
            .filter_map(|i| match i {
                Item::Set(a) => Some(a),
                Item::Include { .. } => None,
            })
            .collect(),
    }
}

#[test]
fn postgres_auto_conf_beats_postgresql_conf_and_the_command_line_beats_both() {
    let spec = &POSTGRES.settings;
    let conf = "max_connections = 100\t\t\t# (change requires restart)\nmax_connections = 50\n";
    // As ALTER SYSTEM writes it.
    let auto = "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\nmax_connections = '2048'\n";
    let files = [
        only(spec, conf, "/tmp/rt/pg/postgresql.conf"),
        only(spec, auto, "/tmp/rt/pg/postgresql.auto.conf"),
    ];
    let from_files = merge(spec, 9, Vec::new(), &files);
    assert_eq!(from_files.len(), 1);
    assert_eq!(from_files[0].value, SettingValue::Number(2048));
    assert_eq!(
        from_files[0].source,
        SettingSource::ConfigFile {
            path: "/tmp/rt/pg/postgresql.auto.conf".into(),
            line: 3
        }
    );
    let argv = ["postgres", "-D", "/tmp/rt/pg", "-c", "max_connections=5"];
    let won = merge(spec, 9, from_cmdline(spec, &argv), &files);
    assert_eq!(won.len(), 1);
    assert_eq!(won[0].value, SettingValue::Number(5));
    assert_eq!(won[0].source, SettingSource::CommandLine);
    assert_eq!(won[0].written, "-c max_connections=5");
    // A file read that does not set it: the default.
    let sample = only(
        spec,
        "#max_connections = 100\t\t\t# (change requires restart)\n",
        "/tmp/rt/pg/postgresql.conf",
    );
    let none = merge(spec, 9, Vec::new(), &[sample]);
    assert_eq!(
        (none[0].value, &none[0].source),
        (SettingValue::Number(100), &SettingSource::Default)
    );
    // No file read at all (started with PGDATA, no -D): not even the default is known.
    assert!(merge(spec, 9, Vec::new(), &[]).is_empty());
}

/// Debian 12's haproxy.cfg with the frontend: maxconn 20 globally and on the
/// frontend, a defaults section that sets another for the frontend that has none.
#[test]
fn haproxy_sections_binds_and_defaults() {
    let cfg = "\
global
\tlog /dev/log\tlocal0
\tchroot /var/lib/haproxy
\tstats socket /run/haproxy/admin.sock mode 660 level admin
\tmaxconn 20
\tdaemon

defaults
\tlog\tglobal
\tmode\thttp
        timeout connect 5000
\tmaxconn 30

frontend fe
\tbind 127.0.0.1:8090
\tmaxconn 20   # the issue's
\tbacklog 16
\tdefault_backend be

frontend other
\tbind :8091,:8092 ssl crt /etc/ssl/x.pem

backend be
\tmaxconn 5
\tserver s1 127.0.0.1:9000 maxconn 10
";
    let items: Vec<(String, Option<SettingValue>, u32, Option<Section>)> =
        parse(&HAPROXY.settings, cfg)
            .into_iter()
            .filter_map(|i| match i {
                Item::Set(a) => Some((a.setting, a.value, a.line, a.section)),
                Item::Include { .. } => None,
            })
            .collect();
    let fe = Some(Section {
        name: "frontend fe".into(),
        listen: vec!["127.0.0.1:8090".into()],
    });
    let other = Some(Section {
        name: "frontend other".into(),
        listen: vec![":8091,:8092".into()],
    });
    assert_eq!(
        items,
        [
            ("maxconn".into(), n(20), 5, None),
            ("maxconn".into(), n(20), 16, fe.clone()),
            ("backlog".into(), n(16), 17, fe),
            // The defaults' maxconn, for the frontend without one; the backend's is not read.
            ("maxconn".into(), n(30), 12, other),
        ]
    );
    let v4 = |s: &str| Local::Inet(s.parse().unwrap());
    assert!(listens_on("127.0.0.1:8090", &v4("127.0.0.1:8090")));
    assert!(!listens_on("127.0.0.1:8090", &v4("127.0.0.2:8090")));
    assert!(listens_on(":8091,:8092", &v4("0.0.0.0:8092")));
    assert!(listens_on("*:80", &v4("0.0.0.0:80")));
    assert!(listens_on("ipv4@0.0.0.0:8000-8010", &v4("0.0.0.0:8004")));
    assert!(!listens_on("0.0.0.0:8000-8010", &v4("0.0.0.0:8011")));
    assert!(listens_on(
        "[::]:80",
        &Local::Inet("[::]:80".parse().unwrap())
    ));
    assert!(listens_on("9000", &v4("127.0.0.1:9000")));
}

/// Debian 12's nginx.conf: `worker_processes auto` in the main context, worker_connections in
/// events; the http block is not read.
#[test]
fn nginx_main_context_and_events() {
    let conf = "\
user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
include /etc/nginx/modules-enabled/*.conf;

events {
\tworker_connections 768;
\t# multi_accept on;
}

http {
\tinclude /etc/nginx/mime.types;
\tserver { listen 80 backlog=16; worker_connections 1; }
}
";
    let items = parse(&NGINX.settings, conf);
    assert_eq!(
        items,
        [
            Item::Set(Assignment {
                setting: "worker_processes".into(),
                value: Some(SettingValue::Auto),
                written: "worker_processes auto;".into(),
                line: 2,
                section: None,
            }),
            Item::Include {
                kind: Include::Glob,
                pattern: "/etc/nginx/modules-enabled/*.conf".into(),
                line: 5,
            },
            Item::Set(Assignment {
                setting: "worker_connections".into(),
                value: n(768),
                written: "worker_connections 768;".into(),
                line: 8,
                section: None,
            }),
        ]
    );
    // A directive over several lines, and quotes.
    let odd = "worker_processes\n  \"4\";\nevents { worker_connections 10; }";
    assert_eq!(
        set(&NGINX.settings, odd),
        [
            ("worker_processes".into(), n(4), 1),
            ("worker_connections".into(), n(10), 3)
        ]
    );
}

/// Debian 12's php-fpm.conf includes its pools; www.conf (comments cut) listens on a socket
/// named after the pool.
#[test]
fn php_fpm_pools_and_what_they_listen_on() {
    let main = "\
;;;;;;;;;;;;;;;;;;;;;
; FPM Configuration ;
;;;;;;;;;;;;;;;;;;;;;
[global]
pid = /run/php/php8.2-fpm.pid
error_log = /var/log/php8.2-fpm.log
include=/etc/php/8.2/fpm/pool.d/*.conf
";
    assert_eq!(
        parse(&PHP_FPM.settings, main),
        [Item::Include {
            kind: Include::Glob,
            pattern: "/etc/php/8.2/fpm/pool.d/*.conf".into(),
            line: 7
        }]
    );
    let www = "\
; Start a new pool named 'www'.
[www]
user = www-data
group = www-data
listen = /run/php/$pool-fpm.sock
;listen.backlog = 511
listen.owner = www-data
pm = dynamic
pm.max_children = 5
pm.start_servers = 2
[api]
listen = 127.0.0.1:9001
listen.backlog = 64
pm.max_children = 20
";
    let items = parse(&PHP_FPM.settings, www);
    let www_pool = Some(Section {
        name: "www".into(),
        listen: vec!["/run/php/www-fpm.sock".into()],
    });
    let api = Some(Section {
        name: "api".into(),
        listen: vec!["127.0.0.1:9001".into()],
    });
    let got: Vec<(String, Option<SettingValue>, Option<Section>)> = items
        .into_iter()
        .filter_map(|i| match i {
            Item::Set(a) => Some((a.setting, a.value, a.section)),
            Item::Include { .. } => None,
        })
        .collect();
    assert_eq!(
        got,
        [
            ("pm.max_children".into(), n(5), www_pool),
            ("listen.backlog".into(), n(64), api.clone()),
            ("pm.max_children".into(), n(20), api),
        ]
    );
}

/// Redis's redis.conf (Debian 12's, cut): keys in any case, `include`.
#[test]
fn redis_directives() {
    let conf = "\
# include /path/to/local.conf
include /etc/redis/local.conf
bind 127.0.0.1 -::1
tcp-backlog 511
# maxclients 10000
MAXCLIENTS 20
";
    let items = parse(&REDIS.settings, conf);
    assert_eq!(
        items[0],
        Item::Include {
            kind: Include::File,
            pattern: "/etc/redis/local.conf".into(),
            line: 2
        }
    );
    assert_eq!(
        set(&REDIS.settings, conf),
        [
            ("tcp-backlog".into(), n(511), 4),
            ("maxclients".into(), n(20), 6)
        ]
    );
}

#[test]
fn globs_match_file_names() {
    assert!(glob_matches("*.conf", "www.conf"));
    assert!(!glob_matches("*.conf", "www.conf.dpkg-old"));
    assert!(glob_matches("*", "anything"));
    assert!(glob_matches("a*b*c", "aXbYc"));
    assert!(!glob_matches("a*b*c", "aXc"));
    assert!(glob_matches("exact", "exact"));
    assert!(!glob_matches("ab*ba", "aba"));
}

#[test]
fn nothing_here_panics_on_odd_input() {
    for spec in [
        &POSTGRES.settings,
        &HAPROXY.settings,
        &NGINX.settings,
        &PHP_FPM.settings,
        &REDIS.settings,
        &GUNICORN.settings,
    ] {
        for text in [
            "",
            "=",
            "[",
            "]",
            "{{{;;}}}",
            "\"unterminated",
            "max_connections",
            "maxconn",
            "frontend",
            "\u{0}\u{ffff}",
        ] {
            let _ = parse(spec, text);
        }
        for cmd in [
            "",
            "-c",
            "x -c",
            "x -w",
            "x --workers",
            "x -D",
            "x (",
            "x )",
        ] {
            if let Some(argv) = spec.argv(cmd) {
                let _ = from_cmdline(spec, &argv);
                let _ = config_files(spec, &argv, cmd, &mut |_| None);
            }
        }
    }
}
