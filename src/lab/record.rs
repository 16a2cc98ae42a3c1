//! The lab's recordings: one per namespace (the server's, and with `--veth` the clients'),
//! each a `Recorder` on a thread of its own for the whole burst. A recording of the clients'
//! namespace enters it first, before its netlink socket exists (namespaces are per thread, a
//! socket stays where it was opened, counters are read through `/proc/thread-self/net`), and
//! is diagnosed on the same thread, so doctor's reads stay in the namespace recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::veth;
use crate::collect::{Cadence, Kernel, Owners, Recorder};
use crate::error::{Error, Result};
use crate::model::{Scope, Target};
use crate::pipeline::{self, Diagnosis};

/// One side, recorded and diagnosed from a thread of its own.
pub(super) struct Recording {
    stop: Arc<AtomicBool>,
    /// About when its clock started (its samples' `elapsed_us` count from there).
    pub started: Instant,
    thread: JoinHandle<Result<Diagnosis>>,
}

impl Recording {
    /// Starts recording `target` in the calling thread's namespace, or in the clients' one;
    /// returns once the first sample is taken, so that the burst starts after it.
    pub(super) fn start(target: Target, clients: Option<veth::Clients>) -> Result<Recording> {
        let scope = Scope::new(vec![target]);
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, first) = mpsc::channel();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .spawn(move || {
                if let Some(ns) = &clients {
                    ns.enter()?;
                }
                // Held-back ACKs keep handshakes half-open for only --ack-delay: count them often.
                let cadence = Cadence {
                    syn_every: Duration::from_millis(20),
                    syn_forced: clients.is_none(),
                    sample_interval: Duration::from_millis(5),
                    keep: true,
                    addresses: true,
                    parallel: false,
                };
                let mut rec = Recorder::start(Kernel::open()?, &scope, cadence);
                // The recorder's clock started at the end of `start`.
                let started = Instant::now();
                rec.record_sample(true, false)?;
                let _ = ready.send(started);
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                    rec.record_sample(false, false)?;
                }
                rec.record_sample(true, true)?;
                let (snap, mut kernel) = rec.finish();
                Ok(pipeline::diagnose_recorded(&mut kernel, snap, Owners::All))
            })
            .map_err(|source| Error::Io {
                what: "starting the lab recorder",
                source,
            })?;
        // A recorder that failed before its first sample says why when joined.
        let started = first.recv().unwrap_or_else(|_| Instant::now());
        Ok(Recording {
            stop,
            started,
            thread,
        })
    }

    /// Ends the recording: its snapshot and doctor's report on it.
    pub(super) fn stop(self) -> Result<Diagnosis> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|p| Error::panicked("the lab's recorder thread", p))?
    }
}
