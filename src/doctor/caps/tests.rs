use serde_json::json;

use super::*;
use crate::model::{Section, SettingValue};

/// One listener (inode 7) at `local`, held by `owners` (pid, comm, cmdline), with `settings`.
fn snap(local: &str, owners: &[(u32, &str, &str)], settings: Vec<Setting>) -> (Snapshot, Local) {
    let owners: Vec<_> = owners
        .iter()
        .map(|(pid, comm, cmd)| json!({"inode": 7, "pid": pid, "comm": comm, "cmdline": cmd}))
        .collect();
    let local_json = if local.starts_with('/') {
        json!({"path": local, "type": "stream"})
    } else {
        json!(local)
    };
    let mut s: Snapshot = serde_json::from_value(json!({
        "schema_version": 3, "tool": "test", "started_unix_ms": 0, "sysctls": {},
        "owners": owners,
        "samples": [{"elapsed_us": 0, "listeners": [
            {"local": local_json, "inode": 7, "uid": 0, "recv_q": 0, "send_q": 16}]}],
    }))
    .unwrap();
    s.settings = settings;
    let l = s.samples[0].listeners[0].local.clone();
    (s, l)
}

fn setting(pid: u32, name: &str, value: u64, source: SettingSource, written: &str) -> Setting {
    Setting {
        pid,
        name: name.into(),
        value: SettingValue::Number(value),
        source,
        written: written.into(),
        section: None,
    }
}

fn file(path: &str, line: u32) -> SettingSource {
    SettingSource::ConfigFile {
        path: path.into(),
        line,
    }
}

#[test]
fn an_older_snapshot_s_command_line_gives_the_cap_and_the_backlog_setting() {
    // As fixtures/snapshots/6.18-postgres-maxconn5-burst.json holds it: no settings recorded.
    let cmd = "/usr/lib/postgresql/15/bin/postgres -D /tmp/rt/pg -c listen_addresses=127.0.0.1 \
               -p 5440 -k /tmp/rt/pgrun -c max_connections=5";
    let (s, l) = snap("127.0.0.1:5440", &[(10860, "postgres", cmd)], Vec::new());
    let cap = of(&s, &l, 7).expect("PostgreSQL has a cap");
    assert_eq!(cap.value, Some(5));
    assert_eq!(cap.counts, Counts::Connections);
    assert!(matches!(cap.at_cap, AtCap::Refused(_)));
    assert_eq!(cap.settings()[0].written, "-c max_connections=5");
    let b = backlog_setting(&s, &l, 7).expect("max_connections derives the backlog");
    assert_eq!(
        (b.name.as_str(), b.source),
        ("max_connections", SettingSource::CommandLine)
    );

    // gunicorn's threads were not on its command line and its files were not read then.
    let cmd =
        "/usr/bin/python3 /usr/bin/gunicorn --bind 127.0.0.1:8082 --workers 2 --backlog 16 app:app";
    let (s, l) = snap("127.0.0.1:8082", &[(11213, "gunicorn", cmd)], Vec::new());
    let cap = of(&s, &l, 7).unwrap();
    assert_eq!(cap.value, None);
    assert!(matches!(&cap.basis, Basis::Settings { unknown, .. } if *unknown == ["threads"]));
    assert!(cap.read_from_settings());
    assert_eq!(backlog_setting(&s, &l, 7).unwrap().written, "--backlog 16");
}

#[test]
fn recorded_settings_win_over_the_command_line_and_a_default_is_no_place_to_change() {
    let cmd = "gunicorn -w 2 app:app";
    let recorded = vec![
        setting(5, "workers", 2, SettingSource::CommandLine, "-w 2"),
        setting(
            5,
            "threads",
            4,
            file("/srv/gunicorn.conf.py", 3),
            "threads = 4",
        ),
        setting(5, "backlog", 2048, SettingSource::Default, ""),
    ];
    let (s, l) = snap(
        "127.0.0.1:8000",
        &[(5, "gunicorn", cmd), (6, "gunicorn", cmd)],
        recorded,
    );
    let cap = of(&s, &l, 7).unwrap();
    assert_eq!(cap.value, Some(8));
    assert_eq!(cap.counts, Counts::Requests);
    assert_eq!(
        backlog_setting(&s, &l, 7),
        None,
        "the default is not set anywhere"
    );
}

