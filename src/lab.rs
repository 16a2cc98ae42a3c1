//! `lab`: the burst failure reproduced in a private network namespace, with what every client
//! saw. The process moves into a new network namespace (and a user namespace when not root),
//! sets the sysctls there, brings up `lo`, starts a server with `--workers` threads that each
//! accept() and spend `--work` per request, and fires `--clients` concurrent clients at it.
//! Nothing outside the namespace is touched; every client has a timeout, so the run ends by
//! itself.
//!
//! The reset path of docs/kernel.md §3 needs a client's final ACK to arrive after the accept queue
//! filled, as it does across a real network. On loopback the handshake completes in
//! microseconds, so clients here hold their ACK back on purpose: with TCP_QUICKACK off before
//! connect(), the kernel does not send the handshake's ACK at once (`tcp_rcv_synsent_state_process`
//! in `net/ipv4/tcp_input.c`, pingpong mode) but with the first data, which the client sends
//! `--ack-delay` later (at most 200 ms, TCP_DELACK_MAX, when a bare ACK goes out anyway).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::collect::{Cadence, Kernel, Owners, Recorder};
use crate::doctor::Report;
use crate::error::{Error, Result};
use crate::model::Scope;
use crate::model::Target;
use crate::pipeline;
use crate::source::netns;

#[derive(Debug, Clone)]
pub struct LabOptions {
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
}

/// How one client's attempt ended. Its name (`outcome_name`) is the same in the counts, the
/// story and the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Got the server's reply.
    Served,
    /// ECONNRESET, at connect, write or read: "Connection reset by peer".
    Reset,
    /// ECONNREFUSED: nothing listening.
    Refused,
    /// connect() did not complete within --connect-timeout (SYNs dropped, retried).
    ConnectTimeout,
    /// Connected, but no reply within --reply-timeout ("connected, no reply").
    ReplyTimeout,
    /// The server closed without replying, or another error.
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Served,
        Outcome::Reset,
        Outcome::Refused,
        Outcome::ConnectTimeout,
        Outcome::ReplyTimeout,
        Outcome::Failed,
    ];
}

#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    pub settings: Settings,
    pub outcomes: BTreeMap<String, usize>,
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
pub struct Settings {
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
    pub user_namespace: bool,
}

/// Moves this (still single-threaded) process into a private network namespace; when not
/// root, inside a new user namespace that maps us to root there, where the kernel allows it.
fn isolate() -> Result<bool> {
    use nix::sched::{CloneFlags, unshare};
    let root = nix::unistd::geteuid().is_root();
    if root {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::Permission {
            what: "creating a private network namespace".into(),
            hint: format!("unshare(CLONE_NEWNET) failed: {e}"),
        })?;
        return Ok(false);
    }
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).map_err(|e| Error::Permission {
        what: "creating a private user and network namespace".into(),
        hint: format!(
            "unshare(CLONE_NEWUSER|CLONE_NEWNET) failed ({e}): unprivileged user namespaces are \
             disabled here (kernel.unprivileged_userns_clone / user.max_user_namespaces); run as root"
        ),
    })?;
    let write = |path: &str, text: String| {
        std::fs::write(path, text).map_err(|e| Error::Write {
            path: path.into(),
            source: e,
        })
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(true)
}

fn set_sysctl(name: &str, value: u32) -> Result<()> {
    let path = crate::source::sysctl::path_of(name);
    std::fs::write(&path, value.to_string()).map_err(|e| Error::Write {
        path: path.into(),
        source: e,
    })
}

