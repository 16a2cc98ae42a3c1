//! What backlogctl knows of the server runtimes, each said once as one `Runtime` value in
//! `table.rs`: how to recognise it from its process, what it asks listen() for when not told,
//! which setting changes that (for TCP and for Unix sockets) and where it is set, how the new
//! value reaches the socket (a reload that calls listen() again, or a restart), its quirks and
//! its concurrency cap. The plan (`remedy.rs`) and the words (`words.rs`) ask these values and
//! never name a runtime. Adding a runtime is adding one value to `table.rs` and a fixture
//! recorded from the real server. Each entry was checked on the real server where it installs
//! here (see docs/kernel.md, "Runtime defaults").

pub mod settings;
mod table;

use serde::{Serialize, Serializer};

use crate::model::Owner;

pub use table::*;

/// A server program whose listen backlog we know how to set.
#[derive(Debug)]
pub struct Runtime {
    /// Its id in JSON reports, kebab-case: `php-fpm`, `python-http-server`.
    pub id: &'static str,
    /// As its users write it: `php-fpm`, `Node.js`.
    pub name: &'static str,
    /// How the plan calls the thing it restarts, when not its name (systemd: the socket unit).
    pub restarted: Option<&'static str>,
    pub recognise: Recognise,
    /// What it asks listen() for when its configuration does not say.
    pub default_backlog: DefaultBacklog,
    /// How to make it ask listen() for another backlog on a TCP socket.
    pub tcp: Knob,
    /// The same for a Unix socket, where that differs from `tcp`.
    pub unix: Option<Knob>,
    /// Set by a setting that sizes something else too (PostgreSQL's max_connections); None
    /// when `tcp`/`unix` set the backlog itself.
    pub derived: Option<Derived>,
    /// The highest backlog it can be made to ask for, if it clamps.
    pub max_backlog: Option<u32>,
    /// How a new backlog reaches a socket that is already listening.
    pub relisten: Relisten,
    /// With `Relisten::Reload`: how the reload is sent.
    pub reload: Option<Reload>,
    /// What a restart means for it, where a lighter way looks as if it would do, as a
    /// parenthesis that follows "restart NAME" (checked on the real servers).
    pub restart_note: &'static str,
    /// The setting that caps how many connections it serves at once, and where it is set.
    pub concurrency: Option<Knob>,
    /// How that cap follows from its settings or its processes (`doctor::caps` computes it).
    pub cap: Option<CapSpec>,
    /// Where its settings are read from its running process: its command line, the
    /// configuration files that names, its defaults.
    pub settings: settings::Settings,
    /// A pool of workers whose size is a setting (`concurrency`) accepts only with a free
    /// worker: when all are busy nobody accepts, the usual cause of an overflow, so the plan
    /// says to size the pool rather than to write an acceptor thread. The step's words.
    pub pool: Option<&'static str>,
    /// The setting that names its Unix socket's path, as written in its configuration.
    pub unix_path_setting: Option<&'static str>,
    /// Only a holder of sockets for others (systemd's socket activation): chosen only when no
    /// other holder is recognised, since the service that calls listen() sets the backlog.
    pub holds_for_others: bool,
    /// Its quirks in its clients' and its readers' eyes.
    pub quirks: Quirks,
}

/// How a runtime is recognised from a holder's `comm` and command line. Three passes over
/// the table, the first match winning, each pass in table order: `comm`, then `cmdline`,
/// then `interpreter`.
#[derive(Debug, Default)]
pub struct Recognise {
    /// `comm` equals one of these, or starts with one that ends in `*`.
    pub comm: &'static [&'static str],
    /// The command line says so (a Python interpreter running gunicorn).
    pub cmdline: &'static [Cmdline],
    /// The interpreter's `comm` alone, when its command line said nothing more specific.
    pub interpreter: &'static [&'static str],
}

/// One way a command line names a runtime, optionally only under some `comm`.
#[derive(Debug)]
pub struct Cmdline {
    /// `comm` must match this pattern (as in `Recognise::comm`); None: any.
    pub comm: Option<&'static str>,
    pub says: Says,
}

