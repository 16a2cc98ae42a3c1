//! A recording: the header read once at its start, a `Sampler`, and the samples worth keeping
//! (the full ones and those where the listeners changed), turned into a `Snapshot` at the end.
//! `record` drives one over a window on a fixed grid: a burst that fills an accept queue can
//! last milliseconds. The live loops (`watch`, `lab`) drive one themselves.

use std::time::Duration;

use std::net::SocketAddr;

use super::outgoing::{OutgoingScope, is_local};
use super::sampler::Sampler;
use super::{SYN_RECV_EVERY, Sampled, Sampling, Sources};
use crate::error::Result;
use crate::model::{SCHEMA_VERSION, Sample, Scope, Snapshot, Target, UnixName};

/// How a recording samples besides its window.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// How often request sockets may be counted (see `SYN_RECV_EVERY`).
    pub syn_every: Duration,
    /// Count them even when no SYN queue of the namespace has ever filled (`--syn-recv`).
    pub syn_forced: bool,
    /// The sampling period, as the snapshot records it (0 for a single sample).
    pub sample_interval: Duration,
    /// Keep the samples for the snapshot; a view that only shows them (`watch` without
    /// `--record`) does not, so that a long run does not grow.
    pub keep: bool,
    /// Read the namespace's addresses: they tell the targets that are servers it connects to,
    /// and doctor's findings on the connecting side tell its own listeners by them. A scrape,
    /// which names no target and words no finding, leaves them out (a route dump per
    /// namespace).
    pub addresses: bool,
    /// Dump TCP and Unix listeners at once, on two sockets and threads (`Query::parallel`):
    /// a single sample's wall time for a thread's start. Not for repeated samples, whose cost
    /// is CPU, nor where namespaces are read in parallel already.
    pub parallel: bool,
}

/// One recording of the namespace `S` reads.
pub struct Recorder<S> {
    sampler: Sampler<S>,
    snap: Snapshot,
    keep: bool,
}

impl<S: Sources> Recorder<S> {
    /// Reads the header now; the first sample is the caller's.
    pub fn start(mut sources: S, scope: &Scope, cadence: Cadence) -> Recorder<S> {
        let header = sources.header();
        // Unix path targets: their socket file now, kept in the snapshot and used to match a
        // listener bound through another spelling of the path.
        let mut scope = scope.clone();
        let mut socket_files = std::collections::BTreeMap::new();
        for t in &mut scope.targets {
            if let Target::Unix(u) = t
                && let UnixName::Path(p) = &u.name
            {
                let file = sources.socket_file(p);
                u.file = file.vfs();
                socket_files.insert(Target::Unix(u.clone()).to_string(), file);
            }
        }
        // Targets at none of this namespace's addresses are servers it connects to.
        let local_addresses = if scope.families.tcp && cadence.addresses {
            sources.local_addresses()
        } else {
            None
        };
        let servers: Vec<SocketAddr> = scope
            .targets
            .iter()
            .filter_map(|t| match (t, &local_addresses) {
                (Target::Inet { ip: Some(ip), port }, Some(mine)) if !is_local(*ip, mine) => {
                    Some(SocketAddr::new(*ip, *port))
                }
                _ => None,
            })
            .collect();
        scope.servers = servers.clone();
        let outgoing = OutgoingScope {
            all: scope.targets.is_empty()
                && scope.families.tcp
                && (local_addresses.is_some() || !cadence.addresses),
            servers,
            range: header.sysctls.ip_local_port_range,
        };
        let mut sampler = Sampler::with_outgoing(
            sources,
            scope.clone(),
            cadence.syn_every,
            cadence.syn_forced,
            outgoing,
        );
        if cadence.parallel {
            sampler.parallel_dumps();
        }
        Recorder {
            sampler,
            snap: Snapshot {
                schema_version: SCHEMA_VERSION,
                tool: format!("backlogctl {}", env!("CARGO_PKG_VERSION")),
                kernel: header.kernel,
                hostname: header.hostname,
                netns: header.netns,
                started_unix_ms: header.started_unix_ms,
                targets: scope.targets.clone(),
                sample_interval_us: cadence.sample_interval.as_micros() as u64,
                samples_taken: 0,
                sysctls: header.sysctls,
                owners: Vec::new(),
                settings: Vec::new(),
                samples: Vec::new(),
                gaps: header.gaps,
                other_addresses: Vec::new(),
                other_listeners: None,
                own_connections: None,
                resets_traced: None,
                socket_files,
                local_addresses,
                resolved: scope.resolved.clone(),
                client_traced: None,
                set_aside: Vec::new(),
            },
            keep: cadence.keep,
        }
    }

