//! One collection of the namespaces in scope, for `exporter` (at every scrape) and `metrics`
//! (once): a single sample of each namespace's listeners, counters and sysctls (`fan_out` of
//! `record`), the processes holding the listeners (one `OwnerCache` kept across scrapes), and
//! who each namespace belongs to. Nothing polls in the background; what one scrape keeps for
//! the next is each namespace's RetransSegs, so that a scrape reads the namespace's
//! ESTABLISHED connections (unacknowledged requests) only when it retransmitted since.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::held::Pool;
use super::{
    Cadence, Deadline, Kernel, Namespaces, NsDone, OwnerCache, Recorder, SYN_RECV_EVERY, Sources,
    fan_out,
};
use crate::catalogue::RETRANS_SEGS;
use crate::error::{Error, Result};
use crate::model::{Scope, Scraped, ScrapedNs, Snapshot};
use crate::source::netns::Members;

/// One namespace of a scrape: its single sample, with owners.
pub type NsScrape = NsDone<Snapshot>;

/// Everything one collection saw.
#[derive(Debug)]
pub struct Scrape {
    /// Ordered by inode.
    pub namespaces: Vec<NsScrape>,
    pub duration: Duration,
}

impl Scrape {
    /// When not one namespace could be read, the first reason: for a one-shot command that
    /// is the error to report, not an empty result.
    pub fn into_only_error(self) -> std::result::Result<Scrape, Error> {
        if self.namespaces.iter().any(|n| n.value.is_some()) {
            return Ok(self);
        }
        match self.namespaces.into_iter().find_map(|n| n.error) {
            Some(e) => Err(e),
            None => Err(Error::BadInput("no network namespace to read".into())),
        }
    }
}

/// What the metrics write: every namespace's sample and who it belongs to, without the
/// collection's errors and processes.
impl From<Scrape> for Scraped {
    fn from(s: Scrape) -> Scraped {
        Scraped {
            namespaces: s
                .namespaces
                .into_iter()
                .map(|n| ScrapedNs {
                    inode: n.inode,
                    identity: n.identity,
                    snapshot: n.value,
                })
                .collect(),
            duration: s.duration,
        }
    }
}

/// Collects namespaces on demand; keeps the owner cache between collections.
pub struct Collector<S = Kernel> {
    namespaces: Namespaces,
    scope: Scope,
    deadline: Duration,
    sources: Arc<dyn Fn() -> S + Send + Sync>,
    owners: OwnerCache,
    /// RetransSegs per namespace inode at the last scrape.
    retrans: Arc<Mutex<HashMap<u64, u64>>>,
    /// What each namespace's last clients' wait reading left (`Sampler::wait_quiet`), by
    /// inode.
    waits: Arc<Mutex<HashMap<u64, u64>>>,
    /// The namespaces held between scrapes (`Kernel::pooled`), when the sources are the
    /// kernel's.
    held: Option<Pool>,
    /// The processes of the last listing of namespaces.
    members: Members,
}

/// The RetransSegs map, also after a worker panicked holding it (it holds plain numbers).
fn lock(m: &Mutex<HashMap<u64, u64>>) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One full sample of the namespace `sources` reads, its connecting side compared with the
/// RetransSegs the scrape before saw there (`seen`), its clients' wait read only if someone
/// may be waiting since the scrape before (`waits`); both are then updated.
fn once<S: Sources>(
    sources: S,
    scope: &Scope,
    seen: &Mutex<HashMap<u64, u64>>,
    waits: &Mutex<HashMap<u64, u64>>,
) -> Result<Snapshot> {
    let cadence = Cadence {
        syn_every: SYN_RECV_EVERY,
        syn_forced: false,
        sample_interval: Duration::ZERO,
        keep: true,
        addresses: false,
        parallel: false,
    };
    let mut rec = Recorder::start(sources, scope, cadence);
    let inode = rec.netns_inode();
    if let Some(before) = inode.and_then(|i| lock(seen).get(&i).copied()) {
        rec.retrans_before(before);
    }
    if let Some(before) = inode.and_then(|i| lock(waits).get(&i).copied()) {
        rec.wait_quiet_before(before);
    }
    rec.record_sample(true, true)?;
    if let Some(i) = inode {
        match rec.wait_quiet() {
            Some(v) => lock(waits).insert(i, v),
            None => lock(waits).remove(&i),
        };
    }
    let (mut snap, _) = rec.finish();
    let now = snap
        .last()
        .and_then(|s| s.counters.as_ref()?.get(RETRANS_SEGS));
    if let (Some(i), Some(v)) = (inode, now) {
        lock(seen).insert(i, *v);
    }
    // Only the counters the exposition writes are kept until it is written: the 250 or so
    // that /proc/net/netstat and snmp hold were most of a 1,000-namespace scrape's memory.
    let keep = exported_keys();
    for s in &mut snap.samples {
        if let Some(c) = &mut s.counters {
            c.retain(|k, _| keep.contains(k.as_str()));
        }
    }
    Ok(snap)
}