#[derive(Debug)]
pub enum Says {
    /// Anywhere in it.
    Contains(&'static str),
    /// As a word between spaces or `/`, or a word followed by `:`.
    Word(&'static str),
    /// At its start.
    Prefix(&'static str),
}

/// How a runtime's cap on what it serves at once follows from what can be read of it.
#[derive(Debug)]
pub struct CapSpec {
    pub counts: Counts,
    pub how: CapHow,
    pub at_cap: AtCap,
}

/// What happens to a connection beyond the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AtCap {
    /// It waits: for accept() in the listen queue (HAProxy stops accepting at `maxconn`, a
    /// pre-fork worker accepts only when free), or accepted, for a worker of its pool.
    Waits,
    /// It is accepted and refused at once, with these words to the client: not a listen-queue
    /// problem, and no queue shows it.
    Refused(&'static str),
}

/// What a cap counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Counts {
    /// Connections open at once (a proxy's, a database's).
    Connections,
    /// Requests worked on at once: one per worker (process or thread).
    Requests,
    /// Loops calling accept(): one per process (an event loop).
    AcceptLoops,
}

#[derive(Debug)]
pub enum CapHow {
    /// The product of these settings (nginx's `worker_processes` × `worker_connections`);
    /// unknown when one of them is.
    Product(&'static [&'static str]),
    /// The lowest of this setting wherever it applies to the socket (HAProxy's global
    /// `maxconn` and its frontend's).
    Lowest(&'static str),
    /// One per process holding the socket (Node.js: one event loop each).
    Processes,
    /// Not readable from outside the process: `Runtime::concurrency` says where it is set.
    Unreadable,
}

/// One setting of a runtime, and how to write it.
#[derive(Debug)]
pub struct Knob {
    /// As written: `backlog=`, `--backlog`, `listen.backlog`.
    pub name: &'static str,
    pub set: SetIn,
    /// How to set it to a number, in the runtime's own terms: `{n}` is the value, `{default}`
    /// the default's words (`default 511`).
    pub how: &'static str,
}

/// Where a setting is set, so that a fix changes the value the process runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SetIn {
    /// A directive of its configuration file.
    ConfigFile,
    /// A flag on its command line (or the same key in its config file).
    CommandLine,
    /// The program's own code.
    Code,
    /// A unit file of the service manager.
    Unit,
}

/// A backlog set through a setting that sizes something else too.
#[derive(Debug)]
pub struct Derived {
    /// The setting: `max_connections`.
    pub setting: &'static str,
    /// The setting's value for a backlog of at least `n`.
    pub value_for: fn(u32) -> u32,
    /// The step's words: `{value}` the setting's value, `{n}` the backlog it gives, `{where}`
    /// where to set it (`set_in`, unless the running value was read somewhere else).
    pub how: &'static str,
    /// Where the setting is set when nothing else is known of it, with `{value}`.
    pub set_in: &'static str,
}

/// How a reload reaches the process that calls listen() again.
#[derive(Debug)]
pub struct Reload {
    /// The command line of the process to signal (nginx's master), by its start.
    pub master: &'static str,
    /// The command to run when no PID is known.
    pub command: &'static str,
}

/// What a runtime does that its clients or readers notice.
#[derive(Debug, Default)]
pub struct Quirks {
    /// It shuts its side down before closing, so a FIN leaves before the reset of an unread
    /// close: the call that does it (`Socket.close()`).
    pub close_sends_fin: Option<&'static str>,
    /// How its servers commonly read only part of a request, and what to do instead.
    pub read_whole_request: Option<&'static str>,
    /// As a client of a full Unix listener (a proxy): the line it logs for the refusal, with
    /// `{upstream}` for the socket's name, and what it answers its own client.
    pub unix_refusal: Option<UnixRefusal>,
}

#[derive(Debug)]
pub struct UnixRefusal {
    pub log: &'static str,
    /// How it names an upstream Unix socket: `unix:{path}`, `unix:@{name}`.
    pub path: &'static str,
    pub abstract_name: &'static str,
    /// The upstream its log names when none is known.
    pub example: &'static str,
    /// What it answers its own client.
    pub answers: &'static str,
}

/// What a runtime asks listen() for when its configuration does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultBacklog {
    Fixed(u32),
    /// Reads net.core.somaxconn itself (once, at start) and asks for that.
    Somaxconn,
    /// Computed from another setting (`Runtime::derived`).
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

impl PartialEq for Runtime {
    fn eq(&self, other: &Runtime) -> bool {
        self.id == other.id
    }
}

impl Eq for Runtime {}

impl std::hash::Hash for Runtime {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.id.hash(h)
    }
}

/// A runtime is its id in JSON.
impl Serialize for Runtime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id)
    }
}

/// The runtime of a listener's owners, from `comm` and the command line (`Recognise`). A
/// holder for others (systemd) only when no other holder is known: a socket-activated service
/// that calls listen() itself (gunicorn does) sets the backlog, not the unit's `Backlog=`.
pub fn runtime_of(owners: &[Owner]) -> Option<&'static Runtime> {
    let known = || owners.iter().filter_map(of_one);
    known()
        .find(|r| !r.holds_for_others)
        .or_else(|| known().next())
}

/// `comm` against a pattern: equal, or a prefix when the pattern ends in `*`.
fn comm_is(comm: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => comm.starts_with(prefix),
        None => comm == pattern,
    }
}

impl Says {
    fn matches(&self, cmd: &str) -> bool {
        match *self {
            Says::Contains(w) => cmd.contains(w),
            Says::Prefix(p) => cmd.starts_with(p),
            Says::Word(w) => cmd
                .split(|c: char| c.is_whitespace() || c == '/')
                .any(|t| t == w || t.strip_prefix(w).is_some_and(|rest| rest.starts_with(':'))),
        }
    }
}

