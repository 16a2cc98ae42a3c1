//! Concurrency caps: how many connections (or requests) a listener's owner serves at once, as
//! the process runs, and where that number comes from. Pure: the runtime's `CapSpec` (in
//! `runtime/table.rs`) over the settings recorded with the owners (`Snapshot::settings`: the
//! command line, the configuration files it names, the defaults), or, in a snapshot recorded
//! before settings were, over the owners' command lines alone.
//!
//! For the rules:
//! - `of(snap, &v.local, v.inode) -> Option<Cap>`: the cap of the listener's runtime, None when
//!   the runtime is unknown or has no cap of its kind (Envoy, Python's own servers). A cap may
//!   still have no number (`Cap::value` None): a setting could not be read, or it cannot be
//!   read from outside (Java's pools; its `concurrency` knob says where it is set). `Cap::counts` says what
//!   the number counts and `Cap::at_cap` what happens beyond it: connections wait in the listen
//!   queue (HAProxy's `maxconn`, a pool of workers) or are accepted and refused at once
//!   (PostgreSQL's "too many clients", which is then not the listen queue's doing).
//! - `backlog_setting(snap, &v.local, v.inode)`: the running value of the runtime's backlog
//!   setting (or PostgreSQL's max_connections, which derives it) when it was read from the
//!   command line or a file, for the plan to change it where it is set.
//! - `words::cap` words a cap.

use serde::Serialize;

use super::runtime::settings::listens_on;
use super::runtime::{self, AtCap, CapHow, Counts, Runtime};
use crate::model::{Local, Owner, Setting, SettingSource, Snapshot};

/// What a listener's owner serves at once, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cap {
    pub runtime: &'static Runtime,
    pub counts: Counts,
    /// How many at once; None when a setting it needs could not be read, or when it cannot be
    /// read from outside the process at all.
    pub value: Option<u64>,
    /// What happens to a connection beyond it.
    pub at_cap: AtCap,
    pub basis: Basis,
    /// For people; filled by `words.rs`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
}

/// Where a cap comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum Basis {
    /// Settings of the process, multiplied (`Product`) or the lowest taken (`Lowest`).
    Settings {
        combine: Combine,
        settings: Vec<Setting>,
        /// Settings it needs that could not be read (named as the runtime names them).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        unknown: Vec<&'static str>,
        /// `auto` (nginx's worker_processes): the workers found running, which it made.
        #[serde(skip_serializing_if = "Option::is_none")]
        workers_running: Option<u64>,
        /// No section of the configuration names this socket (no php-fpm pool's `listen =`
        /// matches it): the settings are every section's, one of which is its own.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        every_section: bool,
    },
    /// One per process holding the socket (Node.js's event loops).
    Processes { pids: Vec<u32> },
    /// Not readable from outside the process (`Runtime::concurrency` says where it is set).
    Unreadable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Combine {
    Product,
    Lowest,
}

impl Cap {
    /// Whether it rests on a setting that was read (from the process, a file, a default),
    /// rather than on the processes alone or on nothing.
    pub fn read_from_settings(&self) -> bool {
        matches!(&self.basis, Basis::Settings { settings, .. } if !settings.is_empty())
    }

    /// The settings it rests on.
    pub fn settings(&self) -> &[Setting] {
        match &self.basis {
            Basis::Settings { settings, .. } => settings,
            _ => &[],
        }
    }
}

/// The cap of the listener `local` (socket `inode`): see the module comment.
pub fn of(snap: &Snapshot, local: &Local, inode: u64) -> Option<Cap> {
    let owners: Vec<Owner> = snap.owners_of(inode).cloned().collect();
    let rt = runtime::runtime_of(&owners)?;
    let spec = rt.cap.as_ref()?;
    let (value, basis) = match spec.how {
        CapHow::Processes => {
            let mut pids: Vec<u32> = owners.iter().map(|o| o.pid).collect();
            pids.sort_unstable();
            pids.dedup();
            (Some(pids.len() as u64), Basis::Processes { pids })
        }
        CapHow::Unreadable => (None, Basis::Unreadable),
        CapHow::Product(names) => {
            let (settings, every_section) = applying(settings_of(snap, &owners, rt), local);
            from_settings(
                rt,
                &owners,
                names,
                Combine::Product,
                settings,
                every_section,
            )
        }
        CapHow::Lowest(name) => {
            let (settings, every_section) = applying(settings_of(snap, &owners, rt), local);
            from_settings(
                rt,
                &owners,
                &[name],
                Combine::Lowest,
                settings,
                every_section,
            )
        }
    };
    Some(Cap {
        runtime: rt,
        counts: spec.counts,
        value,
        at_cap: spec.at_cap,
        basis,
        text: String::new(),
    })
}

