//! `lab`: the burst failure reproduced in a private network namespace, with what every client
//! saw. The process moves into a new network namespace (and a user namespace when not root),
//! sets the sysctls there, brings up `lo`, starts a server with `--workers` threads that each
//! accept() and spend `--work` per request, and fires `--clients` concurrent clients at it.
//! Nothing outside the namespace is touched; every client has a timeout, so the run ends by
//! itself. With `--veth` the clients get a private namespace of their own, joined to the
//! server's by a veth pair (`veth`), and the burst is recorded in both, so each side's kernel
//! shows its own half (docs/kernel.md §13). The parts: `setup` (the namespace and the server),
//! `veth` (the clients' namespace), `load` (the clients), `record` (a recording per
//! namespace), `client_side` (the clients' own counts beside their kernel's) and `story` (what
//! happened, in words); this file runs them and counts the outcomes.
//!
//! The reset path of docs/kernel.md §3 needs a client's final ACK to arrive after the accept queue
//! filled, as it does across a real network. On loopback the handshake completes in
//! microseconds, so clients here hold their ACK back on purpose: with TCP_QUICKACK off before
//! connect(), the kernel does not send the handshake's ACK at once (`tcp_rcv_synsent_state_process`
//! in `net/ipv4/tcp_input.c`, pingpong mode) but with the first data, which the client sends
//! `--ack-delay` later (at most 200 ms, TCP_DELACK_MAX, when a bare ACK goes out anyway).

mod client_side;
mod load;
mod record;
mod setup;
mod story;
mod veth;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::doctor::Report;
use crate::error::Result;
use crate::model::{Snapshot, Target};
use crate::pipeline::Diagnosis;
use record::Recording;

pub(crate) use client_side::ClientSide;
pub(crate) use story::{counted, story};

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
    /// The clients in a namespace of their own, joined to the server's by a veth pair.
    pub veth: bool,
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
    /// `--veth`: the same burst from the clients' namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_side: Option<ClientSide>,
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
    /// The clients had a namespace of their own, on a veth (`client_side` has their side).
    pub veth: bool,
    pub user_namespace: bool,
}

/// Runs the lab: stage, server, recorders, burst, teardown, report.
pub(crate) fn run(o: &LabOptions) -> Result<LabReport> {
    let user_namespace = setup::stage(o)?;
    let clients = match o.veth {
        true => Some(veth::Clients::join()?),
        false => None,
    };
    let reads = match o.unread_close {
        true => setup::Reads::First64,
        false => setup::Reads::Whole,
    };
    let at = match clients {
        Some(_) => veth::SERVER_IP,
        None => Ipv4Addr::LOCALHOST,
    };
    let server = setup::Server::start(o.family, o.backlog, o.workers, o.work, reads, at)?;
    let recording = Recording::start(server.addr.target()?, None)?;
    // The clients' namespace sees the server as a remote address: its outgoing readings.
    let remote = match (&clients, &server.addr) {
        (Some(c), setup::LabAddr::Inet(a)) => {
            Some((*a, Recording::start(remote(*a), Some(c.clone()))?))
        }
        _ => None,
    };
    let started = Instant::now();
    let results = match &clients {
        None => load::burst(&server.addr, o)?,
        Some(c) => {
            let (addr, o) = (server.addr.clone(), o.clone());
            c.within(move || load::burst(&addr, &o))??
        }
    };
    let elapsed = started.elapsed();
    let clock = recording.started;
    let server_side = recording.stop()?;
    let client_side = match remote {
        Some((addr, r)) => {
            let offset_us = micros_between(clock, r.started);
            Some(Remote {
                addr,
                offset_us,
                recorded: r.stop()?,
            })
        }
        None => None,
    };
    server.stop();
    let run = Run {
        results,
        elapsed,
        user_namespace,
    };
    Ok(report(o, run, server_side, client_side))
}

/// A burst's raw results, before they are counted.
struct Run {
    results: Vec<load::Attempt>,
    elapsed: Duration,
    user_namespace: bool,
}

/// The clients' side as recorded: the server they dialled, their recording's clock against
/// the server's, and doctor's diagnosis there.
struct Remote {
    addr: SocketAddr,
    offset_us: i64,
    recorded: Diagnosis,
}

/// The target the clients' namespace records: the server's address, not one of its own.
fn remote(a: SocketAddr) -> Target {
    Target::Inet {
        ip: Some(a.ip()),
        port: a.port(),
    }
}

/// `later - earlier` in µs, negative when `later` came first.
fn micros_between(earlier: Instant, later: Instant) -> i64 {
    match later.checked_duration_since(earlier) {
        Some(d) => d.as_micros() as i64,
        None => -(earlier.duration_since(later).as_micros() as i64),
    }
}

/// The lab's report: the clients' outcomes counted, the server's side as diagnosed, the
/// clients' side when they had a namespace of their own, and the story of it all.
fn report(o: &LabOptions, run: Run, server: Diagnosis, remote: Option<Remote>) -> LabReport {
    let results = &run.results;
    let mut outcomes: BTreeMap<Outcome, usize> = Outcome::ALL.iter().map(|o| (*o, 0)).collect();
    for a in results {
        *outcomes.entry(a.outcome).or_default() += 1;
    }
    let connect: Vec<Duration> = results.iter().filter_map(|a| a.connect).collect();
    let served: Vec<Duration> = results
        .iter()
        .filter(|a| a.outcome == Outcome::Served)
        .filter_map(|a| a.replied)
        .collect();
    let counters = deltas(&server.snapshot, &crate::catalogue::LAB);
    let connect_ms: Vec<f64> = connect.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    let (peak_recv_q, peak_syn_recv, send_q) = server
        .report
        .listeners
        .first()
        .map(|l| (l.recv_q_peak, l.syn_recv_peak, l.send_q))
        .unwrap_or_default();
    let client_side = remote.map(|r| ClientSide {
        server: r.addr,
        address: IpAddr::V4(veth::CLIENTS_IP),
        recorded: client_side::Recorded::of(results),
        counters: deltas(&r.recorded.snapshot, &crate::catalogue::LAB_CLIENT),
        seen: r
            .recorded
            .report
            .servers
            .iter()
            .find(|v| v.addr == r.addr)
            .cloned(),
        agreement: client_side::Agreement::of(&server.report, r.addr, &r.recorded.report, r.addr),
        doctor: r.recorded.report,
        recording: r.recorded.snapshot,
        offset_us: r.offset_us,
    });
    let mut lab = LabReport {
        settings: Settings::of(o, run.user_namespace),
        outcomes,
        connect_latency: load::percentiles(connect),
        served_latency: load::percentiles(served),
        counters,
        peak_recv_q,
        peak_syn_recv,
        send_q,
        story: Vec::new(),
        doctor: server.report,
        client_side,
        elapsed_ms: run.elapsed.as_millis() as u64,
        recording: server.snapshot,
        connect_ms,
    };
    lab.story = story(&lab);
    lab
}

/// The rise of each of `keys` over a recording; a counter the kernel lacks is left out.
fn deltas(snap: &Snapshot, keys: &[&str]) -> BTreeMap<String, u64> {
    keys.iter()
        .filter_map(|k| snap.counter_delta(k).map(|d| (k.to_string(), d)))
        .collect()
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
            veth: o.veth,
            user_namespace,
        }
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
