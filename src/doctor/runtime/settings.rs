//! Where a runtime's settings are read from its running process, as data (`Settings`, one per
//! runtime in `table.rs`), and the pure functions that read them: a command line into the
//! settings it sets and the configuration files it names (`from_cmdline`, `config_files`), a
//! configuration file's text into its assignments and includes (`parse`), and all of them
//! into the value that wins (`merge`: the command line beats every file, a later file or line
//! beats an earlier one, the default comes last). No I/O: `collect` reads the files, through
//! the process's own root, and hands their text here; `doctor` reads the command lines of an
//! older snapshot's owners with the same `from_cmdline`.
//!
//! A command line is read as `/proc/PID/cmdline` joined by spaces (`Owner::cmdline`): an
//! argument holding a space (a path) is read as two.

use std::net::{IpAddr, SocketAddr};

use crate::model::{Local, Section, Setting, SettingSource, SettingValue, UnixName};

/// Where one runtime's settings are, and which of them matter here.
#[derive(Debug)]
pub struct Settings {
    /// The prefix of the command line that carries the program's arguments after it, when the
    /// program rewrites its title (nginx's master: `nginx: master process ARGS`): a process
    /// whose command line does not start so (a worker) is not read.
    pub argv_after: Option<&'static str>,
    /// The command line of its worker processes, which `auto` counts (nginx's
    /// `worker_processes auto`: the workers running are the value).
    pub worker: Option<&'static str>,
    /// Settings its command line sets, each with its spellings.
    pub flags: &'static [Flag],
    /// Settings given on the command line in the configuration's own syntax (`nginx -g
    /// 'worker_processes 2;'`): the flag that carries them.
    pub inline: Option<Spelled>,
    /// Its configuration files, in the order they are read: each is found by the first of its
    /// ways that the command line allows.
    pub files: &'static [&'static [Locate]],
    pub syntax: Syntax,
    /// The configuration's keys that are settings, and the setting each is.
    pub keys: &'static [(&'static str, &'static str)],
    /// The keys that include other files, and how.
    pub includes: &'static [(&'static str, Include)],
    /// Sections of the configuration that apply to some sockets only (php-fpm's pools).
    pub pools: Option<Pools>,
    /// The value of a setting that neither the command line nor a file sets.
    pub defaults: &'static [(&'static str, u64)],
    /// The defaults hold only when a configuration file was read: without one, where the
    /// settings are is not known (Redis's title hides its arguments; PostgreSQL started with
    /// PGDATA instead of -D).
    pub defaults_need_a_file: bool,
    /// The setting that is its listen() backlog, when it is one.
    pub backlog: Option<&'static str>,
    /// What a setting on its command line overrides, and where to change it instead, for the
    /// plan's words: `{setting}` is the setting as written.
    pub on_command_line: Option<OnCommandLine>,
}

/// A runtime whose settings are not read: everything empty.
pub const NONE: Settings = Settings {
    argv_after: None,
    worker: None,
    flags: &[],
    inline: None,
    files: &[],
    syntax: Syntax::KeyValue,
    keys: &[],
    includes: &[],
    pools: None,
    defaults: &[],
    defaults_need_a_file: false,
    backlog: None,
    on_command_line: None,
};

/// A setting of the command line.
#[derive(Debug)]
pub struct Flag {
    /// The setting it sets, by the name the configuration file gives it.
    pub setting: &'static str,
    pub spelled: &'static [Spelled],
}