// Long on purpose: the lab's sequence — namespace, server, recorder, burst, teardown, report —
// reads top to bottom, each phase a few lines that share its locals.
pub fn run(o: &LabOptions) -> Result<LabReport> {
    let user_namespace = isolate()?;
    netns::loopback_up().map_err(|e| Error::Permission {
        what: "bringing up lo in the lab namespace".into(),
        hint: e.to_string(),
    })?;
    set_sysctl("net.core.somaxconn", o.somaxconn)?;
    set_sysctl("net.ipv4.tcp_abort_on_overflow", o.abort_on_overflow)?;
    set_sysctl("net.ipv4.tcp_syncookies", o.syncookies)?;

    let listener = server_socket(o.backlog)?;
    let addr = local_addr(&listener)?;
    let stop = Arc::new(AtomicBool::new(false));
    let listener = Arc::new(listener);
    let workers: Vec<_> = (0..o.workers.max(1))
        .map(|_| {
            let (l, stop, work) = (listener.clone(), stop.clone(), o.work);
            std::thread::spawn(move || serve(&l, &stop, work))
        })
        .collect();

    // The recorder samples the lab listener for the whole burst, from its own thread.
    let scope = Scope::new(vec![Target {
        ip: None,
        port: addr.port(),
    }]);
    let rec_stop = Arc::new(AtomicBool::new(false));
    let recorder = {
        let (scope, stop) = (scope.clone(), rec_stop.clone());
        std::thread::spawn(move || -> Result<(crate::model::Snapshot, Kernel)> {
            // Held-back ACKs keep handshakes half-open for only --ack-delay: count them often.
            let cadence = Cadence {
                syn_every: Duration::from_millis(20),
                syn_forced: true,
                sample_interval: Duration::from_millis(5),
                keep: true,
            };
            let mut rec = Recorder::start(Kernel::open()?, &scope, cadence);
            rec.sample(true)?;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
                rec.sample(false)?;
            }
            rec.sample(true)?;
            Ok(rec.finish())
        })
    };
    // Let the recorder take its first sample before the burst.
    std::thread::sleep(Duration::from_millis(50));

    let started = Instant::now();
    let clients: Vec<_> = (0..o.clients)
        .map(|i| {
            let o = o.clone();
            let delay = o.ramp.mul_f64(i as f64 / o.clients as f64);
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    std::thread::sleep(delay);
                    client(addr, &o)
                })
                .map_err(|e| Error::Permission {
                    what: "starting client threads".into(),
                    hint: e.to_string(),
                })
        })
        .collect::<Result<_>>()?;
    let results: Vec<(Outcome, Option<Duration>, Option<Duration>)> = clients
        .into_iter()
        .map(|h| h.join().unwrap_or((Outcome::Failed, None, None)))
        .collect();
    let elapsed = started.elapsed();

    rec_stop.store(true, Ordering::Relaxed);
    let (snap, mut kernel) = recorder
        .join()
        .map_err(|_| Error::Protocol("lab recorder thread failed".into()))??;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }

    // Every class, 0 when nobody fell in it: a consumer never has to guess a missing key.
    let mut outcomes: BTreeMap<String, usize> = Outcome::ALL
        .iter()
        .map(|o| (outcome_name(*o).to_string(), 0))
        .collect();
    for (kind, _, _) in &results {
        *outcomes.entry(outcome_name(*kind).to_string()).or_default() += 1;
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
    let settings = Settings {
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
        user_namespace,
    };
    let mut lab = LabReport {
        settings,
        outcomes,
        connect_latency: percentiles(connect),
        served_latency: percentiles(served),
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

/// The class's name in the counts, the story and the JSON.
pub fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Served => "served",
        Outcome::Reset => "reset",
        Outcome::Refused => "refused",
        Outcome::ConnectTimeout => "connect-timeout",
        Outcome::ReplyTimeout => "reply-timeout",
        Outcome::Failed => "failed",
    }
}

fn server_socket(backlog: i32) -> Result<OwnedFd> {
    use nix::sys::socket::*;
    let fail = |e: nix::Error| Error::Permission {
        what: "starting the lab server".into(),
        hint: e.to_string(),
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(fail)?;
    let sa = SockaddrIn::new(127, 0, 0, 1, 0);
    bind(fd.as_raw_fd(), &sa).map_err(fail)?;
    // The backlog exactly as given (clamped by somaxconn in the kernel), like listen(2).
    let b = Backlog::new(backlog.clamp(0, i32::MAX)).map_err(fail)?;
    listen(&fd, b).map_err(fail)?;
    Ok(fd)
}

fn local_addr(fd: &OwnedFd) -> Result<SocketAddr> {
    let sa: nix::sys::socket::SockaddrIn = nix::sys::socket::getsockname(fd.as_raw_fd())
        .map_err(|e| Error::Protocol(format!("getsockname: {e}")))?;
    Ok(SocketAddr::from((sa.ip(), sa.port())))
}

/// A worker: accept one connection, read the request line, spend `work`, reply, close.
fn serve(listener: &OwnedFd, stop: &AtomicBool, work: Duration) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::from(50u16)), Ok(n) if n > 0) {
            continue;
        }
        let Ok(fd) = nix::sys::socket::accept(listener) else {
            continue;
        };
        let mut stream = TcpStream::from(fd);
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 64];
        if matches!(stream.read(&mut buf), Ok(n) if n > 0) {
            std::thread::sleep(work);
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nok\n");
        }
    }
}

