//! `lab`: the burst failure reproduced in a private network namespace, with what every client
//! saw. The process moves into a new network namespace (and a user namespace when not root),
//! sets the sysctls there, brings up `lo`, starts a server with `--workers` threads that each
//! accept() and spend `--work` per request, and fires `--clients` concurrent clients at it.
//! Nothing outside the namespace is touched; every client has a timeout, so the run ends by
//! itself. Three parts: `setup` (the namespace and the server), `load` (the clients) and
//! `story` (what happened, in words); this file runs them and records the server's side.
//!
//! The reset path of docs/kernel.md §3 needs a client's final ACK to arrive after the accept queue
//! filled, as it does across a real network. On loopback the handshake completes in
//! microseconds, so clients here hold their ACK back on purpose: with TCP_QUICKACK off before
//! connect(), the kernel does not send the handshake's ACK at once (`tcp_rcv_synsent_state_process`
//! in `net/ipv4/tcp_input.c`, pingpong mode) but with the first data, which the client sends
//! `--ack-delay` later (at most 200 ms, TCP_DELACK_MAX, when a bare ACK goes out anyway).

mod load;
mod setup;
mod story;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::collect::{Cadence, Kernel, Owners, Recorder};
use crate::doctor::Report;
use crate::error::{Error, Result};
use crate::model::{Scope, Snapshot, Target};
use crate::pipeline;

pub(crate) use story::story;

#[derive(Debug, Clone)]
pub(crate) struct LabOptions {
    pub somaxconn: u32,
    pub backlog: i32,
    pub workers: usize,
    pub work: Duration,
    pub clients: usize,
    pub abort_on_overflow: u32,
    pub syncookies: u32,
    pub connect_timeout: Duration,
    pub reply_timeout: Duration,
    pub ack_delay: Duration,
    /// Spread the clients' starts evenly over this long (0: all at once).
    pub ramp: Duration,
    pub family: LabFamily,
    /// The server reads only the first 64 bytes of each (16 KB) request, replies and closes.
    pub unread_close: bool,
}

/// The socket family of the lab's server and clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LabFamily {
    /// 127.0.0.1 on a port the kernel picks.
    Tcp,
    /// A Unix stream socket on an abstract name: per network namespace, so nothing outside
    /// the lab's namespace (no file) is touched.
    Unix,
}