    /// Takes one sample now (see `Sampler::sample`) and keeps it when it carries counters.
    pub fn sample(&mut self, full: bool) -> Result<Sampled> {
        let now = self.sampler.elapsed();
        self.sample_at(full, now)
    }

    /// `sample`, at a time the caller gives (tests drive the clock).
    pub fn sample_at(&mut self, full: bool, elapsed: Duration) -> Result<Sampled> {
        let s = self.sampler.sample_at(full, elapsed)?;
        if !s.others.is_empty() || (self.keep && s.counters.is_some()) {
            self.store(s.clone());
        }
        Ok(s)
    }

    /// Keeps a hot set (`watch`, see `Sampler::hot_sampling`); the wait is read at most every
    /// `refresh`.
    pub fn hot_sampling(&mut self, refresh: Duration) {
        self.sampler.hot_sampling(refresh, self.keep);
    }

    /// How many listeners are hot now.
    pub fn hot_len(&self) -> usize {
        self.sampler.hot_len()
    }

    /// One sample of the hot listeners alone (`Sampler::sample_hot_at`). A recording keeps it,
    /// when it changed, as a sample of the whole scope: the hot listeners as they are now, the
    /// others as the last sample of the scope saw them.
    pub fn sample_hot(&mut self) -> Result<Sampled> {
        let now = self.sampler.elapsed();
        let s = self.sampler.sample_hot_at(now)?;
        if let (true, Some(c), Some(all)) = (self.keep, &s.counters, self.sampler.previous()) {
            self.snap.samples.push(Sample {
                elapsed_us: s.elapsed.as_micros() as u64,
                counters: Some(c.clone()),
                listeners: all.to_vec(),
                outgoing: None,
            });
        }
        Ok(s)
    }

    /// `sample` for a caller that only records (`record`, lab): the sample moves into the
    /// snapshot instead of being copied there and returned. `last`: no sample follows.
    pub fn record_sample(&mut self, full: bool, last: bool) -> Result<()> {
        if last {
            self.sampler.last_sample_next();
        }
        let now = self.sampler.elapsed();
        let s = self.sampler.sample_at(full, now)?;
        self.store(s);
        Ok(())
    }

    /// Keeps what a sample adds to the snapshot: its other addresses, and the sample itself
    /// when it carries counters.
    fn store(&mut self, s: Sampled) {
        if !s.others.is_empty() {
            self.snap.other_addresses = s.others;
        }
        if let (true, Some(c)) = (self.keep, s.counters) {
            self.snap.samples.push(Sample {
                elapsed_us: s.elapsed.as_micros() as u64,
                counters: Some(c),
                listeners: s.listeners,
                outgoing: s.outgoing,
            });
        }
    }

    /// Since the recording started.
    pub fn elapsed(&self) -> Duration {
        self.sampler.elapsed()
    }

    /// Samples taken so far, kept or not.
    pub fn taken(&self) -> u64 {
        self.sampler.taken()
    }

    /// The targets the recording was asked for.
    pub fn targets(&self) -> &[crate::model::Target] {
        &self.snap.targets
    }

    /// The targets at none of this namespace's addresses: servers it connects to.
    pub fn servers(&self) -> &[SocketAddr] {
        self.sampler.servers()
    }

    /// The namespace this recording reads (its inode), from the header.
    pub fn netns_inode(&self) -> Option<u64> {
        self.snap.netns.inode
    }

    /// See `Sampler::retrans_before`; before the first sample.
    pub fn retrans_before(&mut self, value: u64) {
        self.sampler.retrans_before(value);
    }

    /// See `Sampler::wait_quiet`: what an earlier recorder's last wait reading left, before
    /// the first sample; and what this one's leaves.
    pub fn wait_quiet_before(&mut self, opens: u64) {
        self.sampler.wait_quiet_before(opens);
    }

    pub fn wait_quiet(&self) -> Option<u64> {
        self.sampler.wait_quiet()
    }

    pub fn started_unix_ms(&self) -> u64 {
        self.snap.started_unix_ms
    }

    pub fn sources(&mut self) -> &mut S {
        self.sampler.sources()
    }

    /// The snapshot, with the sampler's count and gaps, and the sources back (owners are
    /// named through them). Owners are the caller's: see `OwnerCache`.
    pub fn finish(self) -> (Snapshot, S) {
        let mut snap = self.snap;
        snap.samples_taken = self.sampler.taken();
        snap.gaps.extend(self.sampler.gaps());
        (snap, self.sampler.into_sources())
    }
}

