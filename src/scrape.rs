//! One collection of the namespaces in scope, for `exporter` (at every scrape) and `metrics`
//! (once): a single sample of each namespace's listeners, counters and sysctls, the processes
//! holding the listeners, and who each namespace belongs to. Nothing polls in the background.
//!
//! Namespaces are per thread. Each scrape starts a few worker threads that enter namespace
//! after namespace (setns) and record each on a fresh netlink socket; the thread that serves
//! the request never changes namespace, so concurrent scrapes cannot race on a switch. Workers
//! that miss the deadline are abandoned, not waited for: their namespaces are reported failed.
//!
//! Owners are cached by socket inode: an inode names one socket for its whole life, and the
//! processes holding a listener rarely change, so only new listeners cost a `/proc/*/fd` scan.
//! Entries of sockets gone from a scrape are dropped with it.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::model::{Gap, Owner, Scope, Snapshot};
use crate::record;
use crate::source::netns::{self, Which};
use crate::source::pods::{self, Identity};
use crate::source::procs;

/// Which namespaces a collection covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// The caller's own.
    Current,
    /// One entered by name, path or PID (`--netns`, `--pid`).
    One(Which),
    /// Every one on the host (`--all-netns`).
    All,
}

/// One namespace of a scrape.
#[derive(Debug)]
pub struct NsScrape {
    /// The namespace's inode: the `netns` label. None only when even that could not be read.
    pub inode: Option<u64>,
    pub identity: Identity,
    /// Its single sample, with owners; None when it failed.
    pub snapshot: Option<Snapshot>,
    /// Why it failed (could not be entered, vanished, missed the deadline).
    pub error: Option<Error>,
}

/// Everything one collection saw.
#[derive(Debug)]
pub struct Scrape {
    /// Ordered by inode.
    pub namespaces: Vec<NsScrape>,
    /// Processes or directories that could not be read.
    pub gaps: Vec<Gap>,
    pub duration: Duration,
}

impl Scrape {
    /// When not one namespace could be read, the first reason: for a one-shot command that
    /// is the error to report, not an empty result.
    pub fn into_only_error(self) -> std::result::Result<Scrape, Error> {
        if self.namespaces.iter().any(|n| n.snapshot.is_some()) {
            return Ok(self);
        }
        match self.namespaces.into_iter().find_map(|n| n.error) {
            Some(e) => Err(e),
            None => Err(Error::BadInput("no network namespace to read".into())),
        }
    }
}

/// Records one namespace: enters it (None: stays in the worker's inherited one) and takes a
/// single sample. A parameter so tests can make one slow or failing.
pub type Recorder = Arc<dyn Fn(Option<&Which>, &Scope) -> Result<Snapshot> + Send + Sync>;

/// The real recorder.
pub fn kernel_recorder() -> Recorder {
    Arc::new(|which, scope| {
        if let Some(w) = which {
            netns::enter(w)?;
        }
        let one = record::Plan {
            window: Duration::ZERO,
            interval: Duration::ZERO,
        };
        record::record(scope, &one, false)
    })
}

/// Collects namespaces on demand; keeps the owner cache between collections.
pub struct Collector {
    namespaces: Namespaces,
    scope: Scope,
    deadline: Duration,
    record: Recorder,
    owners: OwnerCache,
}

/// Stack of a namespace worker. Recording keeps its buffers on the heap; a small stack also
/// keeps what glibc caches of exited threads' stacks small in a long-running exporter.
const WORKER_STACK: usize = 512 * 1024;

/// Namespace workers per scrape: recording is mostly system calls, a little above the cores.
fn workers(jobs: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    jobs.clamp(1, (cores * 2).min(8))
}

impl Collector {
    pub fn new(namespaces: Namespaces, scope: Scope, deadline: Duration) -> Collector {
        Collector::with_recorder(namespaces, scope, deadline, kernel_recorder())
    }

    pub fn with_recorder(
        namespaces: Namespaces,
        scope: Scope,
        deadline: Duration,
        record: Recorder,
    ) -> Collector {
        Collector {
            namespaces,
            scope,
            deadline,
            record,
            owners: OwnerCache::default(),
        }
    }