crate::model::spelled! {
    /// How one client's attempt ended. Its name (`Outcome::as_str`) is the same in the counts,
    /// the story and the JSON.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub(crate) enum Outcome {
        /// Got the server's reply.
        Served = "served",
        /// ECONNRESET, at connect, write or read, before any reply: "Connection reset by peer".
        Reset = "reset",
        /// The reply, then ECONNRESET instead of the end of the stream: the server closed with
        /// the request unread (`--unread-close`). A client that reads to the end reports an
        /// error.
        ResetAfterReply = "reset-after-reply",
        /// ECONNREFUSED: nothing listening.
        Refused = "refused",
        /// EAGAIN at once from a non-blocking connect() to a full Unix listener
        /// (`unix_stream_connect`): "Resource temporarily unavailable", nginx's 502.
        Eagain = "eagain",
        /// connect() did not complete within --connect-timeout (SYNs dropped, retried).
        ConnectTimeout = "connect-timeout",
        /// Connected, but no reply within --reply-timeout ("connected, no reply").
        ReplyTimeout = "reply-timeout",
        /// The server closed without replying, or another error.
        Failed = "failed",
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct LabReport {
    pub settings: Settings,
    /// Every class, in this order, 0 when nobody fell in it: a consumer never has to guess a
    /// missing key.
    pub outcomes: BTreeMap<Outcome, usize>,
    /// Time for connect() to complete, over the clients that connected.
    pub connect_latency: Option<Percentiles>,
    /// Time from start to the reply, over the served clients.
    pub served_latency: Option<Percentiles>,
    pub counters: BTreeMap<String, u64>,
    pub peak_recv_q: u32,
    /// None when request sockets were not counted.
    pub peak_syn_recv: Option<u32>,
    pub send_q: u32,
    /// What happened and why, in words.
    pub story: Vec<String>,
    pub doctor: Report,
    pub elapsed_ms: u64,
    /// The server side recorded during the burst, as diagnosed (`lab --plot` draws it; not in
    /// the JSON).
    #[serde(skip)]
    pub recording: crate::model::Snapshot,
    /// The connect latency of every client that connected, ms (`lab --plot`'s histogram; not
    /// in the JSON, which has the percentiles).
    #[serde(skip)]
    pub connect_ms: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Settings {
    pub family: LabFamily,
    pub somaxconn: u32,
    pub backlog: i32,
    pub workers: usize,
    pub work_ms: u64,
    pub clients: usize,
    pub tcp_abort_on_overflow: u32,
    pub tcp_syncookies: u32,
    pub ack_delay_ms: u64,
    pub ramp_ms: u64,
    pub connect_timeout_ms: u64,
    pub reply_timeout_ms: u64,
    pub unread_close: bool,
    pub user_namespace: bool,
}

/// Runs the lab: stage, server, recorder, burst, teardown, report.
pub(crate) fn run(o: &LabOptions) -> Result<LabReport> {
    let user_namespace = setup::stage(o)?;
    let reads = match o.unread_close {
        true => setup::Reads::First64,
        false => setup::Reads::Whole,
    };
    let server = setup::Server::start(o.family, o.backlog, o.workers, o.work, reads)?;
    let recording = Recording::start(server.addr.target()?)?;
    let started = Instant::now();
    let results = load::burst(&server.addr, o)?;
    let elapsed = started.elapsed();
    let (snap, mut kernel) = recording.stop()?;
    server.stop();

    let mut outcomes: BTreeMap<Outcome, usize> = Outcome::ALL.iter().map(|o| (*o, 0)).collect();
    for (kind, _, _) in &results {
        *outcomes.entry(*kind).or_default() += 1;
    }
    let connect: Vec<Duration> = results.iter().filter_map(|r| r.1).collect();
    let served: Vec<Duration> = results
        .iter()
        .filter(|r| r.0 == Outcome::Served)
        .filter_map(|r| r.2)
        .collect();
    let counters: BTreeMap<String, u64> = crate::catalogue::LAB
        .iter()
        .filter_map(|k| snap.counter_delta(k).map(|d| (k.to_string(), d)))
        .collect();
    let connect_ms: Vec<f64> = connect.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    let diagnosis = pipeline::diagnose_recorded(&mut kernel, snap, Owners::All);
    let report = diagnosis.report;
    let (peak_recv_q, peak_syn_recv, send_q) = report
        .listeners
        .first()
        .map(|l| (l.recv_q_peak, l.syn_recv_peak, l.send_q))
        .unwrap_or_default();
    let mut lab = LabReport {
        settings: Settings::of(o, user_namespace),
        outcomes,
        connect_latency: load::percentiles(connect),
        served_latency: load::percentiles(served),
        counters,
        peak_recv_q,
        peak_syn_recv,
        send_q,
        story: Vec::new(),
        doctor: report,
        elapsed_ms: elapsed.as_millis() as u64,
        recording: diagnosis.snapshot,
        connect_ms,
    };
    lab.story = story(&lab);
    Ok(lab)
}

impl Settings {
    fn of(o: &LabOptions, user_namespace: bool) -> Settings {
        Settings {
            family: o.family,
            somaxconn: o.somaxconn,
            backlog: o.backlog,
            workers: o.workers,
            work_ms: o.work.as_millis() as u64,
            clients: o.clients,
            tcp_abort_on_overflow: o.abort_on_overflow,
            tcp_syncookies: o.syncookies,
            ack_delay_ms: o.ack_delay.as_millis() as u64,
            ramp_ms: o.ramp.as_millis() as u64,
            connect_timeout_ms: o.connect_timeout.as_millis() as u64,
            reply_timeout_ms: o.reply_timeout.as_millis() as u64,
            unread_close: o.unread_close,
            user_namespace,
        }
    }
}

/// The server's side, recorded from a thread of its own for the whole burst.
struct Recording {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<(Snapshot, Kernel)>>,
}

impl Recording {
    /// Starts recording the lab's listener; returns once the first sample is taken, so that
    /// the burst starts after it.
    fn start(target: Target) -> Result<Recording> {
        let scope = Scope::new(vec![target]);
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, first) = mpsc::channel();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .spawn(move || {
                // Held-back ACKs keep handshakes half-open for only --ack-delay: count them often.
                let cadence = Cadence {
                    syn_every: Duration::from_millis(20),
                    syn_forced: true,
                    sample_interval: Duration::from_millis(5),
                    keep: true,
                };
                let mut rec = Recorder::start(Kernel::open()?, &scope, cadence);
                rec.sample(true)?;
                let _ = ready.send(());
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                    rec.sample(false)?;
                }
                rec.sample(true)?;
                Ok(rec.finish())
            })
            .map_err(|source| Error::Io {
                what: "starting the lab recorder",
                source,
            })?;
        // A recorder that failed before its first sample says why when joined.
        let _ = first.recv();
        Ok(Recording { stop, thread })
    }

    fn stop(self) -> Result<(Snapshot, Kernel)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| Error::Protocol("lab recorder thread failed".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_is_spelled_once() {
        crate::model::assert_spelled_once(Outcome::ALL, Outcome::as_str);
        assert_eq!(Outcome::ResetAfterReply.as_str(), "reset-after-reply");
    }
}