fn of_one(o: &Owner) -> Option<&'static Runtime> {
    let (comm, cmd) = (o.comm.as_str(), o.cmdline.as_str());
    let by_comm = |r: &&Runtime| r.recognise.comm.iter().any(|p| comm_is(comm, p));
    let by_cmdline = |r: &&Runtime| {
        r.recognise
            .cmdline
            .iter()
            .any(|c| c.comm.is_none_or(|p| comm_is(comm, p)) && c.says.matches(cmd))
    };
    let by_interpreter = |r: &&Runtime| r.recognise.interpreter.iter().any(|p| comm_is(comm, p));
    let all = || RUNTIMES.iter().copied();
    all()
        .find(by_comm)
        .or_else(|| all().find(by_cmdline))
        .or_else(|| all().find(by_interpreter))
}

impl Runtime {
    /// The default as a number, when it is one.
    pub fn fixed_default(&self) -> Option<u32> {
        match self.default_backlog {
            DefaultBacklog::Fixed(n) => Some(n),
            _ => None,
        }
    }

    /// Whether the backlog is set in the program's code rather than in a setting.
    pub fn set_in_code(&self) -> bool {
        self.tcp.set == SetIn::Code
    }

    /// Whether its workers are a pool whose size is a setting (`Runtime::pool`).
    pub fn worker_pool(&self) -> bool {
        self.pool.is_some()
    }

    /// The knob for a TCP socket, or a Unix one.
    pub fn knob(&self, unix: bool) -> &Knob {
        match &self.unix {
            Some(k) if unix => k,
            _ => &self.tcp,
        }
    }

    /// How the plan names what it restarts or reloads.
    pub fn restarted(&self) -> &'static str {
        self.restarted.unwrap_or(self.name)
    }

    /// The process to send a reload signal to: the master (the holder whose command line
    /// says so, else the lowest PID holding the socket).
    pub fn reload_pid(&self, owners: &[Owner]) -> Option<u32> {
        let master = self.reload.as_ref().map(|r| r.master);
        owners
            .iter()
            .find(|o| master.is_some_and(|m| o.cmdline.starts_with(m)))
            .or_else(|| owners.iter().min_by_key(|o| o.pid))
            .map(|o| o.pid)
    }
}

/// `default 511`, `default: somaxconn`: what a runtime asks listen() for untold.
pub fn default_words(d: DefaultBacklog) -> String {
    match d {
        DefaultBacklog::Fixed(n) => format!("default {n}"),
        DefaultBacklog::Somaxconn => "default: somaxconn".into(),
        DefaultBacklog::Derived => "default: derived".into(),
        DefaultBacklog::SomaxconnSince { release, before } => {
            format!("default {before} before {release}, -1 = somaxconn from it on")
        }
    }
}

/// How to make the application ask listen() for `n`: the runtime's own knob, or (runtime
/// unknown) the generic words of `UNKNOWN_KNOB`.
pub fn how_to_set(rt: Option<&Runtime>, unix: bool, n: u32) -> String {
    let Some(rt) = rt else {
        let how = if unix {
            UNKNOWN_UNIX_KNOB
        } else {
            UNKNOWN_KNOB
        };
        return fill(how, n, "");
    };
    fill(rt.knob(unix).how, n, &default_words(rt.default_backlog))
}

/// What a restart means for a runtime (`Runtime::restart_note`), or for one not recognised.
pub fn restart_note(rt: Option<&Runtime>) -> &'static str {
    rt.map_or(UNKNOWN_RESTART_NOTE, |r| r.restart_note)
}

/// A template with `{n}` and `{default}` filled in.
fn fill(template: &str, n: u32, default: &str) -> String {
    template
        .replace("{n}", &n.to_string())
        .replace("{default}", default)
}

impl Derived {
    /// The step's words for a backlog of at least `n`, the setting at `value`, set where
    /// `set_in` says unless `at` says where it must be changed instead.
    pub fn words(&self, value: u32, n: u32, at: Option<&str>) -> String {
        self.how
            .replace("{where}", at.unwrap_or(self.set_in))
            .replace("{value}", &value.to_string())
            .replace("{n}", &n.to_string())
    }
}

impl UnixRefusal {
    /// The line it logs for a refused connect to `upstream` (already in its own spelling).
    pub fn line(&self, upstream: &str) -> String {
        self.log.replace("{upstream}", upstream)
    }
}

/// The runtimes that have something (a quirk, a setting), in table order, with it: for the
/// words that quote every runtime it applies to.
pub fn having<T>(
    pick: impl Fn(&'static Runtime) -> Option<T>,
) -> impl Iterator<Item = (&'static Runtime, T)> {
    RUNTIMES
        .iter()
        .filter_map(move |r| pick(r).map(|t| (*r, t)))
}

/// `Java's Socket.close(), …`: each runtime's own spelling of something, for a parenthesis.
pub fn each_own(pick: impl Fn(&'static Runtime) -> Option<&'static str>) -> String {
    having(pick)
        .map(|(r, t)| format!("{}'s {t}", r.name))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