/// Records over `sampling.window`, sampling every `sampling.interval` on a fixed grid (one
/// sample when the window is zero). Processes are not named: see `OwnerCache`.
pub fn record<S: Sources>(sources: S, scope: &Scope, sampling: &Sampling) -> Result<(Snapshot, S)> {
    let interval = sampling.interval.max(Duration::from_micros(100));
    let cadence = Cadence {
        syn_every: SYN_RECV_EVERY,
        syn_forced: sampling.syn_recv,
        sample_interval: if sampling.window.is_zero() {
            Duration::ZERO
        } else {
            interval
        },
        keep: true,
        addresses: true,
        parallel: sampling.window.is_zero(),
    };
    let mut rec = Recorder::start(sources, scope, cadence);
    let mut tick = 0u32;
    loop {
        let last = rec.elapsed() >= sampling.window;
        rec.record_sample(last, last)?;
        if last {
            break;
        }
        // Sleep to the next tick on a fixed grid, so a slow sample does not shift the rest.
        tick += 1;
        let next = (interval * tick).min(sampling.window);
        match next.checked_sub(rec.elapsed()) {
            Some(wait) => std::thread::sleep(wait),
            None => tick = (rec.elapsed().as_micros() / interval.as_micros().max(1)) as u32,
        }
    }
    Ok(rec.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fake::Fake;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn recorder(fake: Fake) -> Recorder<Fake> {
        let cadence = Cadence {
            syn_every: ms(100),
            syn_forced: false,
            sample_interval: ms(10),
            keep: true,
            addresses: true,
            parallel: false,
        };
        Recorder::start(fake, &Scope::default(), cadence)
    }

    #[test]
    fn a_syn_recv_rise_alone_is_stored() {
        // The queue stays put while SYN_RECV rises from 0 to 40 between two counts.
        let mut r = recorder(Fake {
            queues: vec![3],
            cookies: vec![Some(1)],
            syn: vec![0, 0, 0, 40, 40],
            ..Fake::default()
        });
        for t in [0, 50, 100, 200, 250] {
            r.sample_at(false, ms(t)).unwrap();
        }
        let (snap, fake) = r.finish();
        let syn: Vec<Option<u32>> = snap
            .samples
            .iter()
            .map(|x| x.listeners[0].syn_recv)
            .collect();
        assert_eq!(syn, [Some(0), Some(40)], "{:?}", fake.syn_asked);
    }

    #[test]
    fn unchanged_samples_are_counted_not_stored() {
        let queues = [0, 0, 0, 3, 3, 0];
        let mut r = recorder(Fake::queues(&queues));
        for i in 0..queues.len() {
            let last = i == queues.len() - 1;
            r.sample_at(last, ms(10 * i as u64)).unwrap();
        }
        let (snap, fake) = r.finish();
        assert_eq!(snap.samples_taken, 6);
        assert_eq!(snap.sample_interval_us, 10_000);
        let stored: Vec<u32> = snap.samples.iter().map(|x| x.listeners[0].recv_q).collect();
        // First, each change, and the last (full) one.
        assert_eq!(stored, [0, 3, 0]);
        assert!(snap.samples.iter().all(|x| x.counters.is_some()));
        // Counters are read only for those: once at the start, then per change.
        assert_eq!(fake.reads, 3);
    }

    #[test]
    fn a_view_that_keeps_nothing_still_counts_and_reads_its_header() {
        let fake = Fake {
            netns: crate::model::Netns {
                inode: Some(42),
                ..Default::default()
            },
            ..Fake::queues(&[0, 3, 0])
        };
        let cadence = Cadence {
            syn_every: ms(100),
            syn_forced: false,
            sample_interval: ms(10),
            keep: false,
            addresses: true,
            parallel: false,
        };
        let mut r = Recorder::start(fake, &Scope::default(), cadence);
        for t in 0..3 {
            r.sample_at(false, ms(10 * t)).unwrap();
        }
        let (snap, _) = r.finish();
        assert!(snap.samples.is_empty());
        assert_eq!((snap.samples_taken, snap.netns.inode), (3, Some(42)));
    }

    #[test]
    fn a_window_of_zero_records_one_full_sample() {
        let once = Sampling {
            window: Duration::ZERO,
            interval: Duration::ZERO,
            syn_recv: false,
        };
        let (snap, fake) = record(Fake::queues(&[4]), &Scope::default(), &once).unwrap();
        assert_eq!((snap.samples_taken, snap.samples.len()), (1, 1));
        assert_eq!(snap.sample_interval_us, 0);
        assert_eq!(snap.samples[0].listeners[0].recv_q, 4);
        assert_eq!(fake.dumps, 1);
    }
}
