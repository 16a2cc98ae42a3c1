//! Naming the processes that hold listeners, once for every command: an `OwnerCache` keyed by
//! socket inode. An inode names one socket for its whole life and the processes holding a
//! listener rarely change, so only new listeners cost a `/proc/*/fd` scan; owners that exited
//! or grew old are looked up again (a listener handed over keeps its inode: binary upgrade,
//! socket activation, a parent exiting after a fork). `doctor` uses a fresh cache once,
//! `watch` one for its whole run, the exporter one across scrapes.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use super::Sources;
use super::hot::{ByInode, Inodes};
use crate::model::{Gap, Owner, Snapshot};

/// Which listeners get their processes named (reading `/proc/*/fd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// `--no-processes`.
    None,
    All,
    /// Every listener up to this many in scope; beyond, only those with findings.
    TroubledBeyond(usize),
}

/// How long a listener nobody could be found holding waits before the next search: it may be
/// held by a process we cannot read, and each search reads every process's descriptors.
const UNOWNED_RETRY: Duration = Duration::from_secs(60);

/// How long owners found for a listener are trusted before they are looked up again, even
/// when they all still live: a listener handed to a child while its parent lives on, or a
/// scan that could not read every process.
const OWNERS_REFRESH: Duration = Duration::from_secs(300);

/// How often known owners are checked for having exited: a check stats every owner's
/// `/proc/PID`, which `watch` would otherwise do at every refresh for every listener.
const EXIT_CHECK: Duration = Duration::from_secs(5);

/// Owners by socket inode, across samples and scrapes.
#[derive(Debug, Default)]
pub struct OwnerCache {
    /// The owners found, and when.
    known: ByInode<(Instant, Vec<Owner>)>,
    /// Listeners no holder was found for, and when that was last tried.
    unowned: ByInode<Instant>,
    /// Drop command lines: the exporter never shows them, and they are most of an owner.
    lean: bool,
    /// When known owners were last checked for having exited.
    checked: Option<Instant>,
    /// Counts changes to what is known, so a caller can keep its own copy until it changes.
    generation: u64,
}

impl OwnerCache {
    /// A cache that keeps no command lines (the exporter's).
    pub fn lean() -> OwnerCache {
        OwnerCache {
            lean: true,
            ..OwnerCache::default()
        }
    }

    /// Makes sure the owners of `inodes` are known: scans (through `sources`) only for those
    /// never seen, whose owners exited, or that are due again. Returns the scan's gap, if one
    /// ran and had one.
    pub fn refresh<S: Sources, H: BuildHasher>(
        &mut self,
        sources: &mut S,
        inodes: &HashSet<u64, H>,
        now: Instant,
    ) -> Option<Gap> {
        if self
            .checked
            .is_none_or(|t| now.saturating_duration_since(t) >= EXIT_CHECK)
        {
            self.checked = Some(now);
            let before = self.known.len();
            // One look per process: a server holding 2,000 listeners is one pid.
            let mut alive: HashMap<u32, bool> = HashMap::new();
            self.known.retain(|i, (at, owners)| {
                !inodes.contains(i)
                    || (now.duration_since(*at) < OWNERS_REFRESH
                        && owners
                            .iter()
                            .all(|o| *alive.entry(o.pid).or_insert_with(|| sources.alive(o.pid))))
            });
            if self.known.len() != before {
                self.generation += 1;
            }
        }
        let need: HashSet<u64> = inodes
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
        if need.is_empty() {
            return None;
        }
        let (found, gap) = sources.owners(&need);
        self.generation += 1;
        for mut o in found {
            if self.lean {
                o.cmdline = String::new();
            }
            // A process's state is a moment's: kept for minutes it would say "stopped" long
            // after a SIGCONT. Only a one-shot naming (`name` on a fresh cache) records it.
            o.state = None;
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
        gap
    }

    /// The owners known for `inodes`, by inode then PID.
    pub fn owners_of<'a>(&self, inodes: impl IntoIterator<Item = &'a u64>) -> Vec<Owner> {
        let mut owners: Vec<Owner> = inodes
            .into_iter()
            .filter_map(|i| self.known.get(i))
            .flat_map(|(_, owners)| owners)
            .cloned()
            .collect();
        owners.sort_by_key(|o| (o.inode, o.pid));
        owners
    }

