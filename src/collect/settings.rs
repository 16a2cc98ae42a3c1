//! Reading the settings of the processes that hold listeners, with their owners: for each
//! process whose runtime is known, its command line (already read with it), then the
//! configuration files that command line names and the files those include, each read as the
//! process sees it (`Sources::process_file`: through its own root, relative paths from its
//! working directory; an environment variable that names a directory, from its environment).
//! What to read and how to parse it is the runtime table's data
//! (`doctor::runtime::settings`); this module only drives the reads. Every process is read at
//! most once, and of the processes that share a socket and a command line (a pre-fork
//! server's master and workers) only the first. Nothing here fails: a file that cannot be
//! read leaves its settings out, and a gap says which, unless it was only a default place.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;

use super::Sources;
use crate::doctor::runtime::settings::{self, ConfigFile, Include, Item, Read, Settings};
use crate::doctor::runtime::{self, Runtime};
use crate::model::{Gap, Owner, Setting};

/// Includes followed at most this deep (PostgreSQL's own limit is 10).
const MAX_DEPTH: usize = 10;
/// Files read at most per process: a glob over a big directory stops here.
const MAX_FILES: usize = 64;

/// The settings of `owners`' processes, and a gap for the files that could not be read.
pub(super) fn read<S: Sources>(sources: &mut S, owners: &[Owner]) -> (Vec<Setting>, Option<Gap>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (pid, rt, cmdline) in to_read(owners) {
        let spec = &rt.settings;
        let Some(argv) = spec.argv(cmdline) else {
            continue;
        };
        let files = settings::config_files(spec, &argv, cmdline, &mut |var| {
            sources.process_env(pid, var)
        });
        let mut reader = Reader {
            sources: &mut *sources,
            spec,
            pid,
            reads: Vec::new(),
            files: 0,
            problems: Vec::new(),
        };
        for file in files {
            reader.file(&file, 0);
        }
        let Reader {
            reads,
            problems: mine,
            ..
        } = reader;
        problems.extend(
            mine.into_iter()
                .map(|p| format!("PID {pid} ({}): {p}", rt.name)),
        );
        out.extend(settings::merge(
            spec,
            pid,
            settings::from_cmdline(spec, &argv),
            &reads,
        ));
    }
    let gap = (!problems.is_empty()).then(|| {
        Gap::new(
            "settings",
            format!(
                "configuration files that could not be read, their settings unknown: {}",
                problems.join("; ")
            ),
        )
    });
    (out, gap)
}

/// The processes to read, each once, lowest PID first, with their runtime and command line:
/// of those sharing a socket and a command line, the first (the master of a pre-fork server).
fn to_read(owners: &[Owner]) -> Vec<(u32, &'static Runtime, &str)> {
    let mut by_pid: BTreeMap<u32, (&Owner, Vec<u64>)> = BTreeMap::new();
    for o in owners {
        by_pid
            .entry(o.pid)
            .or_insert((o, Vec::new()))
            .1
            .push(o.inode);
    }
    let mut read_for: HashMap<u64, HashSet<&str>> = HashMap::new();
    let mut out = Vec::new();
    for (pid, (o, inodes)) in by_pid {
        let Some(rt) = runtime::runtime_of(std::slice::from_ref(o)) else {
            continue;
        };
        if !rt.settings.read_at_all() {
            continue;
        }
        let cmdline = o.cmdline.as_str();
        let seen = inodes
            .iter()
            .any(|i| read_for.get(i).is_some_and(|c| c.contains(cmdline)));
        for i in &inodes {
            read_for.entry(*i).or_default().insert(cmdline);
        }
        if !seen {
            out.push((pid, rt, cmdline));
        }
    }
    out
}

/// One process's files, read in order with their includes.
struct Reader<'a, S> {
    sources: &'a mut S,
    spec: &'static Settings,
    pid: u32,
    /// What was read, in the order it counts: an include's files sit between the lines
    /// before and after it.
    reads: Vec<Read>,
    files: usize,
    problems: Vec<String>,
}

