//! Recording: turns the live sources into a `Snapshot`. Samples the listeners in scope every
//! `interval` for `window` (a burst that fills an accept queue can last milliseconds), reads
//! the counters at both ends and whenever the queues changed, attributes processes once at the
//! end, and notes every gap. Identical consecutive samples are counted but not stored.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::Target;
use crate::error::Result;
use crate::model::{Gap, Listener, SCHEMA_VERSION, Sample, Snapshot};
use crate::source::{diag, netns, netstat, procs, sysctl};

/// Which listeners a command looks at.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub targets: Vec<Target>,
}

impl Scope {
    pub fn new(targets: Vec<Target>) -> Self {
        Scope { targets }
    }

    /// Ports for the kernel-side filter; empty = all.
    pub fn ports(&self) -> Vec<u16> {
        self.targets.iter().map(|t| t.port).collect()
    }

    pub fn contains(&self, l: &Listener) -> bool {
        self.targets.is_empty() || self.targets.iter().any(|t| t.matches(l))
    }
}

pub struct Plan {
    pub window: Duration,
    pub interval: Duration,
}

/// Counting request sockets (SYN_RECV) makes the kernel walk its whole established-socket hash
/// (`inet_diag_dump_icsk`), ~3.5 ms of CPU on this kind of machine whatever the filter; queue
/// samples cost ~50 us. So SYN_RECV is counted in the first and last samples and at most this
/// often in between (benches/sample_cost.rs).
pub const SYN_RECV_EVERY: Duration = Duration::from_millis(100);

/// Records a snapshot of the calling thread's network namespace.
pub fn record(scope: &Scope, plan: &Plan) -> Result<Snapshot> {
    let mut gaps = Vec::new();
    let sysctls = sysctl::read(&mut gaps);
    let mut diag = diag::Diag::open()?;
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let start = Instant::now();
    let interval = plan.interval.max(Duration::from_micros(100));
    let ports = scope.ports();

    let mut samples: Vec<Sample> = Vec::new();
    let mut taken = 0u64;
    let mut drops_unknown = 0usize;
    let mut counter_problems: Vec<String> = Vec::new();
    let mut tick = 0u32;
    let mut syn_counted: Option<Duration> = None;
    loop {
        let elapsed = start.elapsed();
        let last = elapsed >= plan.window;
        let count_syn =
            last || syn_counted.is_none_or(|t| elapsed.saturating_sub(t) >= SYN_RECV_EVERY);
        if count_syn {
            syn_counted = Some(elapsed);
        }
        let dump = diag.dump(&diag::Query {
            ports: &ports,
            syn_recv: count_syn,
            drops: true,
        })?;
        taken += 1;
        drops_unknown = drops_unknown.max(dump.drops_unknown);
        let listeners: Vec<Listener> = dump
            .listeners
            .into_iter()
            .filter(|l| scope.contains(l))
            .collect();
        let changed = samples.last().is_none_or(|prev| {
            prev.listeners.len() != listeners.len()
                || prev
                    .listeners
                    .iter()
                    .zip(&listeners)
                    .any(|(a, b)| !a.same_state(b))
        });
        if changed || last {
            let (counters, problems) = netstat::read()?;
            if counter_problems.is_empty() {
                counter_problems = problems;
            }
            samples.push(Sample {
                elapsed_us: elapsed.as_micros() as u64,
                counters: Some(counters),
                listeners,
            });
        }
        if last {
            break;
        }
        // Sleep to the next tick on a fixed grid, so a slow sample does not shift the rest.
        tick += 1;
        let next = (interval * tick).min(plan.window);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        } else {
            tick = (start.elapsed().as_micros() / interval.as_micros().max(1)) as u32;
        }
    }

    if drops_unknown > 0 {
        gaps.push(Gap::new(
            "drops",
            format!(
                "{drops_unknown} listener(s) without SK_MEMINFO_DROPS (short skmeminfo from this \
                 kernel): per-listener drops unknown; rely on TcpExt counters"
            ),
        ));
    }
    for p in counter_problems {
        gaps.push(Gap::new("counters", p));
    }
    let inodes: HashSet<u64> = samples
        .iter()
        .flat_map(|s| s.listeners.iter().map(|l| l.inode))
        .collect();
    let (owners, owner_gap) = procs::owners(&inodes);
    gaps.extend(owner_gap);

    Ok(Snapshot {
        schema_version: SCHEMA_VERSION,
        tool: format!("backlogctl {}", env!("CARGO_PKG_VERSION")),
        kernel: sysctl::kernel_release(),
        hostname: sysctl::hostname(),
        netns: netns::current(),
        started_unix_ms,
        targets: scope.targets.iter().map(|t| t.to_string()).collect(),
        sample_interval_us: if plan.window.is_zero() {
            0
        } else {
            interval.as_micros() as u64
        },
        samples_taken: taken,
        sysctls,
        owners,
        samples,
        gaps,
    })
}