    /// Forgets every socket not in `live`: a closed socket's inode never comes back, so a long
    /// run over churning listeners does not grow.
    pub fn retain<H: BuildHasher>(&mut self, live: &HashSet<u64, H>) {
        let before = self.known.len();
        self.known.retain(|i, _| live.contains(i));
        self.unowned.retain(|i, _| live.contains(i));
        if self.known.len() != before {
            self.generation += 1;
        }
    }

    /// Changes with every change to the owners known: equal generations, equal owners.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Sets the owners of every listener of `snaps` in one scan, and forgets the sockets none
    /// of them holds (the exporter's scrape: inodes are unique across namespaces).
    pub fn fill<S: Sources>(
        &mut self,
        sources: &mut S,
        snaps: &mut [&mut Snapshot],
        now: Instant,
    ) -> Option<Gap> {
        // Each namespace's inodes sorted, so that its owners come out nearly in order; sets
        // hashed by inode (10,000 listeners in 100 namespaces: SipHash and a sort of every
        // namespace's owners were most of naming them from the cache).
        let each: Vec<Vec<u64>> = snaps
            .iter()
            .map(|s| {
                let mut v: Vec<u64> = s
                    .samples
                    .iter()
                    .flat_map(|s| s.listeners.iter().map(|l| l.inode))
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        let seen: Inodes = each.iter().flatten().copied().collect();
        self.retain(&seen);
        let gap = self.refresh(sources, &seen, now);
        for (snap, inodes) in snaps.iter_mut().zip(&each) {
            // Sorted inodes come out nearly sorted: the sort finds a run per inode.
            snap.owners = self.owners_of(inodes);
        }
        gap
    }

    /// Names the holders of `inodes` in one recording, with a gap for those that cannot be,
    /// and reads their settings (`settings::read`);
    /// the last use of a cache (a one-shot `doctor`, the end of `watch`), so the owners move
    /// into the snapshot instead of being copied: with 10,000 listeners and their command
    /// lines, a copy is megabytes. For a namespace with no name and no PID to enter it by,
    /// keeps the lowest of those PIDs that lives in it: fixes enter the namespace through it.
    /// Holding a socket is not enough, since descriptors travel (SCM_RIGHTS, socket activation).
    pub fn name<S: Sources>(
        mut self,
        sources: &mut S,
        snap: &mut Snapshot,
        inodes: &HashSet<u64>,
        now: Instant,
    ) {
        let start = snap.owners.len();
        let gap = if self.known.is_empty() && self.unowned.is_empty() {
            // A fresh cache (doctor, snapshot): the scan's owners go straight in, without the
            // per-socket entries a cache keeps.
            let (found, gap) = sources.owners(inodes);
            snap.owners.extend(found);
            gap
        } else {
            let gap = self.refresh(sources, inodes, now);
            snap.owners.extend(
                inodes
                    .iter()
                    .filter_map(|i| self.known.remove(i))
                    .flat_map(|(_, owners)| owners),
            );
            gap
        };
        snap.owners[start..].sort_by_key(|o| (o.inode, o.pid));
        snap.gaps.extend(gap);
        let (settings, gap) = super::settings::read(sources, &snap.owners[start..]);
        snap.settings.extend(settings);
        snap.gaps.extend(gap);
        let ns = &snap.netns;
        if ns.pid.is_none() && ns.path.is_none() && ns.names.is_empty() && ns.initial != Some(true)
        {
            let mut pids: Vec<u32> = snap.owners.iter().map(|o| o.pid).collect();
            pids.sort_unstable();
            pids.dedup();
            let inode = ns.inode;
            snap.netns.pid = pids
                .into_iter()
                .find(|pid| inode.is_some() && sources.netns_of(*pid) == inode);
        }
    }
}

/// Inodes of every listener in the snapshot.
pub fn listener_inodes(snap: &Snapshot) -> HashSet<u64> {
    snap.samples
        .iter()
        .flat_map(|s| s.listeners.iter().map(|l| l.inode))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fake::Fake;
    use crate::collect::{Cadence, Recorder};
    use crate::model::Scope;

    fn owner(inode: u64, pid: u32, comm: &str) -> Owner {
        Owner {
            inode,
            pid,
            comm: comm.into(),
            cmdline: format!("{comm} -g daemon"),
            ..Owner::default()
        }
    }

    /// A one-sample recording of the fake's listener (inode 7).
    fn snapshot(fake: Fake) -> (Snapshot, Fake) {
        let cadence = Cadence {
            syn_every: Duration::ZERO,
            syn_forced: false,
            sample_interval: Duration::ZERO,
            keep: true,
            addresses: true,
            parallel: false,
        };
        let mut r = Recorder::start(fake, &Scope::default(), cadence);
        r.sample(true).unwrap();
        r.finish()
    }

    #[test]
    fn owners_are_looked_up_once_per_socket_and_again_when_they_exit_or_age() {
        let mut held = owner(7, 100, "nginx");
        held.state = Some(crate::model::ProcState::Stopped);
        held.watches = Some(true);
        let (mut snap, mut fake) = snapshot(Fake {
            holders: vec![held],
            ..Fake::queues(&[0])
        });
        let mut cache = OwnerCache::lean();
        let t0 = Instant::now();
        cache.fill(&mut fake, &mut [&mut snap], t0);
        // No command line (lean), and no state: it would go stale in the cache.
        let lean = Owner {
            cmdline: String::new(),
            watches: Some(true),
            ..owner(7, 100, "nginx")
        };
        assert_eq!(snap.owners, [lean]);
        cache.fill(&mut fake, &mut [&mut snap], t0 + Duration::from_secs(1));
        assert_eq!(fake.lookups, [vec![7]], "known: not scanned again");
        // The holder exits and hands the socket to a new process: looked up again at the
        // next exit check, not before.
        fake.holders = vec![owner(7, 200, "nginx")];
        cache.fill(&mut fake, &mut [&mut snap], t0 + Duration::from_secs(2));
        assert_eq!(
            snap.owners[0].pid, 100,
            "checked again only after EXIT_CHECK"
        );
        cache.fill(&mut fake, &mut [&mut snap], t0 + EXIT_CHECK);
        assert_eq!(snap.owners[0].pid, 200);
        assert_eq!(fake.lookups.len(), 2);
        // A live owner is trusted until OWNERS_REFRESH.
        cache.fill(&mut fake, &mut [&mut snap], t0 + EXIT_CHECK * 2);
        assert_eq!(fake.lookups.len(), 2);
        cache.fill(&mut fake, &mut [&mut snap], t0 + OWNERS_REFRESH * 2);
        assert_eq!(fake.lookups.len(), 3);
    }

    #[test]
    fn a_socket_nobody_holds_waits_for_the_retry_and_closed_ones_are_forgotten() {
        let (mut snap, mut fake) = snapshot(Fake::queues(&[0]));
        let mut cache = OwnerCache::default();
        let t0 = Instant::now();
        cache.fill(&mut fake, &mut [&mut snap], t0);
        cache.fill(&mut fake, &mut [&mut snap], t0 + Duration::from_secs(1));
        assert_eq!(fake.lookups.len(), 1, "not searched again yet");
        cache.fill(&mut fake, &mut [&mut snap], t0 + UNOWNED_RETRY);
        assert_eq!(fake.lookups.len(), 2);
        // The listener closes: its entry goes with it.
        let (mut gone, _) = snapshot(Fake::default());
        cache.fill(&mut fake, &mut [&mut gone], t0 + UNOWNED_RETRY);
        assert!(cache.known.is_empty() && cache.unowned.is_empty());
    }

    #[test]
    fn naming_keeps_command_lines_and_finds_a_pid_to_enter_an_unnamed_namespace() {
        let netns = crate::model::Netns {
            inode: Some(4026532000),
            initial: Some(false),
            ..Default::default()
        };
        let mut stopped = owner(7, 300, "java");
        stopped.state = Some(crate::model::ProcState::Stopped);
        let (mut snap, mut fake) = snapshot(Fake {
            holders: vec![stopped, owner(7, 250, "java")],
            netns,
            ..Fake::queues(&[0])
        });
        let inodes = listener_inodes(&snap);
        OwnerCache::default().name(&mut fake, &mut snap, &inodes, Instant::now());
        assert_eq!(snap.owners.len(), 2);
        assert_eq!(snap.owners[0].cmdline, "java -g daemon");
        // A one-shot naming keeps the state read with the owners.
        assert_eq!(snap.owners[1].state, Some(crate::model::ProcState::Stopped));
        assert_eq!(snap.netns.pid, Some(250), "the lowest PID in the namespace");
    }
}
