//! The lab's load: `--clients` concurrent clients, started evenly over `--ramp`, each
//! connecting with a timeout, holding its final ACK back for `--ack-delay` (see the module
//! doc of `lab`), sending a request and waiting for the reply; what each saw, classified.
//! Against a Unix listener (`lab --unix`) there is no handshake: three clients in four connect
//! non-blocking, as nginx and most event loops do, and get EAGAIN at once when the queue is
//! full (`Outcome::Eagain`); the fourth blocks in connect() for up to `--connect-timeout`
//! (SO_SNDTIMEO; `unix_wait_for_peer`) and is served once room appears, or times out.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::setup::LabAddr;
use super::{LabOptions, Outcome, Percentiles};
use crate::error::{Error, Result};

/// One client's end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Attempt {
    pub outcome: Outcome,
    /// How long connect() took, when it completed.
    pub connect: Option<Duration>,
    /// From the start to the first byte of the reply, when one came.
    pub replied: Option<Duration>,
    /// What the client's own TCP socket said of itself (TCP_INFO); None for a Unix client or
    /// one that never called connect().
    pub own: Option<Own>,
}

impl Attempt {
    fn ended(outcome: Outcome) -> Attempt {
        Attempt {
            outcome,
            connect: None,
            replied: None,
            own: None,
        }
    }
}

/// A TCP client's own record of its socket, read with TCP_INFO: the clients' count, to put
/// beside what their namespace's kernel counted (`lab --veth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Own {
    /// SYNs sent again before connect() completed or was given up (`tcpi_total_retrans` then:
    /// only the SYN had been sent, and each resend counts once in TcpExt TCPSynRetrans,
    /// `__tcp_retransmit_skb`). None when TCP_INFO could not be read.
    pub syn_resent: Option<u32>,
    /// For a client that gave up waiting for the reply: whether nothing of its request had
    /// been acknowledged (`tcpi_bytes_acked` ≤ 1, the SYN only). None for the others.
    pub request_unacked: Option<bool>,
}

/// TCP_INFO of a socket; None when it cannot be read.
fn tcp_info(fd: &impl AsRawFd) -> Option<nix::libc::tcp_info> {
    use nix::libc;
    // SAFETY: tcp_info is plain old data; zeroes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which we own.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(info)
}

/// How a Unix client connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnixConnect {
    /// O_NONBLOCK: EAGAIN at once when the queue is full.
    NonBlocking,
    /// Waits for room up to SO_SNDTIMEO = --connect-timeout, then EAGAIN.
    Blocking,
}

impl UnixConnect {
    /// Client `i`'s way: every fourth one blocks.
    fn of(i: usize) -> UnixConnect {
        match i % 4 {
            3 => UnixConnect::Blocking,
            _ => UnixConnect::NonBlocking,
        }
    }
}

/// Fires every client at `addr` and waits for all of them (each has its own timeouts).
pub(super) fn burst(addr: &LabAddr, o: &LabOptions) -> Result<Vec<Attempt>> {
    let clients: Vec<_> = (0..o.clients)
        .map(|i| {
            let (o, addr) = (o.clone(), addr.clone());
            let delay = o.ramp.mul_f64(i as f64 / o.clients as f64);
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    std::thread::sleep(delay);
                    match addr {
                        LabAddr::Inet(a) => client(a, &o),
                        LabAddr::Unix(name) => unix_client(&name, UnixConnect::of(i), &o),
                    }
                })
                .map_err(|source| Error::Io {
                    what: "starting client threads",
                    source,
                })
        })
        .collect::<Result<_>>()?;
    // A client that panicked is a bug, not a client that failed: counting it as one would put
    // it in the lab's figures.
    clients
        .into_iter()
        .map(|h| {
            h.join()
                .map_err(|p| Error::panicked("a lab client thread", p))
        })
        .collect()
}

/// A client: connect (bounded), send the request after `ack_delay`, wait for the reply; its
/// socket's own record of SYNs resent, and of a request left unacknowledged when it gives up.
fn client(addr: SocketAddr, o: &LabOptions) -> Attempt {
    use nix::sys::socket::*;
    let start = Instant::now();
    let Ok(fd) = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    ) else {
        return Attempt::ended(Outcome::Failed);
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
    let connected = connect_within(&fd, addr, o.connect_timeout);
    // Read now: after the handshake nothing else has been sent, so every resend was a SYN.
    let mut own = Own {
        syn_resent: tcp_info(&fd).map(|i| i.tcpi_total_retrans),
        request_unacked: None,
    };
    if let Err(outcome) = connected {
        return Attempt {
            own: Some(own),
            ..Attempt::ended(outcome)
        };
    }
    let connected = start.elapsed();
    let mut stream = TcpStream::from(fd);
    let _ = stream.set_nonblocking(false);
    std::thread::sleep(o.ack_delay);
    let left = Some(o.reply_timeout.max(Duration::from_millis(1)));
    let _ = stream.set_write_timeout(left);
    let _ = stream.set_read_timeout(left);
    let attempt = exchange(&mut stream, start, connected, &request(o));
    if attempt.outcome == Outcome::ReplyTimeout {
        own.request_unacked = tcp_info(&stream).map(|i| i.tcpi_bytes_acked <= 1);
    }
    Attempt {
        own: Some(own),
        ..attempt
    }
}