    /// One collection. Fails only when the namespaces cannot even be listed; a namespace that
    /// fails is reported in its `NsScrape` (see `Scrape::into_only_error`).
    pub fn scrape(&mut self) -> Result<Scrape> {
        let started = Instant::now();
        let mut gaps = Vec::new();
        let (jobs, members) = self.jobs(&mut gaps)?;
        let results = self.record_all(&jobs, started + self.deadline);
        let mut namespaces = Vec::with_capacity(jobs.len());
        let pods = if members.is_empty() {
            HashMap::new()
        } else {
            pods::pods_by_uid(std::path::Path::new(pods::POD_LOGS))
        };
        let initial_inode = netns::initial_inode();
        for (job, result) in jobs.into_iter().zip(results) {
            let (snapshot, error) = match result {
                // Entered through /proc/PID/ns/net: a PID reused meanwhile leads elsewhere.
                Ok(s) if job.inode.is_some() && s.netns.inode != job.inode => (
                    None,
                    Some(Error::BadInput(
                        "the namespace vanished while it was being read".into(),
                    )),
                ),
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e)),
            };
            let inode = job.inode.or(snapshot.as_ref().and_then(|s| s.netns.inode));
            // Who it is does not depend on whether it could be read this time.
            let initial = inode.is_some() && inode == initial_inode;
            // The walk's names are this scrape's; a recording's may come from a cache.
            let names = match (&snapshot, job.names.is_empty()) {
                (Some(s), true) => s.netns.names.clone(),
                _ => job.names,
            };
            let empty = Vec::new();
            let who = inode.and_then(|i| members.get(&i)).unwrap_or(&empty);
            namespaces.push(NsScrape {
                inode,
                identity: pods::identity(initial, &names, who, &pods),
                snapshot,
                error,
            });
        }
        let mut snaps: Vec<&mut Snapshot> = namespaces
            .iter_mut()
            .filter_map(|n| n.snapshot.as_mut())
            .collect();
        gaps.extend(self.owners.fill(&mut snaps, Instant::now()));
        namespaces.sort_by_key(|n| n.inode);
        Ok(Scrape {
            namespaces,
            gaps,
            duration: started.elapsed(),
        })
    }

    /// The namespaces to record, and for `All` the processes of each (for pod identity).
    fn jobs(&self, gaps: &mut Vec<Gap>) -> Result<(Vec<Job>, Members)> {
        match &self.namespaces {
            Namespaces::Current => Ok((vec![Job::default()], HashMap::new())),
            Namespaces::One(which) => Ok((
                vec![Job {
                    which: Some(which.clone()),
                    inode: std::fs::metadata(which.path())
                        .ok()
                        .map(|m| std::os::unix::fs::MetadataExt::ino(&m)),
                    // Its name, should it fail: a failed namespace still says which it was.
                    names: match which {
                        Which::Named(n) if !n.contains('/') => vec![n.clone()],
                        _ => Vec::new(),
                    },
                }],
                HashMap::new(),
            )),
            Namespaces::All => {
                let (found, found_gaps) = netns::all();
                gaps.extend(found_gaps);
                if found.is_empty() {
                    return Err(Error::Permission {
                        what: "listing network namespaces".into(),
                        hint: "neither /run/netns nor /proc/*/ns/net could be read; run as root"
                            .into(),
                    });
                }
                let mut members = HashMap::new();
                let jobs = found
                    .into_iter()
                    .map(|f| {
                        members.insert(f.inode, f.processes);
                        Job {
                            which: Some(Which::Named(f.path.to_string_lossy().into_owned())),
                            inode: Some(f.inode),
                            names: f.names,
                        }
                    })
                    .collect();
                Ok((jobs, members))
            }
        }
    }

    /// Records every job on a few worker threads, each entering namespace after namespace.
    /// A job without a result by `deadline` fails with a timeout.
    fn record_all(&self, jobs: &[Job], deadline: Instant) -> Vec<Result<Snapshot>> {
        let queue: Queue = Arc::new(Mutex::new(
            jobs.iter()
                .enumerate()
                .rev()
                .map(|(i, j)| (i, j.which.clone()))
                .collect(),
        ));
        let (tx, rx) = mpsc::channel();
        for _ in 0..workers(jobs.len()) {
            let (queue, tx, record, scope) = (
                queue.clone(),
                tx.clone(),
                self.record.clone(),
                self.scope.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name("backlogctl-ns".into())
                .stack_size(WORKER_STACK)
                .spawn(move || {
                    loop {
                        let job = queue.lock().map(|mut q| q.pop()).ok().flatten();
                        let Some((i, which)) = job else { break };
                        // A receiver gone (deadline passed) ends the worker.
                        if tx.send((i, record(which.as_ref(), &scope))).is_err() {
                            break;
                        }
                    }
                });
            if spawned.is_err() {
                break; // fewer workers; the deadline still bounds the scrape
            }
        }
        drop(tx);
        let mut results: Vec<Option<Result<Snapshot>>> = (0..jobs.len()).map(|_| None).collect();
        let mut pending = jobs.len();
        while pending > 0 {
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok((i, r)) => {
                    results[i] = Some(r);
                    pending -= 1;
                }
                Err(_) => break, // deadline, or every worker gone
            }
        }
        // Workers still running drop their results when they next send; nobody waits for them.
        if let Ok(mut q) = queue.lock() {
            q.clear();
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Error::BadInput(
                        "not recorded before the scrape deadline".into(),
                    ))
                })
            })
            .collect()
    }
}