impl<S: Sources> Reader<'_, S> {
    fn file(&mut self, file: &ConfigFile, depth: usize) {
        if self.files >= MAX_FILES {
            self.problems.push(format!(
                "more than {MAX_FILES} files, {} not read",
                file.path
            ));
            return;
        }
        self.files += 1;
        let text = match self.sources.process_file(self.pid, &file.path) {
            Ok(text) => text,
            Err(e) if file.optional && e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                self.problems.push(format!("{}: {e}", file.path));
                return;
            }
        };
        let mut here = Read {
            path: file.path.clone(),
            items: Vec::new(),
        };
        for item in settings::parse(self.spec, &text) {
            match item {
                Item::Set(a) => here.items.push(a),
                Item::Include {
                    kind,
                    pattern,
                    line,
                } => {
                    let before = std::mem::replace(
                        &mut here,
                        Read {
                            path: file.path.clone(),
                            items: Vec::new(),
                        },
                    );
                    self.reads.push(before);
                    if depth + 1 >= MAX_DEPTH {
                        self.problems.push(format!(
                            "{}, line {line}: includes nested deeper than {MAX_DEPTH}",
                            file.path
                        ));
                        continue;
                    }
                    for inc in self.included(&file.path, kind, &pattern) {
                        self.file(&inc, depth + 1);
                    }
                }
            }
        }
        self.reads.push(here);
    }

    /// The files an include names, relative to the including file's directory.
    fn included(&mut self, from: &str, kind: Include, pattern: &str) -> Vec<ConfigFile> {
        let path = match (pattern.starts_with('/'), from.rsplit_once('/')) {
            (true, _) | (false, None) => pattern.to_string(),
            (false, Some((dir, _))) => {
                format!("{}/{pattern}", if dir.is_empty() { "/" } else { dir })
            }
        };
        let one = |path: String, optional| ConfigFile { path, optional };
        match kind {
            Include::File => vec![one(path, false)],
            Include::IfExists => vec![one(path, true)],
            Include::Dir => self
                .listed(&path, |name| {
                    name.ends_with(".conf") && !name.starts_with('.')
                })
                .into_iter()
                .map(|p| one(p, false))
                .collect(),
            Include::Glob if !path.contains('*') => vec![one(path, false)],
            Include::Glob => {
                let (dir, name) = path.rsplit_once('/').unwrap_or((".", &path));
                let (dir, name) = (dir.to_string(), name.to_string());
                self.listed(&dir, |n| settings::glob_matches(&name, n))
                    .into_iter()
                    .map(|p| one(p, false))
                    .collect()
            }
        }
    }

    /// The files of a directory that `keep`, in name order, as paths.
    fn listed(&mut self, dir: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let dir = if dir.is_empty() { "/" } else { dir };
        match self.sources.process_dir(self.pid, dir) {
            Ok(mut names) => {
                names.retain(|n| keep(n));
                names.sort();
                names
                    .into_iter()
                    .map(|n| format!("{}/{n}", dir.trim_end_matches('/')))
                    .collect()
            }
            // A pattern that matches nothing is no error (nginx, php-fpm and PostgreSQL agree).
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                self.problems.push(format!("{dir}: {e}"));
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fake::Fake;
    use crate::model::{SettingSource, SettingValue};

    fn owner(inode: u64, pid: u32, comm: &str, cmdline: &str) -> Owner {
        Owner {
            inode,
            pid,
            comm: comm.into(),
            cmdline: cmdline.into(),
            state: None,
            watches: None,
        }
    }

    fn values(settings: &[Setting]) -> Vec<(u32, &str, SettingValue, &SettingSource)> {
        settings
            .iter()
            .map(|s| (s.pid, s.name.as_str(), s.value, &s.source))
            .collect()
    }

    #[test]
    fn a_pre_fork_server_is_read_once_and_its_files_through_the_fake() {
        let cmd = "/usr/bin/python3 /usr/bin/gunicorn -c /srv/app/gunicorn.conf.py -w 2 app:app";
        let owners = [
            owner(7, 100, "gunicorn", cmd),
            owner(7, 101, "gunicorn", cmd),
            owner(7, 102, "gunicorn", cmd),
        ];
        let mut fake = Fake::default();
        fake.files.insert(
            "/srv/app/gunicorn.conf.py".into(),
            "workers = 8\nthreads = 4\n".into(),
        );
        let (got, gap) = read(&mut fake, &owners);
        assert_eq!(gap, None);
        let conf = SettingSource::ConfigFile {
            path: "/srv/app/gunicorn.conf.py".into(),
            line: 2,
        };
        assert_eq!(
            values(&got),
            [
                (
                    100,
                    "workers",
                    SettingValue::Number(2),
                    &SettingSource::CommandLine
                ),
                (100, "threads", SettingValue::Number(4), &conf),
                (
                    100,
                    "backlog",
                    SettingValue::Number(2048),
                    &SettingSource::Default
                ),
            ]
        );
        assert_eq!(
            fake.files_read,
            [(100, "/srv/app/gunicorn.conf.py".to_string())]
        );
    }

    #[test]
    fn includes_are_read_in_place_and_a_missing_file_is_a_gap() {
        let pg =
            "/usr/lib/postgresql/15/bin/postgres -D /var/lib/pg -c config_file=/etc/pg/main.conf";
        let php = "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)";
        let owners = [
            owner(7, 200, "postgres", pg),
            owner(8, 300, "php-fpm8.2", php),
            owner(8, 301, "php-fpm8.2", "php-fpm: pool www"),
        ];
        let mut fake = Fake::default();
        for (path, text) in [
            (
                "/etc/pg/main.conf",
                "max_connections = 100\ninclude_dir = 'conf.d'\n",
            ),
            ("/etc/pg/conf.d/90-late.conf", "max_connections = 300\n"),
            ("/etc/pg/conf.d/10-early.conf", "max_connections = 200\n"),
            ("/etc/pg/conf.d/notes.txt", "max_connections = 1\n"),
            (
                "/etc/php/8.2/fpm/php-fpm.conf",
                "[global]\ninclude=/etc/php/8.2/fpm/pool.d/*.conf\n",
            ),
            (
                "/etc/php/8.2/fpm/pool.d/www.conf",
                "[www]\nlisten = /run/php/php8.2-fpm.sock\npm.max_children = 5\n",
            ),
        ] {
            fake.files.insert(path.into(), text.into());
        }
        let (got, gap) = read(&mut fake, &owners);
        let pg_won: Vec<_> = got.iter().filter(|s| s.pid == 200).collect();
        assert_eq!(pg_won.len(), 1);
        assert_eq!(pg_won[0].value, SettingValue::Number(300));
        assert_eq!(
            pg_won[0].source,
            SettingSource::ConfigFile {
                path: "/etc/pg/conf.d/90-late.conf".into(),
                line: 1
            }
        );
        let fpm: Vec<_> = got.iter().filter(|s| s.pid == 300).collect();
        assert_eq!(fpm.len(), 1);
        assert_eq!(fpm[0].value, SettingValue::Number(5));
        assert_eq!(
            fpm[0].section.as_ref().map(|s| s.listen.clone()),
            Some(vec!["/run/php/php8.2-fpm.sock".to_string()])
        );
        // postgresql.auto.conf is not there: a gap names it; the pool child is not read.
        let gap = gap.expect("a gap");
        assert!(
            gap.reason
                .contains("PID 200 (PostgreSQL): /var/lib/pg/postgresql.auto.conf"),
            "{}",
            gap.reason
        );
        assert!(!fake.files_read.iter().any(|(pid, _)| *pid == 301));
    }

    #[test]
    fn a_data_directory_named_by_the_environment_is_read() {
        // As `pg_ctl restart -o '...'` leaves it: no -D, PGDATA in its environment.
        let pg = "/usr/lib/postgresql/15/bin/postgres -c listen_addresses=127.0.0.1 -p 5440";
        let mut fake = Fake::default();
        fake.env.insert("PGDATA".into(), "/tmp/cap/pg".into());
        fake.files.insert(
            "/tmp/cap/pg/postgresql.conf".into(),
            "max_connections = 100\n".into(),
        );
        fake.files.insert(
            "/tmp/cap/pg/postgresql.auto.conf".into(),
            "# Do not edit this file manually!\nmax_connections = '7'\n".into(),
        );
        let (got, gap) = read(&mut fake, &[owner(7, 16552, "postgres", pg)]);
        assert_eq!(gap, None);
        assert_eq!(
            values(&got),
            [(
                16552,
                "max_connections",
                SettingValue::Number(7),
                &SettingSource::ConfigFile {
                    path: "/tmp/cap/pg/postgresql.auto.conf".into(),
                    line: 2
                }
            )]
        );
    }

    #[test]
    fn a_default_place_that_holds_nothing_is_no_gap_and_unknown_runtimes_are_not_read() {
        let owners = [
            owner(7, 100, "gunicorn", "gunicorn -w 3 app:app"),
            owner(8, 200, "java", "java -jar app.jar"),
            owner(9, 300, "redis-server", "redis-server 127.0.0.1:6379"),
        ];
        let mut fake = Fake::default();
        let (got, gap) = read(&mut fake, &owners);
        assert_eq!(gap, None);
        assert_eq!(fake.files_read, [(100, "gunicorn.conf.py".to_string())]);
        // Redis's title hides its flags and its file: nothing, not even its defaults.
        assert!(got.iter().all(|s| s.pid == 100));
    }
}
