use std::collections::HashSet;

use super::*;

fn owner(comm: &str, cmdline: &str) -> Vec<Owner> {
    vec![Owner {
        inode: 1,
        pid: 1,
        comm: comm.into(),
        cmdline: cmdline.into(),
        ..Owner::default()
    }]
}

fn id_of(comm: &str, cmdline: &str) -> Option<&'static str> {
    runtime_of(&owner(comm, cmdline)).map(|r| r.id)
}

#[test]
fn runtimes_from_comm_and_cmdline() {
    let cases = [
        ("java", "java -jar app.jar", Some("java")),
        ("nginx", "nginx: worker process", Some("nginx")),
        (
            "python3",
            "python3 -m http.server 8000",
            Some("python-http-server"),
        ),
        (
            "python3",
            "/usr/bin/python3 /usr/bin/gunicorn app:app",
            Some("gunicorn"),
        ),
        ("python3", "python3 -m uvicorn app:app", Some("uvicorn")),
        ("python3.11", "python3.11 server.py", Some("python")),
        ("redis-server", "redis-server *:6379", Some("redis")),
        (
            "postgres",
            "/usr/lib/postgresql/15/bin/postgres -D /x",
            Some("postgres"),
        ),
        (
            "haproxy",
            "haproxy -f /etc/haproxy/haproxy.cfg",
            Some("haproxy"),
        ),
        ("apache2", "/usr/sbin/apache2 -k start", Some("httpd")),
        // http.server under another interpreter's name is not Python's.
        ("myserver", "./myserver http.server", None),
        ("myserver", "./myserver", None),
    ];
    for (comm, cmd, want) in cases {
        assert_eq!(id_of(comm, cmd), want, "{comm} {cmd}");
    }
    assert_eq!(runtime_of(&[]), None);
}

#[test]
fn unix_socket_runtimes_from_comm_and_cmdline() {
    let cases = [
        (
            "php-fpm8.2",
            "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)",
            Some("php-fpm"),
        ),
        ("php-fpm", "php-fpm: pool www", Some("php-fpm")),
        // A child whose comm was cut or renamed still says so in its command line.
        ("php8", "php-fpm: pool www", Some("php-fpm")),
        ("uwsgi", "uwsgi --ini /etc/uwsgi/app.ini", Some("uwsgi")),
        ("myapp", "uWSGI worker 1", Some("uwsgi")),
        ("systemd", "/sbin/init", Some("systemd")),
    ];
    for (comm, cmd, want) in cases {
        assert_eq!(id_of(comm, cmd), want, "{comm} {cmd}");
    }
    // Socket activation: the service that calls listen() itself decides, not the unit.
    let mut held = owner("systemd", "/sbin/init");
    held.extend(owner(
        "gunicorn",
        "/usr/bin/python3 /usr/bin/gunicorn app:app",
    ));
    assert_eq!(runtime_of(&held), Some(&GUNICORN));
    held.truncate(1);
    held.extend(owner("myserver", "./myserver"));
    assert_eq!(runtime_of(&held), Some(&SYSTEMD));
    assert!(PHP_FPM.worker_pool() && !GUNICORN.worker_pool());
    assert_eq!(PHP_FPM.fixed_default(), None, "it depends on the release");
    assert_eq!(UWSGI.fixed_default(), Some(100));
}

#[test]
fn postgres_lever_reaches_the_target() {
    let derived = POSTGRES
        .derived
        .as_ref()
        .expect("PostgreSQL's backlog is derived");
    // 2 × max_connections ≥ N, and 2 × (max_connections + 22) more so.
    for n in [1, 244, 4096, 4097, 9999] {
        assert!(2 * (derived.value_for)(n) >= n);
    }
    assert_eq!((derived.value_for)(4096), 2048);
    assert!(
        derived
            .words(2048, 4096, None)
            .contains("with `ALTER SYSTEM SET max_connections = 2048;` or in postgresql.conf.")
    );
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
        ..Owner::default()
    });
    assert_eq!(NGINX.reload_pid(&o), Some(9));
    assert_eq!(NGINX.reload_pid(&o[..1]), Some(7));
}

/// Every value is complete and every id and name said once: a runtime added with a field
/// left as `BASE` had it fails here.
#[test]
fn every_runtime_is_complete_and_unique() {
    let mut ids = HashSet::new();
    let mut names = HashSet::new();
    for r in RUNTIMES {
        assert!(ids.insert(r.id), "id {} twice", r.id);
        assert!(names.insert(r.name), "name {} twice", r.name);
        assert!(
            !r.id.is_empty() && r.id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "{:?} is not kebab-case",
            r.id
        );
        let r#in = &r.recognise;
        assert!(
            !(r#in.comm.is_empty() && r#in.cmdline.is_empty() && r#in.interpreter.is_empty()),
            "{} cannot be recognised",
            r.id
        );
        for k in std::iter::once(&r.tcp).chain(&r.unix).chain(&r.concurrency) {
            assert!(!k.name.is_empty(), "{}: a knob without a name", r.id);
            assert!(k.how.contains("{n}"), "{}: {:?} has no {{n}}", r.id, k.how);
        }
        assert_eq!(
            r.relisten == Relisten::Reload,
            r.reload.is_some(),
            "{}: a reload needs its master and command",
            r.id
        );
        assert_eq!(
            r.default_backlog == DefaultBacklog::Derived && r.derived.is_none(),
            r.id == "haproxy",
            "{}: only HAProxy's default is derived without a lever of its own",
            r.id
        );
        // Recognised as itself from its own process.
        if let Some(comm) = r#in.comm.first() {
            let comm = comm.trim_end_matches('*');
            assert_eq!(id_of(comm, comm), Some(r.id), "{comm}");
        }
    }
}

#[test]
fn knobs_fill_their_number_and_default() {
    let s = how_to_set(Some(&NGINX), false, 4096);
    assert_eq!(
        s,
        "nginx: `backlog=4096` on the listen directive, e.g. `listen 80 backlog=4096;` (default 511 on Linux)"
    );
    assert!(how_to_set(Some(&NGINX), true, 8).contains("listen unix:PATH backlog=8;"));
    // A runtime without a Unix knob of its own uses its TCP one.
    assert_eq!(
        how_to_set(Some(&REDIS), true, 8),
        how_to_set(Some(&REDIS), false, 8)
    );
    assert!(how_to_set(None, false, 64).starts_with("pass 64 as the backlog argument"));
    assert!(how_to_set(Some(&PHP_FPM), false, 1).contains("default 511 before PHP 8.2"));
    for r in RUNTIMES {
        for unix in [false, true] {
            let s = how_to_set(Some(r), unix, 4321);
            assert!(s.contains("4321") && !s.contains("{n}") && !s.contains("{default}"));
            assert!(!s.contains("  "), "{}: a double space in {s:?}", r.id);
        }
        assert!(!r.restart_note.contains("  "), "{}", r.id);
    }
}

#[test]
fn serialises_as_its_id() {
    assert_eq!(serde_json::to_string(&PHP_FPM).unwrap(), "\"php-fpm\"");
    assert_eq!(
        serde_json::to_string(&Some(&PYTHON_HTTP_SERVER)).unwrap(),
        "\"python-http-server\""
    );
}