#[test]
fn haproxy_takes_the_lowest_of_global_and_its_frontend() {
    let cfg = "/tmp/h/haproxy.cfg";
    let fe = |name: &str, bind: &str| {
        Some(Section {
            name: name.into(),
            listen: vec![bind.into()],
        })
    };
    let recorded = vec![
        setting(9, "maxconn", 50, file(cfg, 4), "maxconn 50"),
        Setting {
            section: fe("frontend fe", "127.0.0.1:8090"),
            ..setting(9, "maxconn", 20, file(cfg, 12), "maxconn 20")
        },
        Setting {
            section: fe("frontend fe", "127.0.0.1:8090"),
            ..setting(9, "backlog", 16, file(cfg, 13), "backlog 16")
        },
        Setting {
            section: fe("frontend other", ":9000"),
            ..setting(9, "maxconn", 5, file(cfg, 20), "maxconn 5")
        },
    ];
    let cmd = "haproxy -f /tmp/h/haproxy.cfg";
    let (s, l) = snap("127.0.0.1:8090", &[(9, "haproxy", cmd)], recorded.clone());
    let cap = of(&s, &l, 7).unwrap();
    assert_eq!(cap.value, Some(20));
    let lines: Vec<&str> = cap.settings().iter().map(|s| s.written.as_str()).collect();
    assert_eq!(
        lines,
        ["maxconn 50", "maxconn 20"],
        "not the other frontend's"
    );
    assert_eq!(backlog_setting(&s, &l, 7).unwrap().written, "backlog 16");
    // A socket no frontend binds: only the global maxconn is sure to apply.
    let (s, l) = snap("127.0.0.1:7777", &[(9, "haproxy", cmd)], recorded);
    let cap = of(&s, &l, 7).unwrap();
    assert_eq!(cap.value, Some(50));
    assert!(matches!(
        cap.basis,
        Basis::Settings {
            every_section: true,
            ..
        }
    ));
}

#[test]
fn php_fpm_s_pool_is_the_one_whose_listen_names_the_socket() {
    let pool = |name: &str, listen: &str, n: u64, line: u32| Setting {
        section: Some(Section {
            name: name.into(),
            listen: vec![listen.into()],
        }),
        ..setting(
            3,
            "pm.max_children",
            n,
            file("/etc/php/8.2/fpm/pool.d/www.conf", line),
            "pm.max_children = N",
        )
    };
    let recorded = vec![
        pool("www", "/run/php/php8.2-fpm.sock", 5, 9),
        pool("api", "127.0.0.1:9001", 20, 14),
    ];
    let owners = [
        (
            3,
            "php-fpm8.2",
            "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)",
        ),
        (4, "php-fpm8.2", "php-fpm: pool www"),
    ];
    let (s, l) = snap("/run/php/php8.2-fpm.sock", &owners, recorded.clone());
    assert_eq!(of(&s, &l, 7).unwrap().value, Some(5));
    let (s, l) = snap("127.0.0.1:9001", &owners, recorded.clone());
    assert_eq!(of(&s, &l, 7).unwrap().value, Some(20));
    // Neither pool names it: every pool's, and no single number.
    let (s, l) = snap("/run/other.sock", &owners, recorded);
    let cap = of(&s, &l, 7).unwrap();
    assert_eq!(cap.value, None);
    assert_eq!(cap.settings().len(), 2);
}

#[test]
fn nginx_auto_is_the_workers_running() {
    let conf = "/etc/nginx/nginx.conf";
    let recorded = vec![
        Setting {
            value: SettingValue::Auto,
            ..setting(
                1,
                "worker_processes",
                0,
                file(conf, 2),
                "worker_processes auto;",
            )
        },
        setting(
            1,
            "worker_connections",
            768,
            file(conf, 8),
            "worker_connections 768;",
        ),
    ];
    let owners = [
        (
            1,
            "nginx",
            "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;",
        ),
        (2, "nginx", "nginx: worker process"),
        (3, "nginx", "nginx: worker process"),
    ];
    let (s, l) = snap("0.0.0.0:80", &owners, recorded);
    let cap = of(&s, &l, 7).unwrap();
    assert_eq!(cap.value, Some(2 * 768));
    assert!(matches!(
        cap.basis,
        Basis::Settings {
            workers_running: Some(2),
            ..
        }
    ));
}

#[test]
fn node_counts_its_processes_and_java_says_it_cannot_be_read() {
    let (s, l) = snap(
        "127.0.0.1:8081",
        &[
            (20, "node", "node server.js"),
            (21, "node", "node server.js"),
        ],
        Vec::new(),
    );
    let cap = of(&s, &l, 7).unwrap();
    assert_eq!((cap.value, cap.counts), (Some(2), Counts::AcceptLoops));
    assert!(!cap.read_from_settings());
    let (s, l) = snap(
        "127.0.0.1:8084",
        &[(30, "java", "java -jar app.jar")],
        Vec::new(),
    );
    let cap = of(&s, &l, 7).unwrap();
    assert_eq!(cap.value, None);
    assert!(matches!(cap.basis, Basis::Unreadable));
    // No runtime, or one without a cap of its kind.
    let (s, l) = snap("127.0.0.1:1", &[(40, "myserver", "./myserver")], Vec::new());
    assert_eq!(of(&s, &l, 7), None);
    let (s, l) = snap("127.0.0.1:1", &[], Vec::new());
    assert_eq!(of(&s, &l, 7), None);
}