/// A client: connect (bounded), send the request after `ack_delay`, wait for the reply.
/// Returns the outcome, connect latency and time to reply.
fn client(addr: SocketAddr, o: &LabOptions) -> (Outcome, Option<Duration>, Option<Duration>) {
    use nix::errno::Errno;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::socket::*;
    use std::os::fd::AsFd;
    let start = Instant::now();
    let Ok(fd) = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    ) else {
        return (Outcome::Failed, None, None);
    };
    if !o.ack_delay.is_zero() {
        // Pingpong mode: the handshake's final ACK waits for our first data (see module doc).
        let off: nix::libc::c_int = 0;
        // SAFETY: setsockopt on our fd with a c_int that outlives the call.
        unsafe {
            nix::libc::setsockopt(
                fd.as_raw_fd(),
                nix::libc::IPPROTO_TCP,
                nix::libc::TCP_QUICKACK,
                (&off as *const nix::libc::c_int).cast(),
                std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t,
            );
        }
    }
    let sa = SockaddrStorage::from(addr);
    match connect(fd.as_raw_fd(), &sa) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(Errno::ECONNREFUSED) => return (Outcome::Refused, None, None),
        Err(_) => return (Outcome::Failed, None, None),
    }
    let ms = o.connect_timeout.as_millis().min(60_000) as u16;
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(0) => return (Outcome::ConnectTimeout, None, None),
        Ok(_) => {}
        Err(_) => return (Outcome::Failed, None, None),
    }
    match getsockopt(&fd, sockopt::SocketError) {
        Ok(0) => {}
        Ok(e) if e == nix::libc::ECONNRESET => return (Outcome::Reset, None, None),
        Ok(e) if e == nix::libc::ECONNREFUSED => return (Outcome::Refused, None, None),
        Ok(e) if e == nix::libc::ETIMEDOUT => return (Outcome::ConnectTimeout, None, None),
        _ => return (Outcome::Failed, None, None),
    }
    let connected = start.elapsed();
    let mut stream = TcpStream::from(fd);
    let _ = stream.set_nonblocking(false);
    std::thread::sleep(o.ack_delay);
    let left = o.reply_timeout.max(Duration::from_millis(1));
    let _ = stream.set_write_timeout(Some(left));
    let _ = stream.set_read_timeout(Some(left));
    let classify = |e: &std::io::Error| match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => Outcome::Reset,
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Outcome::ReplyTimeout,
        _ => Outcome::Failed,
    };
    if let Err(e) = stream.write_all(b"GET / HTTP/1.0\r\n\r\n") {
        return (classify(&e), Some(connected), None);
    }
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(n) if n > 0 => (Outcome::Served, Some(connected), Some(start.elapsed())),
        Ok(_) => (Outcome::Failed, Some(connected), None),
        Err(e) => (classify(&e), Some(connected), None),
    }
}

fn percentiles(mut v: Vec<Duration>) -> Option<Percentiles> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    Some(Percentiles {
        p50_ms: at(0.5),
        p90_ms: at(0.9),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    })
}