/// One way a command line writes a flag's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelled {
    /// `--workers 2` and `--workers=2`.
    Long(&'static str),
    /// `-w 2` and `-w2`.
    Short(&'static str),
    /// A key and its value behind a flag: `-c max_connections=5`, `-cmax_connections=5`.
    Assign {
        flag: &'static str,
        key: &'static str,
    },
}

/// One way to find a configuration file from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locate {
    /// The value of a flag (every time it is given: HAProxy takes several `-f`).
    Flag(Spelled),
    /// A file in the directory a flag names: PostgreSQL's `-D DATADIR` and its
    /// `postgresql.auto.conf`.
    InDir { flag: Spelled, file: &'static str },
    /// A file in the directory an environment variable of the process names (PostgreSQL's
    /// PGDATA, with which `pg_ctl restart -o` and the Docker image start it without -D).
    EnvDir {
        var: &'static str,
        file: &'static str,
    },
    /// Between the parentheses of a rewritten title: `php-fpm: master process (PATH)`.
    Parenthesised,
    /// The first argument after the program, when it is not a flag (`redis-server FILE`).
    FirstArg,
    /// Where it is when the command line names none; it may not exist.
    Default(&'static str),
}

/// How a configuration file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// `key = value` (or `key value`), `[section]` headers, `#` and `;` comments, values maybe
    /// quoted: php-fpm, PostgreSQL, uWSGI's ini, gunicorn's Python, lighttpd.
    KeyValue,
    /// `key value` per line, `#` comments, keys in any case: Redis.
    Directives,
    /// HAProxy: `global`, `defaults`, `frontend NAME`, `listen NAME` and `backend NAME`
    /// sections of `key value` lines; a frontend's `bind` lines say what it listens on, and a
    /// frontend without a setting of its own takes the `defaults` section's before it.
    Haproxy,
    /// nginx: `name args;` directives and `name { ... }` blocks; only the main context and its
    /// `events` block are read (that is where its worker settings live).
    Nginx,
}

/// How an include names what it includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// One file, which must exist.
    File,
    /// One file, if it exists.
    IfExists,
    /// The `.conf` files of a directory, in name order (PostgreSQL's `include_dir`).
    Dir,
    /// A file name pattern with `*`, matches in name order.
    Glob,
}

/// Sections that apply to some sockets only, and the section that applies to all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pools {
    /// The section that is not a pool (php-fpm's `[global]`).
    pub global: &'static str,
    /// The key that says what a pool listens on (`listen`); `$pool` in it is the pool's name.
    pub listen: &'static str,
}

/// How the plan speaks of a setting found on the command line.
#[derive(Debug)]
pub struct OnCommandLine {
    /// What it overrides, when there is something: `postgresql.conf and ALTER SYSTEM`.
    pub overrides: Option<&'static str>,
    /// Where the command line is written: `where the server is started (its unit, or
    /// \`pg_ctl -o\`)`.
    pub change_at: &'static str,
    /// What a restart must then be, as a parenthesis after "restart NAME", when its usual one
    /// (`Runtime::restart_note`) would start it with the old command line again.
    pub restart: Option<&'static str>,
    /// What its knob's words say besides where it is set, which still holds (uWSGI refuses a
    /// backlog above somaxconn).
    pub also: Option<&'static str>,
}

/// A configuration file a command line leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// As the process names it: absolute, or relative to its working directory.
    pub path: String,
    /// A default place, which may hold nothing: its absence is no gap.
    pub optional: bool,
}

/// One line of a configuration file, in order: an assignment, or an include.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Set(Assignment),
    Include {
        kind: Include,
        pattern: String,
        line: u32,
    },
}

/// A key set in a configuration file (or on the command line), before it is known to win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The setting's name (the table's `keys` applied).
    pub setting: String,
    /// None when the value is not a number nor `auto` (an expression in gunicorn's Python):
    /// the setting is then unknown, and no default stands in for it.
    pub value: Option<SettingValue>,
    /// As written: `maxconn 20`, `-c max_connections=5`.
    pub written: String,
    pub line: u32,
    pub section: Option<Section>,
}

/// A file's assignments and includes, with the path it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub path: String,
    pub items: Vec<Assignment>,
}