/// The catalogue's exported counters (`render::metrics` writes these and no other).
fn exported_keys() -> &'static HashSet<&'static str> {
    static KEYS: OnceLock<HashSet<&'static str>> = OnceLock::new();
    KEYS.get_or_init(|| crate::catalogue::exported().map(|(k, _, _)| k).collect())
}

/// The counters a scrape parses: those the exposition writes and those its sample reads.
fn read_keys() -> &'static HashSet<&'static str> {
    static KEYS: OnceLock<HashSet<&'static str>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let exported = exported_keys().iter().copied();
        exported.chain(super::sampler::counters_read()).collect()
    })
}

/// Namespace workers per scrape: recording is mostly system calls, a little above the cores.
fn workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 2).min(8)
}

impl Collector<Kernel> {
    /// Each namespace read is held for the next scrape (`held`): read again without entering
    /// it, its listeners by exact lookups while its counts say they are the same.
    pub fn new(namespaces: Namespaces, scope: Scope, deadline: Duration) -> Collector<Kernel> {
        let pool = Pool::keeping(read_keys());
        let kept = pool.clone();
        let sources = Arc::new(move || Kernel::pooled(kept.clone()));
        let mut c = Collector::with_sources(namespaces, scope, deadline, sources);
        c.held = Some(pool);
        c
    }
}