/// What happened, and why, per docs/kernel.md §3. Pure.
// Long on purpose: one paragraph per thing that can have happened, in the order a reader asks.
pub fn story(r: &LabReport) -> Vec<String> {
    let n = |k: &str| r.outcomes.get(k).copied().unwrap_or(0);
    // A counter this kernel lacks is unknown, not 0: it decides nothing and reads "unknown".
    let c = |k: &str| r.counters.get(k).copied();
    let rose = |k: &str| c(k).is_some_and(|v| v > 0);
    let shown = |k: &str| {
        c(k).map(|v| v.to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let s = &r.settings;
    let b = r.send_q;
    let mut out = Vec::new();
    let (served, reset, ctimeout, rtimeout) = (
        n("served"),
        n("reset"),
        n("connect-timeout"),
        n("reply-timeout"),
    );
    if served == s.clients {
        out.push(format!(
            "Every client was served: the accept queue (B = {b}, so {} slots) absorbed the burst{}.",
            b + 1,
            match c("TcpExt:ListenOverflows") {
                Some(0) => " without a single overflow",
                Some(_) => "; overflows that happened were retried in time",
                None => "",
            }
        ));
    }
    if reset > 0 {
        if s.tcp_abort_on_overflow == 1 {
            out.push(format!(
                "{reset} client(s) got \"Connection reset by peer\" at once: their handshake's final ACK (carried by the \
                 request, {} ms after connect() returned) found the accept queue full, and with \
                 net.ipv4.tcp_abort_on_overflow=1 the kernel answers that with RST (EmbryonicRsts +{}).",
                s.ack_delay_ms,
                shown("TcpExt:EmbryonicRsts")
            ));
        } else {
            out.push(format!(
                "{reset} client(s) were reset although tcp_abort_on_overflow=0: late resets, when a half-open handshake \
                 expired before room appeared, or the server closed with connections still queued."
            ));
        }
    } else if s.tcp_abort_on_overflow == 0 && rose("TcpExt:ListenOverflows") {
        out.push(
            "No client was reset: with net.ipv4.tcp_abort_on_overflow=0 an overflow drops the segment and lets \
             the client retry, so it shows up as slow connects and stalls instead."
                .to_string(),
        );
    } else if s.tcp_abort_on_overflow == 1 && rose("TcpExt:ListenOverflows") {
        out.push(format!(
            "No client was reset even with tcp_abort_on_overflow=1: the overflows hit SYNs (dropped, then \
             retried) or cookie handshakes, and neither is ever answered with RST; only a final ACK that finds \
             the queue full on a half-open connection is. Here the final ACKs came {} ms after the SYN-ACK, \
             while the queue (peak {} of B+1 = {}) had room for them: a longer --ack-delay, a smaller \
             --backlog or more --clients make them meet a full queue.",
            s.ack_delay_ms,
            r.peak_recv_q,
            b.saturating_add(1)
        ));
    } else if s.tcp_abort_on_overflow == 1 {
        out.push(format!(
            "No client was reset although tcp_abort_on_overflow=1: the accept queue never overflowed (peak {} of \
             B+1 = {}), so no final ACK met a full queue; more --clients or a smaller --backlog make it happen.",
            r.peak_recv_q,
            b.saturating_add(1)
        ));
    }
    if u64::from(r.peak_recv_q) > u64::from(b) + 1 {
        out.push(format!(
            "The accept queue peaked at {}, past its capacity B+1 = {}: the kernel checks for room without a \
             lock (sk_acceptq_is_full in tcp_v4_syn_recv_sock) and adds the connection later, so handshakes \
             completing at the same time on several CPUs can each pass the check (docs/kernel.md §1.2).",
            r.peak_recv_q,
            b.saturating_add(1)
        ));
    }
    if let Some(l) = &r.connect_latency
        && l.max_ms >= 900.0
    {
        let why = if rose("TcpExt:TCPReqQFullDrop") {
            format!(
                "a full SYN queue with tcp_syncookies=0 (TCPReqQFullDrop +{}) or a full accept queue (ListenOverflows +{})",
                shown("TcpExt:TCPReqQFullDrop"),
                shown("TcpExt:ListenOverflows")
            )
        } else {
            format!(
                "a full accept queue (ListenOverflows +{})",
                shown("TcpExt:ListenOverflows")
            )
        };
        out.push(format!(
            "Connects were slow: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms. A SYN that meets {why} is dropped \
             silently, and the client resends it after 1 s, then at growing intervals.",
            l.p50_ms, l.p99_ms, l.max_ms
        ));
    }
    if ctimeout > 0 {
        out.push(format!(
            "{ctimeout} client(s) never completed connect() within {} ms: their SYNs kept meeting a full queue.",
            s.connect_timeout_ms
        ));
    }
    if rtimeout > 0 {
        out.push(format!(
            "{rtimeout} client(s) ended reply-timeout (connected, no reply) after {} ms: connect() had succeeded, but their final \
             ACK or request was dropped at a full accept queue (or they waited behind {} busy worker(s)), so the \
             server never saw them in time.",
            s.reply_timeout_ms, s.workers
        ));
    }
    if rose("TcpExt:SyncookiesRecv") {
        out.push(format!(
            "Handshakes went through SYN cookies (SYN queue full, tcp_syncookies={}; SyncookiesSent +{}, SyncookiesRecv \
             +{} segments): a cookie handshake is never reset on overflow; it stalls until room appears.",
            s.tcp_syncookies,
            shown("TcpExt:SyncookiesSent"),
            shown("TcpExt:SyncookiesRecv")
        ));
    }
    if b < s.backlog.max(0) as u32 {
        out.push(format!(
            "The backlog asked for ({}) was cut to {b} by net.core.somaxconn={} at listen().",
            s.backlog, s.somaxconn
        ));
    }
    out
}