impl Settings {
    /// The arguments of a command line this runtime's settings are read from, program first;
    /// None for a process whose command line does not carry them (nginx's workers).
    pub fn argv<'a>(&self, cmdline: &'a str) -> Option<Vec<&'a str>> {
        let rest = match self.argv_after {
            Some(prefix) => cmdline.strip_prefix(prefix)?,
            None => cmdline,
        };
        let argv: Vec<&str> = rest.split_whitespace().collect();
        (!argv.is_empty()).then_some(argv)
    }

    /// Whether there is anything to read for it at all.
    pub fn read_at_all(&self) -> bool {
        !self.flags.is_empty() || !self.files.is_empty() || self.inline.is_some()
    }
}

/// The values a spelling takes in `argv`, in order: each with the position of its flag and
/// how it was written.
fn values<'a>(argv: &[&'a str], spelled: Spelled) -> Vec<(usize, &'a str, String)> {
    let (Spelled::Long(flag) | Spelled::Short(flag) | Spelled::Assign { flag, .. }) = spelled;
    let mut out = Vec::new();
    let mut i = 1;
    while i < argv.len() {
        let arg = argv[i];
        let attached = match (spelled, arg.strip_prefix(flag)) {
            (_, None) => {
                i += 1;
                continue;
            }
            (_, Some("")) => None,
            (Spelled::Long(_), Some(rest)) => rest.strip_prefix('='),
            // `-w2`, but not `-workers` for `-w`... nor `--workers`: an attached value does not
            // start with a dash.
            (_, Some(rest)) => (!rest.starts_with('-')).then_some(rest),
        };
        let (value, written, used) = match attached {
            Some(v) => (v, arg.to_string(), 1),
            None if arg == flag => match argv.get(i + 1) {
                Some(v) => (*v, format!("{arg} {v}"), 2),
                None => break,
            },
            // Another flag that starts like this one (`--workers-class`).
            None => {
                i += 1;
                continue;
            }
        };
        let value = match spelled {
            Spelled::Assign { key, .. } => match value.split_once('=') {
                // PostgreSQL reads `-` and `_` alike in a name given so (`ParseLongOption`).
                Some((k, v)) if k.replace('-', "_") == key.replace('-', "_") => Some(v),
                _ => None,
            },
            _ => Some(value),
        };
        if let Some(v) = value {
            out.push((i, v, written));
        }
        i += used;
    }
    out
}

/// A value as a setting's: a number (quotes around it allowed) or `auto`.
pub fn value_of(raw: &str) -> Option<SettingValue> {
    let v = raw.trim().trim_end_matches(';').trim();
    let v = v
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
        .unwrap_or(v)
        .trim();
    if v.eq_ignore_ascii_case("auto") {
        return Some(SettingValue::Auto);
    }
    v.parse().ok().map(SettingValue::Number)
}

/// The settings a command line sets (the flags of `spec`, and its inline configuration), in
/// the command line's order; the last of a setting wins.
pub fn from_cmdline(spec: &Settings, argv: &[&str]) -> Vec<Assignment> {
    let mut out: Vec<(usize, Assignment)> = Vec::new();
    for flag in spec.flags {
        for s in flag.spelled {
            for (at, v, written) in values(argv, *s) {
                out.push((
                    at,
                    Assignment {
                        setting: flag.setting.to_string(),
                        value: value_of(v),
                        written,
                        line: 0,
                        section: None,
                    },
                ));
            }
        }
    }
    if let Some(flag) = spec.inline {
        for (at, text) in inline_values(argv, flag) {
            for item in parse(spec, &text) {
                if let Item::Set(a) = item {
                    out.push((at, Assignment { line: 0, ..a }));
                }
            }
        }
    }
    out.sort_by_key(|(at, _)| *at);
    out.into_iter().map(|(_, a)| a).collect()
}