/// A non-blocking connect() to `addr`, waited for up to `timeout`: Ok once connected, else
/// how the client ended.
fn connect_within(fd: &OwnedFd, addr: SocketAddr, timeout: Duration) -> Result<(), Outcome> {
    use nix::errno::Errno;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::socket::*;
    use std::os::fd::AsFd;
    let sa = SockaddrStorage::from(addr);
    match connect(fd.as_raw_fd(), &sa) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(Errno::ECONNREFUSED) => return Err(Outcome::Refused),
        Err(_) => return Err(Outcome::Failed),
    }
    let ms = timeout.as_millis().min(60_000) as u16;
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(0) => return Err(Outcome::ConnectTimeout),
        Ok(_) => {}
        Err(_) => return Err(Outcome::Failed),
    }
    match getsockopt(fd, sockopt::SocketError) {
        Ok(0) => Ok(()),
        Ok(e) if e == nix::libc::ECONNRESET => Err(Outcome::Reset),
        Ok(e) if e == nix::libc::ECONNREFUSED => Err(Outcome::Refused),
        Ok(e) if e == nix::libc::ETIMEDOUT => Err(Outcome::ConnectTimeout),
        _ => Err(Outcome::Failed),
    }
}

/// A client of the Unix listener `@name`: connect as `how` says, then the same request and
/// reply as over TCP.
fn unix_client(name: &str, how: UnixConnect, o: &LabOptions) -> Attempt {
    use nix::errno::Errno;
    use nix::sys::socket::*;
    let start = Instant::now();
    let flags = match how {
        UnixConnect::NonBlocking => SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        UnixConnect::Blocking => SockFlag::SOCK_CLOEXEC,
    };
    let Ok(fd) = socket(AddressFamily::Unix, SockType::Stream, flags, None) else {
        return Attempt::ended(Outcome::Failed);
    };
    let wait = nix::sys::time::TimeVal::from(libc_timeval(o.connect_timeout));
    if how == UnixConnect::Blocking && setsockopt(&fd, sockopt::SendTimeout, &wait).is_err() {
        return Attempt::ended(Outcome::Failed);
    }
    let Ok(sa) = UnixAddr::new_abstract(name.as_bytes()) else {
        return Attempt::ended(Outcome::Failed);
    };
    match (connect(fd.as_raw_fd(), &sa), how) {
        (Ok(()), _) => {}
        (Err(Errno::EAGAIN), UnixConnect::NonBlocking) => return Attempt::ended(Outcome::Eagain),
        (Err(Errno::EAGAIN), UnixConnect::Blocking) => {
            return Attempt::ended(Outcome::ConnectTimeout);
        }
        (Err(Errno::ECONNREFUSED), _) => return Attempt::ended(Outcome::Refused),
        (Err(_), _) => return Attempt::ended(Outcome::Failed),
    }
    let connected = start.elapsed();
    let mut stream = UnixStream::from(fd);
    let _ = stream.set_nonblocking(false);
    let left = Some(o.reply_timeout.max(Duration::from_millis(1)));
    let _ = stream.set_write_timeout(left);
    let _ = stream.set_read_timeout(left);
    exchange(&mut stream, start, connected, &request(o))
}

fn libc_timeval(d: Duration) -> nix::libc::timeval {
    nix::libc::timeval {
        tv_sec: d.as_secs() as nix::libc::time_t,
        tv_usec: d.subsec_micros() as nix::libc::suseconds_t,
    }
}

/// The request a client sends: a small GET, or with `--unread-close` a 16 KB POST, more than
/// the server will read.
fn request(o: &LabOptions) -> Vec<u8> {
    if !o.unread_close {
        return b"GET / HTTP/1.0\r\n\r\n".to_vec();
    }
    let mut r = format!("POST / HTTP/1.0\r\nContent-Length: {UNREAD_BODY}\r\n\r\n").into_bytes();
    r.resize(r.len() + UNREAD_BODY, b'x');
    r
}

/// The body of an `--unread-close` request: far past the server's 64-byte read, and within
/// the socket buffers so that the write completes before the server closes.
const UNREAD_BODY: usize = 16 * 1024;

/// Sends the request on a connected stream and reads the reply to its end (timeouts already
/// set): the close that follows the reply is part of what the client sees.
fn exchange(
    stream: &mut (impl Read + Write),
    start: Instant,
    connected: Duration,
    request: &[u8],
) -> Attempt {
    let classify = |e: &std::io::Error| match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => Outcome::Reset,
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Outcome::ReplyTimeout,
        _ => Outcome::Failed,
    };
    let ended = |outcome, replied| Attempt {
        outcome,
        connect: Some(connected),
        replied,
        own: None,
    };
    if let Err(e) = stream.write_all(request) {
        return ended(classify(&e), None);
    }
    let mut buf = [0u8; 64];
    let mut replied = None;
    loop {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => {
                replied.get_or_insert_with(|| start.elapsed());
            }
            Ok(_) if replied.is_some() => return ended(Outcome::Served, replied),
            Ok(_) => return ended(Outcome::Failed, None),
            Err(e) => {
                let outcome = match (classify(&e), replied) {
                    (Outcome::Reset, Some(_)) => Outcome::ResetAfterReply,
                    // The reply came; a close that is only slow to arrive does not undo it.
                    (Outcome::ReplyTimeout, Some(_)) => Outcome::Served,
                    (outcome, _) => outcome,
                };
                return ended(outcome, replied);
            }
        }
    }
}

pub(super) fn percentiles(mut v: Vec<Duration>) -> Option<Percentiles> {
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