impl<S: Sources + 'static> Collector<S> {
    pub fn with_sources(
        namespaces: Namespaces,
        scope: Scope,
        deadline: Duration,
        sources: Arc<dyn Fn() -> S + Send + Sync>,
    ) -> Collector<S> {
        Collector {
            namespaces,
            scope,
            deadline,
            sources,
            owners: OwnerCache::lean(),
            retrans: Arc::default(),
            waits: Arc::default(),
            held: None,
            members: Members::default(),
        }
    }

    /// Of the namespaces read so far, how many had their listeners answered by exact lookups
    /// (`held`), and how many are held now; None when the sources are not the kernel's.
    pub fn held(&self) -> Option<(u64, usize)> {
        self.held.as_ref().map(|p| (p.lookups(), p.len()))
    }

    /// How many namespaces' last wait reading left nobody who could wait later: the next
    /// scrape reads their wait without a dump while no socket entered ESTABLISHED there.
    pub fn settled_waits(&self) -> usize {
        lock(&self.waits).len()
    }

    /// One collection. Fails only when the namespaces cannot even be listed; a namespace that
    /// fails is reported in its `NsScrape` (see `Scrape::into_only_error`).
    pub fn scrape(&mut self) -> Result<Scrape> {
        let started = Instant::now();
        let scope = self.scope.clone();
        let seen = self.retrans.clone();
        let waits = self.waits.clone();
        // What could not be read while listing namespaces and naming owners is not exported:
        // a namespace that fails says so in its own series.
        let (mut namespaces, _) = fan_out(
            &self.namespaces,
            Deadline {
                base: self.deadline,
                per_round: Duration::ZERO,
            },
            workers(),
            self.sources.clone(),
            Arc::new(move |s: S| once(s, &scope, &seen, &waits)),
            Some(&mut self.members),
        )?;
        // Namespaces gone since are forgotten, and let go of.
        let listed: HashSet<u64> = namespaces.iter().filter_map(|n| n.inode).collect();
        lock(&self.retrans).retain(|i, _| listed.contains(i));
        lock(&self.waits).retain(|i, _| listed.contains(i));
        if let Some(pool) = &self.held {
            pool.retain(|i| listed.contains(&i));
        }
        let mut snaps: Vec<&mut Snapshot> = namespaces
            .iter_mut()
            .filter_map(|n| n.value.as_mut())
            .collect();
        // /proc/*/fd is the same from every network namespace: one scan, here.
        self.owners
            .fill(&mut (self.sources)(), &mut snaps, Instant::now());
        Ok(Scrape {
            namespaces,
            duration: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fake::Fake;
    use crate::model::Owner;

    /// A collector of the current namespace through `fake`'s sources.
    fn collector(fake: impl Fn() -> Fake + Send + Sync + 'static) -> Collector<Fake> {
        Collector::with_sources(
            Namespaces::Current,
            Scope::default(),
            Duration::from_secs(5),
            Arc::new(fake),
        )
    }

    #[test]
    fn a_scrape_names_owners_once_across_scrapes() {
        let fake = || Fake {
            holders: vec![Owner {
                inode: 7,
                pid: 10,
                comm: "websrv".into(),
                cmdline: "websrv: master process".into(),
                ..Owner::default()
            }],
            ..Fake::queues(&[2])
        };
        let mut c = collector(fake);
        for _ in 0..2 {
            let scrape = c.scrape().unwrap().into_only_error().unwrap();
            let snap = scrape.namespaces[0].value.as_ref().unwrap();
            assert_eq!(snap.samples[0].listeners[0].recv_q, 2);
            assert_eq!(snap.owners.len(), 1);
            assert_eq!(snap.owners[0].comm, "websrv");
            assert!(
                snap.owners[0].cmdline.is_empty(),
                "never exported, not kept"
            );
        }
    }

    #[test]
    fn a_scrape_keeps_only_the_counters_the_exposition_writes() {
        // Tcp:CurrEstab decides a dump during the sample, and is no metric.
        let fake = || Fake {
            curr_estab: Some(3),
            ..Fake::queues(&[0])
        };
        let mut c = collector(fake);
        let scrape = c.scrape().unwrap().into_only_error().unwrap();
        let counters = scrape.namespaces[0].value.as_ref().unwrap().samples[0]
            .counters
            .clone()
            .unwrap();
        assert!(counters.contains_key(crate::catalogue::REQQ_FULL_DO_COOKIES));
        assert!(!counters.contains_key(crate::collect::sampler::CURR_ESTAB));
        assert!(
            counters
                .keys()
                .all(|k| exported_keys().contains(k.as_str()))
        );
    }

    /// A namespace whose last reading left nobody who could wait later is not dumped again
    /// while no socket entered ESTABLISHED (PassiveOpens + ActiveOpens unchanged) and its
    /// queues are empty. The fake's second world has a waiting client the counters do not
    /// account for: unseen, since nothing was dumped; once the counters move, it is.
    #[test]
    fn the_wait_is_read_again_only_once_a_connection_was_made() {
        use crate::source::diag::{Conn, ConnInfo};
        use std::sync::atomic::{AtomicU64, Ordering};
        let conn = |sent: u64| Conn {
            local: "127.0.0.1:8100".parse().unwrap(),
            remote: "127.0.0.1:40000".parse().unwrap(),
            inode: 7,
            recv_q: 0,
            info: Some(ConnInfo {
                last_data_sent_ms: 2_500,
                last_data_recv_ms: 2_500,
                bytes_received: Some(100),
                bytes_sent: Some(sent),
                data_segs_out: Some(u32::from(sent > 0)),
            }),
        };
        let world = Arc::new(AtomicU64::new(0));
        let w = world.clone();
        let fake = move || {
            let step = w.load(Ordering::SeqCst);
            Fake {
                netns: crate::model::Netns {
                    inode: Some(4026532000),
                    ..Default::default()
                },
                curr_estab: Some(1),
                active_opens: Some(3),
                passive_opens: vec![if step < 2 { 10 } else { 11 }],
                // Served in the first world, waiting in the others.
                conns: vec![conn(if step == 0 { 500 } else { 0 })],
                ..Fake::queues(&[0])
            }
        };
        let mut c = collector(fake);
        let mut unanswered = Vec::new();
        for step in 0..4 {
            world.store(step, Ordering::SeqCst);
            let scrape = c.scrape().unwrap().into_only_error().unwrap();
            let snap = scrape.namespaces[0].value.as_ref().unwrap();
            let w = snap.samples[0].listeners[0]
                .wait
                .expect("read, dumped or not");
            unanswered.push(w.unanswered);
        }
        // Served; unchanged counters, not dumped; counters moved, dumped; a waiting client
        // may still be waiting later, dumped.
        assert_eq!(unanswered, [0, 0, 1, 1]);
    }

    /// `metrics` and the exporter take one sample: a full one, so it reads the clients' wait.
    #[test]
    fn a_scrape_reads_the_clients_wait() {
        use crate::source::diag::{Conn, ConnInfo};
        let fake = || Fake {
            conns: vec![Conn {
                local: "127.0.0.1:8100".parse().unwrap(),
                remote: "127.0.0.1:40000".parse().unwrap(),
                inode: 0,
                recv_q: 0,
                info: Some(ConnInfo {
                    last_data_sent_ms: 2_500,
                    last_data_recv_ms: 2_500,
                    bytes_received: Some(0),
                    bytes_sent: Some(0),
                    data_segs_out: Some(0),
                }),
            }],
            ..Fake::queues(&[1])
        };
        let mut c = collector(fake);
        let scrape = c.scrape().unwrap().into_only_error().unwrap();
        let snap = scrape.namespaces[0].value.as_ref().unwrap();
        let w = snap.samples[0].listeners[0].wait.expect("read");
        assert_eq!((w.queued, w.queued_oldest_ms), (1, 2_500));
    }
}