/// The text after an inline flag, up to the next flag (`-g daemon off; worker_processes 2;`),
/// with the flag's position.
fn inline_values(argv: &[&str], flag: Spelled) -> Vec<(usize, String)> {
    let (Spelled::Short(f) | Spelled::Long(f)) = flag else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut i = 1;
    while i < argv.len() {
        if argv[i] == f {
            let rest: Vec<&str> = argv[i + 1..]
                .iter()
                .take_while(|a| !a.starts_with('-'))
                .copied()
                .collect();
            out.push((i, rest.join(" ")));
            i += 1 + rest.len();
        } else {
            i += 1;
        }
    }
    out
}

/// The configuration files a command line (and the process's environment, `env`) leads to,
/// in the order they are read.
pub fn config_files(
    spec: &Settings,
    argv: &[&str],
    cmdline: &str,
    env: &mut dyn FnMut(&str) -> Option<String>,
) -> Vec<ConfigFile> {
    let mut out = Vec::new();
    for ways in spec.files {
        for way in *ways {
            let found: Vec<ConfigFile> = match *way {
                Locate::Flag(s) => values(argv, s)
                    .into_iter()
                    .map(|(_, v, _)| ConfigFile {
                        path: v.to_string(),
                        optional: false,
                    })
                    .collect(),
                Locate::InDir { flag, file } => values(argv, flag)
                    .into_iter()
                    .last()
                    .map(|(_, dir, _)| ConfigFile {
                        path: format!("{}/{file}", dir.trim_end_matches('/')),
                        optional: false,
                    })
                    .into_iter()
                    .collect(),
                Locate::EnvDir { var, file } => env(var)
                    .filter(|dir| !dir.is_empty())
                    .map(|dir| ConfigFile {
                        path: format!("{}/{file}", dir.trim_end_matches('/')),
                        optional: false,
                    })
                    .into_iter()
                    .collect(),
                Locate::Parenthesised => cmdline
                    .rsplit_once('(')
                    .and_then(|(_, rest)| rest.strip_suffix(')'))
                    .map(|p| ConfigFile {
                        path: p.to_string(),
                        optional: false,
                    })
                    .into_iter()
                    .collect(),
                Locate::FirstArg => argv
                    .get(1)
                    .filter(|a| !a.starts_with('-') && !a.contains(':'))
                    .map(|p| ConfigFile {
                        path: p.to_string(),
                        optional: false,
                    })
                    .into_iter()
                    .collect(),
                Locate::Default(p) => vec![ConfigFile {
                    path: p.to_string(),
                    optional: true,
                }],
            };
            if !found.is_empty() {
                out.extend(found);
                break;
            }
        }
    }
    out
}

/// A configuration file's assignments and includes, in order. Lines it cannot read are left
/// out; nothing here fails.
pub fn parse(spec: &Settings, text: &str) -> Vec<Item> {
    let items = match spec.syntax {
        Syntax::KeyValue => key_value(spec, text),
        Syntax::Directives => directives(text),
        Syntax::Haproxy => haproxy(text),
        Syntax::Nginx => nginx(text),
    };
    items
        .into_iter()
        .filter_map(|raw| named(spec, raw))
        .collect()
}

/// A line as it was read: its key, value and where it is.
#[derive(Clone)]
struct Raw {
    key: String,
    value: String,
    written: String,
    line: u32,
    section: Option<Section>,
}

/// A raw line as the table's setting or include, or nothing.
fn named(spec: &Settings, raw: Raw) -> Option<Item> {
    if let Some((_, kind)) = spec.includes.iter().find(|(k, _)| *k == raw.key) {
        return Some(Item::Include {
            kind: *kind,
            pattern: unquote(&raw.value).to_string(),
            line: raw.line,
        });
    }
    let (_, setting) = spec.keys.iter().find(|(k, _)| *k == raw.key)?;
    Some(Item::Set(Assignment {
        setting: setting.to_string(),
        value: value_of(&raw.value),
        written: raw.written,
        line: raw.line,
        section: raw.section,
    }))
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
        .unwrap_or(v)
}