/// The processes of each namespace, by namespace inode.
type Members = HashMap<u64, Vec<netns::Member>>;

/// Jobs not yet taken by a worker: (index, namespace to enter).
type Queue = Arc<Mutex<Vec<(usize, Option<Which>)>>>;

#[derive(Debug, Default)]
struct Job {
    which: Option<Which>,
    inode: Option<u64>,
    names: Vec<String>,
}

/// How long a listener nobody could be found holding waits before the next search: it may be
/// held by a process we cannot read, and each search reads every process's descriptors.
const UNOWNED_RETRY: Duration = Duration::from_secs(60);

/// How long owners found for a listener are trusted before they are looked up again, even
/// when they all still live: a listener handed to a child that outlives nobody (a daemon that
/// binds then forks and keeps its parent) or a scan that could not read every process.
const OWNERS_REFRESH: Duration = Duration::from_secs(300);

/// Owners by socket inode, across scrapes.
#[derive(Debug, Default)]
struct OwnerCache {
    /// The owners found, and when.
    known: HashMap<u64, (Instant, Vec<Owner>)>,
    /// Listeners no holder was found for, and when that was last tried.
    unowned: HashMap<u64, Instant>,
}

impl OwnerCache {
    /// Sets the owners of every listener of `snaps`, scanning `/proc` only for inodes not seen
    /// before; forgets inodes no longer present. Returns the scan's gap, if it had one.
    fn fill(&mut self, snaps: &mut [&mut Snapshot], now: Instant) -> Option<Gap> {
        let seen: HashSet<u64> = snaps
            .iter()
            .flat_map(|s| record::listener_inodes(s))
            .collect();
        // A listener handed over (binary upgrade, socket activation, a parent exiting after a
        // fork) keeps its inode: owners that exited, or are old, are looked up again.
        let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
        self.known.retain(|i, (at, owners)| {
            seen.contains(i)
                && now.duration_since(*at) < OWNERS_REFRESH
                && owners.iter().all(|o| alive(o.pid))
        });
        self.unowned.retain(|i, _| seen.contains(i));
        let need: HashSet<u64> = seen
            .iter()
            .copied()
            .filter(|i| {
                !self.known.contains_key(i)
                    && self
                        .unowned
                        .get(i)
                        .is_none_or(|t| now.duration_since(*t) >= UNOWNED_RETRY)
            })
            .collect();
        let mut gap = None;
        if !need.is_empty() {
            let (found, scan_gap) = procs::owners(&need);
            gap = scan_gap;
            for mut o in found {
                // Never exported, and the largest part of an owner: not kept.
                o.cmdline = String::new();
                self.known
                    .entry(o.inode)
                    .or_insert_with(|| (now, Vec::new()))
                    .1
                    .push(o);
            }
            for i in need {
                if self.known.contains_key(&i) {
                    self.unowned.remove(&i);
                } else {
                    self.unowned.insert(i, now);
                }
            }
        }
        for snap in snaps.iter_mut() {
            let mut owners: Vec<Owner> = record::listener_inodes(snap)
                .iter()
                .filter_map(|i| self.known.get(i))
                .flat_map(|(_, owners)| owners)
                .cloned()
                .collect();
            owners.sort_by_key(|o| (o.inode, o.pid));
            snap.owners = owners;
        }
        gap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Listener, Netns, Sample};