/// The running value of the listener's backlog setting (`Settings::backlog`, or the setting
/// it is derived from), when the command line or a file set it: where a fix must change it.
pub fn backlog_setting(snap: &Snapshot, local: &Local, inode: u64) -> Option<Setting> {
    let owners: Vec<Owner> = snap.owners_of(inode).cloned().collect();
    let rt = runtime::runtime_of(&owners)?;
    let name = rt
        .derived
        .as_ref()
        .map(|d| d.setting)
        .or(rt.settings.backlog)?;
    let (settings, every_section) = applying(settings_of(snap, &owners, rt), local);
    let mut found = settings.into_iter().filter(|s| s.name == name);
    let one = found.next()?;
    // Several sections' values and none of them this socket's: which one is not known.
    if every_section && found.next().is_some() {
        return None;
    }
    (one.source != SettingSource::Default).then_some(one)
}

/// The settings recorded for the owners that are of runtime `rt`, those of the lowest PID
/// that has any (a master's); in a snapshot recorded before settings were, what their command
/// lines show.
fn settings_of(snap: &Snapshot, owners: &[Owner], rt: &'static Runtime) -> Vec<Setting> {
    let mut mine: Vec<&Owner> = owners
        .iter()
        .filter(|o| runtime::runtime_of(std::slice::from_ref(o)) == Some(rt))
        .collect();
    mine.sort_by_key(|o| o.pid);
    mine.dedup_by_key(|o| o.pid);
    let recorded = mine.iter().find_map(|o| {
        let theirs: Vec<Setting> = snap
            .settings
            .iter()
            .filter(|s| s.pid == o.pid)
            .cloned()
            .collect();
        (!theirs.is_empty()).then_some(theirs)
    });
    recorded.unwrap_or_else(|| {
        mine.iter()
            .map(|o| runtime::settings::of_cmdline(&rt.settings, o.pid, &o.cmdline))
            .find(|s| !s.is_empty())
            .unwrap_or_default()
    })
}

/// The settings that apply to the socket: those of the whole process, and those of the
/// sections that name it; when no section names it, every section's (and say so).
fn applying(settings: Vec<Setting>, local: &Local) -> (Vec<Setting>, bool) {
    let names_it = |s: &Setting| {
        s.section
            .as_ref()
            .is_some_and(|sec| sec.listen.iter().any(|l| listens_on(l, local)))
    };
    let any_section = settings.iter().any(|s| s.section.is_some());
    let any_names_it = settings.iter().any(names_it);
    if !any_section || any_names_it {
        let kept = settings
            .into_iter()
            .filter(|s| s.section.is_none() || names_it(s))
            .collect();
        return (kept, false);
    }
    (settings, true)
}

/// A cap from the settings `names` (their product, or the lowest), in the order of `names`.
fn from_settings(
    rt: &'static Runtime,
    owners: &[Owner],
    names: &[&'static str],
    combine: Combine,
    settings: Vec<Setting>,
    every_section: bool,
) -> (Option<u64>, Basis) {
    let workers = rt.settings.worker.map(|prefix| {
        let mut pids: Vec<u32> = owners
            .iter()
            .filter(|o| o.cmdline.starts_with(prefix))
            .map(|o| o.pid)
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids.len() as u64
    });
    let mut used = Vec::new();
    let mut unknown = Vec::new();
    let mut factors: Vec<Option<u64>> = Vec::new();
    let mut workers_running = None;
    for name in names {
        let mine: Vec<Setting> = settings
            .iter()
            .filter(|s| s.name == *name)
            .cloned()
            .collect();
        if mine.is_empty() {
            unknown.push(*name);
            factors.push(None);
            continue;
        }
        for s in &mine {
            let v = match s.number() {
                Some(n) => Some(n),
                // `auto`: what it made is the workers running.
                None => {
                    workers_running = workers.filter(|n| *n > 0);
                    workers_running
                }
            };
            factors.push(v);
        }
        // Every section's value for one factor of a product: known only when they agree.
        if combine == Combine::Product && mine.len() > 1 {
            let tail = factors.split_off(factors.len() - mine.len());
            let first = tail[0];
            factors.push(first.filter(|_| tail.iter().all(|v| *v == first)));
        }
        used.extend(mine);
    }
    let value = match combine {
        Combine::Product => factors
            .iter()
            .try_fold(1u64, |acc, f| f.map(|f| acc.saturating_mul(f))),
        // The lowest of those known, each a limit of its own; of a section that may not be
        // this socket's, none.
        Combine::Lowest => used
            .iter()
            .filter(|s| !every_section || s.section.is_none())
            .filter_map(Setting::number)
            .min(),
    };
    (
        value,
        Basis::Settings {
            combine,
            settings: used,
            unknown,
            workers_running,
            every_section,
        },
    )
}

#[cfg(test)]
mod tests;