/// A value without its trailing comment (` # ...`, ` ; ...`) outside quotes.
fn uncommented(v: &str) -> &str {
    let mut quote = None;
    let bytes = v.as_bytes();
    for (i, c) in v.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#' | ';') if i == 0 || bytes[i - 1].is_ascii_whitespace() => {
                return v[..i].trim_end();
            }
            _ => {}
        }
    }
    v.trim_end()
}

/// `key = value` files (see `Syntax::KeyValue`).
fn key_value(spec: &Settings, text: &str) -> Vec<Raw> {
    let mut out = Vec::new();
    let mut section: Option<String> = None;
    // Per pool: what it listens on, known only once its section has been read.
    let mut listens: Vec<(String, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) if !k.trim().contains(char::is_whitespace) => (k.trim(), v.trim()),
            _ => match line.split_once(char::is_whitespace) {
                Some((k, v)) => (k, v.trim()),
                None => continue,
            },
        };
        let value = uncommented(value);
        let pool = spec
            .pools
            .and_then(|p| section.as_ref().filter(|s| *s != p.global).map(|s| (p, s)));
        if let Some((p, s)) = pool
            && key == p.listen
        {
            listens.push((s.clone(), unquote(value).replace("$pool", s)));
        }
        out.push(Raw {
            key: key.to_string(),
            value: value.to_string(),
            written: format!("{key} = {value}"),
            line: n as u32 + 1,
            section: pool.map(|(_, s)| Section {
                name: s.clone(),
                listen: Vec::new(),
            }),
        });
    }
    for raw in &mut out {
        if let Some(s) = &mut raw.section {
            s.listen = listens
                .iter()
                .filter(|(pool, _)| *pool == s.name)
                .map(|(_, l)| l.clone())
                .collect();
        }
    }
    out
}

/// `key value` files (see `Syntax::Directives`).
fn directives(text: &str) -> Vec<Raw> {
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (key, value) = line.split_once(char::is_whitespace)?;
            let value = uncommented(value.trim());
            Some(Raw {
                key: key.to_ascii_lowercase(),
                value: value.to_string(),
                written: format!("{key} {value}"),
                line: n as u32 + 1,
                section: None,
            })
        })
        .collect()
}

/// Where a HAProxy line is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum In {
    Global,
    Defaults,
    Proxy,
    Other,
}

impl In {
    /// The section a keyword opens, if it opens one.
    fn opened_by(key: &str) -> Option<In> {
        Some(match key {
            "global" => In::Global,
            "defaults" => In::Defaults,
            "frontend" | "listen" => In::Proxy,
            "backend" | "peers" | "resolvers" | "userlist" | "cache" | "program" | "ring"
            | "mailers" | "http-errors" | "crt-store" | "log-forward" => In::Other,
            _ => return None,
        })
    }
}

/// A HAProxy frontend (or listen section) being read.
struct Proxy {
    /// `frontend fe`.
    name: String,
    /// What its `bind` lines (or its `listen NAME ADDR` line) name.
    binds: Vec<String>,
    own: Vec<Raw>,
}

impl Proxy {
    /// Its lines, and those of the `defaults` before it that it does not set itself, each in
    /// its section.
    fn close(mut self, defaults: &[Raw], out: &mut Vec<Raw>) {
        for d in defaults {
            if !self.own.iter().any(|o| o.key == d.key) {
                self.own.push(d.clone());
            }
        }
        for mut r in self.own {
            r.section = Some(Section {
                name: self.name.clone(),
                listen: self.binds.clone(),
            });
            out.push(r);
        }
    }
}