    fn snapshot(inode: u64, listeners: &[u64]) -> Snapshot {
        Snapshot {
            schema_version: crate::model::SCHEMA_VERSION,
            tool: String::new(),
            kernel: None,
            hostname: None,
            netns: Netns {
                inode: Some(inode),
                ..Netns::default()
            },
            started_unix_ms: 0,
            targets: Vec::new(),
            sample_interval_us: 0,
            samples_taken: 1,
            sysctls: Default::default(),
            owners: Vec::new(),
            samples: vec![Sample {
                elapsed_us: 0,
                counters: None,
                listeners: listeners
                    .iter()
                    .map(|&i| Listener {
                        local: "127.0.0.1:8100".parse().unwrap(),
                        inode: i,
                        uid: 0,
                        recv_q: 0,
                        send_q: 128,
                        drops: Some(0),
                        syn_recv: None,
                        v6only: None,
                    })
                    .collect(),
            }],
            gaps: Vec::new(),
            other_addresses: Vec::new(),
            set_aside: Vec::new(),
        }
    }

    /// Namespaces named "slow" sleep past any deadline; "bad" fails; others record at once.
    fn recorder() -> Recorder {
        Arc::new(|which, _scope| {
            let name = match which {
                Some(Which::Named(n)) => n.clone(),
                _ => "current".into(),
            };
            match name.as_str() {
                "slow" => {
                    std::thread::sleep(Duration::from_secs(2));
                    Ok(snapshot(2, &[]))
                }
                "bad" => Err(Error::BadInput("vanished".into())),
                _ => Ok(snapshot(1, &[])),
            }
        })
    }

    #[test]
    fn a_slow_or_failing_namespace_fails_alone_and_the_deadline_holds() {
        let scope = Scope::new(Vec::new());
        let c = Collector::with_recorder(
            Namespaces::Current,
            scope,
            Duration::from_millis(200),
            recorder(),
        );
        let jobs = ["fast", "slow", "bad", "fast"]
            .iter()
            .map(|n| Job {
                which: Some(Which::Named(n.to_string())),
                inode: None,
                names: Vec::new(),
            })
            .collect::<Vec<_>>();
        let results = c.record_all(&jobs, Instant::now() + Duration::from_millis(200));
        let told: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(_) => "ok".into(),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            told,
            [
                "ok",
                "not recorded before the scrape deadline",
                "vanished",
                "ok"
            ]
        );
    }

    #[test]
    fn owners_are_looked_up_once_per_socket_and_forgotten_with_it() {
        let mut cache = OwnerCache::default();
        // Inodes no process holds: searched once, then left alone until the retry time.
        let (a, b) = (u64::MAX - 1, u64::MAX - 2);
        let t0 = Instant::now();
        let mut s = snapshot(1, &[a, b]);
        cache.fill(&mut [&mut s], t0);
        assert_eq!(cache.unowned.len(), 2);
        // This process, so that it is alive.
        let me = std::process::id();
        cache.known.insert(
            a,
            (
                t0,
                vec![Owner {
                    inode: a,
                    pid: me,
                    comm: "nginx".into(),
                    cmdline: String::new(),
                }],
            ),
        );
        cache.unowned.remove(&a);
        cache.fill(&mut [&mut s], t0 + Duration::from_secs(1));
        assert_eq!(s.owners.len(), 1);
        assert_eq!(s.owners[0].comm, "nginx");
        assert_eq!(cache.unowned.get(&b), Some(&t0), "not searched again yet");
        cache.fill(&mut [&mut s], t0 + UNOWNED_RETRY);
        assert_eq!(cache.unowned.get(&b), Some(&(t0 + UNOWNED_RETRY)));
        // Owners that exited are looked up again (here: found nowhere, so unowned).
        cache.known.insert(
            a,
            (
                t0,
                vec![Owner {
                    inode: a,
                    pid: u32::MAX,
                    comm: "gone".into(),
                    cmdline: String::new(),
                }],
            ),
        );
        cache.fill(&mut [&mut s], t0 + Duration::from_secs(1));
        assert!(!cache.known.contains_key(&a) && cache.unowned.contains_key(&a));
        // And live ones after OWNERS_REFRESH.
        cache.unowned.remove(&a);
        let owner = Owner {
            inode: a,
            pid: me,
            comm: "nginx".into(),
            cmdline: String::new(),
        };
        cache.known.insert(a, (t0, vec![owner]));
        cache.fill(&mut [&mut s], t0 + OWNERS_REFRESH);
        assert!(!cache.known.contains_key(&a), "refreshed");
        // The listeners close: their entries go with them.
        let mut gone = snapshot(1, &[]);
        cache.fill(&mut [&mut gone], t0 + UNOWNED_RETRY);
        assert!(cache.known.is_empty() && cache.unowned.is_empty());
    }
}