/// HAProxy's sections (see `Syntax::Haproxy`).
fn haproxy(text: &str) -> Vec<Raw> {
    let mut out: Vec<Raw> = Vec::new();
    let mut at = In::Other;
    // The `defaults` section's lines, which a frontend without its own takes.
    let mut defaults: Vec<Raw> = Vec::new();
    let mut proxy: Option<Proxy> = None;
    for (n, line) in text.lines().enumerate() {
        let line = uncommented(line.trim());
        let mut words = line.split_whitespace();
        let Some(key) = words.next() else { continue };
        let args: Vec<&str> = words.collect();
        if let Some(s) = In::opened_by(key) {
            if let Some(p) = proxy.take() {
                p.close(&defaults, &mut out);
            }
            if s == In::Defaults {
                defaults.clear();
            }
            if s == In::Proxy {
                let name = format!("{key} {}", args.first().copied().unwrap_or(""));
                proxy = Some(Proxy {
                    name: name.trim_end().to_string(),
                    // `listen NAME ADDR`, the old way of binding in the section's line.
                    binds: args.get(1).map(|a| vec![a.to_string()]).unwrap_or_default(),
                    own: Vec::new(),
                });
            }
            at = s;
            continue;
        }
        let raw = Raw {
            key: key.to_string(),
            value: args.first().copied().unwrap_or("").to_string(),
            written: line.to_string(),
            line: n as u32 + 1,
            section: None,
        };
        match (at, &mut proxy) {
            (In::Global, _) => out.push(raw),
            (In::Defaults, _) => defaults.push(raw),
            (In::Proxy, Some(p)) if key == "bind" => {
                p.binds.extend(args.first().map(|a| a.to_string()));
            }
            (In::Proxy, Some(p)) => p.own.push(raw),
            _ => {}
        }
    }
    if let Some(p) = proxy {
        p.close(&defaults, &mut out);
    }
    out
}

/// nginx's main context and `events` block (see `Syntax::Nginx`).
fn nginx(text: &str) -> Vec<Raw> {
    let mut out = Vec::new();
    // The blocks we are in, by name; only `[]` and `["events"]` are read.
    let mut blocks: Vec<String> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut start_line = 1u32;
    for (n, line) in text.lines().enumerate() {
        let line_no = n as u32 + 1;
        for c in line.chars() {
            if let Some(q) = quote {
                if c == q {
                    quote = None;
                } else {
                    word.push(c);
                }
                continue;
            }
            match c {
                '#' => break,
                '"' | '\'' => quote = Some(c),
                ';' | '{' | '}' => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    let directive = std::mem::take(&mut words);
                    match c {
                        ';' => {
                            let read = blocks.is_empty() || blocks == ["events"];
                            if let (true, Some((key, args))) = (read, directive.split_first()) {
                                out.push(Raw {
                                    key: key.clone(),
                                    value: args.join(" "),
                                    written: format!("{};", directive.join(" ")),
                                    line: start_line,
                                    section: None,
                                });
                            }
                        }
                        '{' => blocks.push(directive.first().cloned().unwrap_or_default()),
                        _ => {
                            blocks.pop();
                        }
                    }
                }
                c if c.is_whitespace() => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                c => {
                    if words.is_empty() && word.is_empty() {
                        start_line = line_no;
                    }
                    word.push(c);
                }
            }
        }
        if quote.is_none() && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    out
}

/// Whether a file name matches a pattern whose only wildcard is `*`.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The settings of process `pid` that win: the command line over every file, a later file or
/// line over an earlier one; then the defaults of those neither sets (when they can hold:
/// `Settings::defaults_need_a_file`). A setting whose winning value could not be read is left
/// out, and no default stands in for it.
pub fn merge(spec: &Settings, pid: u32, cmdline: Vec<Assignment>, files: &[Read]) -> Vec<Setting> {
    let mut won: Vec<(Assignment, SettingSource)> = Vec::new();
    let mut put = |a: Assignment, source: SettingSource| {
        let key = |x: &Assignment| {
            (
                x.setting.clone(),
                x.section.as_ref().map(|s| s.name.clone()),
            )
        };
        match won.iter_mut().find(|(w, _)| key(w) == key(&a)) {
            Some(slot) => *slot = (a, source),
            None => won.push((a, source)),
        }
    };
    for f in files {
        for a in &f.items {
            let source = SettingSource::ConfigFile {
                path: f.path.clone(),
                line: a.line,
            };
            put(a.clone(), source);
        }
    }
    for a in cmdline {
        put(a, SettingSource::CommandLine);
    }
    let mut out: Vec<Setting> = won
        .iter()
        .filter_map(|(a, source)| {
            Some(Setting {
                pid,
                name: a.setting.clone(),
                value: a.value?,
                source: source.clone(),
                written: a.written.clone(),
                section: a.section.clone(),
            })
        })
        .collect();
    let defaults = if spec.defaults_need_a_file && files.is_empty() {
        &[][..]
    } else {
        spec.defaults
    };
    for (name, value) in defaults {
        if !won.iter().any(|(a, _)| a.setting == *name) {
            out.push(Setting {
                pid,
                name: name.to_string(),
                value: SettingValue::Number(*value),
                source: SettingSource::Default,
                written: String::new(),
                section: None,
            });
        }
    }
    out
}

/// The settings of an older snapshot's owner, whose files were not read when it was
/// recorded, from its command line: what `collect` would have found, as far as the command
/// line tells it. With no configuration file to read, that is all of it, defaults included;
/// with one, only what the command line sets, which beats any file. (Its environment was not
/// recorded: a file only it names is not known, and neither are defaults that need one.)
pub fn of_cmdline(spec: &Settings, pid: u32, cmdline: &str) -> Vec<Setting> {
    let Some(argv) = spec.argv(cmdline) else {
        return Vec::new();
    };
    let mut found = merge(spec, pid, from_cmdline(spec, &argv), &[]);
    if !config_files(spec, &argv, cmdline, &mut |_| None).is_empty() {
        found.retain(Setting::on_command_line);
    }
    found
}

/// Whether a listener is what a configuration says it listens on: `127.0.0.1:9000`, `9000`,
/// `*:80`, `:80`, `[::]:80`, `0.0.0.0:8000-8010`, `/run/php/php8.2-fpm.sock`, HAProxy's
/// `ipv4@`, `unix@` and nginx's `unix:` prefixes; several addresses separated by commas.
pub fn listens_on(spec: &str, local: &Local) -> bool {
    spec.split(',').any(|one| one_listen(one.trim(), local))
}

fn one_listen(spec: &str, local: &Local) -> bool {
    let spec = ["ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"]
        .iter()
        .find_map(|p| spec.strip_prefix(p))
        .unwrap_or(spec);
    let path = spec
        .strip_prefix("unix@")
        .or_else(|| spec.strip_prefix("unix:"))
        .or_else(|| spec.starts_with('/').then_some(spec));
    if let Some(path) = path {
        return matches!(local, Local::Unix(u) if matches!(&u.name, UnixName::Path(p) if p.bytes() == path.as_bytes()));
    }
    if let Some(name) = spec.strip_prefix("abns@") {
        return matches!(local, Local::Unix(u) if matches!(&u.name, UnixName::Abstract(n) if n.bytes() == name.as_bytes()));
    }
    let Some(addr) = local.inet() else {
        return false;
    };
    let (host, ports) = match spec.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
        None => ("", spec),
    };
    let port_ok = match ports.split_once('-') {
        Some((a, b)) => match (a.parse::<u16>(), b.parse::<u16>()) {
            (Ok(a), Ok(b)) => (a..=b).contains(&addr.port()),
            _ => false,
        },
        None => ports.parse::<u16>() == Ok(addr.port()),
    };
    port_ok && host_ok(host, addr)
}

fn host_ok(host: &str, addr: SocketAddr) -> bool {
    match host {
        "" | "*" => true,
        h => match h.parse::<IpAddr>() {
            Ok(ip) => ip == addr.ip(),
            // A host name: it resolved to something when it bound; take it.
            Err(_) => true,
        },
    }
}

#[cfg(test)]
mod tests;
