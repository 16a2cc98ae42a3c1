//! inet_diag over NETLINK_SOCK_DIAG: the listening TCP sockets of the calling thread's network
//! namespace, and the request sockets (SYN_RECV) waiting on them. The kernel does the
//! filtering: the request carries a state mask (LISTEN, plus SYN_RECV when asked) and, when the
//! scope names ports, a bytecode port filter, so established sockets never cross into user
//! space. One dump covers both address families: the older TCPDIAG_GETSOCK request dumps with
//! AF_UNSPEC (`inet_diag_dump_compat`), where SOCK_DIAG_BY_FAMILY needs one dump per family.
//! Every dump walks the host's whole listening hash, which all network namespaces share, so
//! one walk instead of two halves the cost that grows with namespaces × listeners. A kernel
//! that refuses it gets one SOCK_DIAG_BY_FAMILY dump per family. A dump the kernel marks
//! NLM_F_DUMP_INTR (the hash tables changed under it) is repeated a bounded number of times.
//!
//!
//! Unix-domain listeners come from the same socket (unix_diag, family AF_UNIX): one dump of the
//! namespace's listening Unix sockets (stream and seqpacket), filtered by state in the kernel,
//! with their name, socket file and queue lengths. Never with `UDIAG_SHOW_ICONS`: listing each
//! pending connection made `ss -xle` silently lose listeners with thousands pending. The pending
//! connections of a Unix listener with a queue are asked for by an exact request for that one
//! inode (`Query::pending_of`), for the clients' wait.
//!
//! The clients' wait of TCP listeners comes from a dump of the ESTABLISHED sockets of their
//! ports (`Query::established`, the same port bytecode, or the request's own `idiag_sport` for
//! one port, with `INET_DIAG_INFO`): `attach_waits` tells the accept queue's children (inode 0)
//! from accepted requests left unanswered.
//!
//! The message framing and header decoding come from netlink-packet-core/-sock-diag, but the
//! attributes are read here: the crate's `MemInfo` rejects a short skmeminfo array, which on
//! older kernels must mean "drops unknown" (as `ss` reads it), not a failed dump.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::{
    Emitable, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkBuffer, NlasIterator, Parseable,
};
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, INET_DIAG_SKMEMINFO, INET_DIAG_SKV6ONLY, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY,
    TCP_LISTEN, TCP_SYN_RECV,
};
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags,
};
use netlink_sys::{Socket, protocols::NETLINK_SOCK_DIAG};

use crate::error::{Error, Result};
use crate::model::{Listener, Local, Name, UnixKind, UnixLocal, UnixName, Vfs, Wait};

const NLMSG_ERROR: u16 = 2;
/// The inet_diag request older than SOCK_DIAG_BY_FAMILY (`include/uapi/linux/inet_diag.h`).
const TCPDIAG_GETSOCK: u16 = 18;
/// `struct inet_diag_req`: family, src_len, dst_len, ext, sockid (48), states, dbs.
const COMPAT_REQ_LEN: usize = 60;
/// Both families in one dump (TCPDIAG_GETSOCK).
const BOTH: u8 = 0;
const NLMSG_DONE: u16 = 3;
/// Request sockets are dumped in this state (`include/net/tcp_states.h`); asking for
/// SYN_RECV includes them (`inet_diag_dump_icsk`, `net/ipv4/inet_diag.c`).
const TCP_NEW_SYN_RECV: u8 = 12;
const TCP_ESTABLISHED: u8 = 1;
/// `INET_DIAG_INFO`: the socket's `struct tcp_info` (`include/uapi/linux/tcp.h`).
const INET_DIAG_INFO: u16 = 2;
/// `struct inet_diag_msg` is 72 bytes; attributes follow.
const DIAG_MSG_LEN: usize = 72;
/// `SK_MEMINFO_DROPS` (`include/uapi/linux/sock_diag.h`): the 9th u32 of skmeminfo.
const SK_MEMINFO_DROPS: usize = 8;
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_BC_JMP: u8 = 1;
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;
/// Attempts per family before an always-interrupted dump becomes an error.
const DUMP_TRIES: usize = 5;
const RECV_BUF: usize = 64 * 1024;
const SOCKET_RCVBUF: usize = 1 << 20;
const AF_UNIX: u8 = nix::libc::AF_UNIX as u8;
const SOCK_STREAM: u8 = nix::libc::SOCK_STREAM as u8;
const SOCK_SEQPACKET: u8 = nix::libc::SOCK_SEQPACKET as u8;
/// `struct unix_diag_req` and `struct unix_diag_msg` (`include/uapi/linux/unix_diag.h`).
const UNIX_REQ_LEN: usize = 24;
const UNIX_MSG_LEN: usize = 16;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_UID: u16 = 7;
const UDIAG_SHOW_NAME: u32 = 0x01;
const UDIAG_SHOW_VFS: u32 = 0x02;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UDIAG_SHOW_UID: u32 = 0x40;
const UDIAG_SHOW_ICONS: u32 = 0x08;
const UNIX_DIAG_ICONS: u16 = 3;
/// What a Unix listener is dumped and asked for with: name, socket file, queues, owner uid.
const UNIX_SHOW: u32 = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_RQLEN | UDIAG_SHOW_UID;
/// A Unix dump for a caller that knows each listener's name, socket file and owner already:
/// the queues alone. Filling the socket file and uid is about half of a Unix dump's kernel
/// time (sk_diag_fill), the name a third of the rest (1,000 listeners: 0.44 ms of kernel time
/// with all four, 0.27 ms with name and queues, 0.16 ms with the queues alone), and a name
/// left out is no allocation here either.
const UNIX_LEAN: u32 = UDIAG_SHOW_RQLEN;
/// Exact requests sent in one message: their answers (a few hundred bytes each with the
/// kernel's overhead) must fit the socket's receive buffer together, or the kernel drops the
/// ones that do not (`netlink_unicast` does not wait) and the answer never comes.
const EXACT_BATCH: usize = 64;
/// `INET_DIAG_NOCOOKIE`: an exact request that does not check the socket's cookie.
const NO_COOKIE: u32 = !0;

/// What one pass over the families asked for saw.
#[derive(Debug, Default, Clone)]
pub struct Dump {
    pub listeners: Vec<Listener>,
    /// The kernel has no unix_diag (CONFIG_UNIX_DIAG off, module not loadable): Unix
    /// listeners unknown.
    pub unix_absent: bool,
    /// Local address of every request socket (SYN_RECV), v4-mapped addresses unmapped.
    pub requests: Vec<SocketAddr>,
    /// Listeners whose skmeminfo was missing or too short to hold the drop counter.
    pub drops_unknown: usize,
    /// With `Query::established`: the ESTABLISHED sockets of the query's ports.
    pub conns: Vec<Conn>,
    /// With `Query::outgoing`: the namespace's connections to servers.
    pub outgoing: Vec<OutSock>,
    /// With `Query::pending_of`: each Unix listener's pending connections (their clients'
    /// socket inodes), by listener inode; a listener gone since is left out.
    pub pending: Vec<(u64, Vec<u32>)>,
}

/// One ESTABLISHED TCP socket on a listener's port: a client's connection, accepted or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// Its local address: the listener's port, v4-mapped addresses unmapped.
    pub local: SocketAddr,
    /// The client's address and port: who it is, from one reading to the next.
    pub remote: SocketAddr,
    /// 0 until the application accepts it.
    pub inode: u64,
    /// Bytes received that the application has not read (`idiag_rqueue` of a full socket).
    pub recv_q: u32,
    /// From `INET_DIAG_INFO`; None when the kernel sent none.
    pub info: Option<ConnInfo>,
}

/// The few `struct tcp_info` fields the wait needs. Offsets are fixed by the UAPI; a field
/// beyond what an older kernel sends is None.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// `tcpi_last_data_sent`: ms since it last sent data, or since the SYN-ACK if never.
    pub last_data_sent_ms: u32,
    /// `tcpi_last_data_recv`: ms since the client last sent data.
    pub last_data_recv_ms: u32,
    /// `tcpi_bytes_received` (4.1).
    pub bytes_received: Option<u64>,
    /// `tcpi_bytes_sent` (4.19): data sent, retransmissions included.
    pub bytes_sent: Option<u64>,
    /// `tcpi_data_segs_out` (4.6): segments with data sent.
    pub data_segs_out: Option<u32>,
}

impl ConnInfo {
    /// Parses an `INET_DIAG_INFO` payload; None when it is too short for the times.
    pub fn parse(b: &[u8]) -> Option<ConnInfo> {
        let u32_at = |at: usize| {
            b.get(at..at + 4)
                .map(|x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
        };
        let u64_at = |at: usize| {
            b.get(at..at + 8)
                .map(|x| u64::from_ne_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]))
        };
        Some(ConnInfo {
            last_data_sent_ms: u32_at(44)?,
            last_data_recv_ms: u32_at(52)?,
            bytes_received: u64_at(128),
            bytes_sent: u64_at(200),
            data_segs_out: u32_at(156),
        })
    }

    /// Whether the server has sent the client nothing but its SYN-ACK. Unknown counts as
    /// sent: without these fields nobody is said to wait.
    fn nothing_sent(&self) -> bool {
        match (self.bytes_sent, self.data_segs_out) {
            (Some(b), _) => b == 0,
            (None, Some(n)) => n == 0,
            (None, None) => false,
        }
    }
}

/// What to dump.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// Local ports to keep, filtered in the kernel; empty = all.
    pub ports: &'a [u16],
    /// Also count request sockets (SYN_RECV). Expensive: the kernel then walks its whole
    /// established-socket hash, not only the listeners (`inet_diag_dump_icsk`).
    pub syn_recv: bool,
    /// Ask for skmeminfo, the per-listener drop counter; without it `drops` is None.
    pub drops: bool,
    /// Dump TCP listeners (inet_diag).
    pub tcp: bool,
    /// Dump Unix-domain listeners (unix_diag); not filtered by port.
    pub unix: bool,
    /// With `unix`: instead of the dump, only these Unix listeners, each asked for by inode
    /// (`unix_diag_get_exact`), all the requests in one message. A dump formats every listener
    /// of the namespace; this formats the ones asked for (`watch`'s hot set).
    pub unix_only: Option<&'a [u64]>,
    /// The Unix dump without names, socket files and owner uids (`Unnamed`, `vfs` None, `uid`
    /// 0): for a caller that knows them by inode (`watch`'s dumps of the whole scope).
    pub unix_lean: bool,
    /// Before any dump: the TCP listeners at these addresses, each asked for exactly (a hash
    /// lookup by address and port: `watch`'s hot set).
    pub tcp_exact: &'a [SocketAddr],
    /// Dump the ESTABLISHED sockets of `ports` with their tcp_info instead of the listeners
    /// (`Dump::conns`): what the clients' wait is read from.
    pub established: bool,
    /// Instead of any dump: ask for these Unix listeners one by one (an exact request by
    /// inode) with the inodes of their pending connections (`Dump::pending`). Never in a
    /// bulk dump: with thousands pending, `ss -xle` lost listeners.
    pub pending_of: &'a [u64],
    /// Instead of listeners: this namespace's own connections to servers (`Dump::outgoing`).
    pub outgoing: Option<Outbound<'a>>,
    /// With `tcp` and a whole `unix` dump: the Unix one on a socket and thread of its own,
    /// while this one dumps TCP. Both are kernel work, each on a core (`snapshot` of 10,000 +
    /// 10,000 listeners: ~60% of the time).
    pub parallel: bool,
}

/// Which of the namespace's outgoing connections to dump: those whose local port the kernel
/// chose (`INET_DIAG_BC_AUTO`, so accepted sockets never cross), in SYN_SENT always.
#[derive(Debug, Clone, Copy)]
pub struct Outbound<'a> {
    /// ESTABLISHED ones too.
    pub established: bool,
    /// TIME_WAIT and the closing states too (FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING).
    pub closing: bool,
    /// Servers' ports, filtered in the kernel; empty = every port.
    pub ports: &'a [u16],
    /// With tcp_info (`bytes_acked`): only for targets, whose sockets are few.
    pub info: bool,
    /// With `closing` or `established`: the namespace's `ip_local_port_range`, low and high.
    /// `AUTO` alone lets a server's sockets through in both: a TIME_WAIT socket is no full
    /// socket, and `inet_diag_bc_sk` (net/ipv4/inet_diag.c) gives `AUTO` the bind lock of full
    /// sockets only (measured, a server namespace closing first had its 52 TIME_WAIT sockets
    /// to its clients dumped); an accepted connection is a clone of its listener that drops
    /// the port's bind lock (`sk_clone_lock`, net/core/sock.c), so it passes too (measured,
    /// 20,000 accepted ones beside 20,000 clients). A connecting socket's port is picked from
    /// this range, so only local ports in it are kept (a socket connected before the range
    /// was narrowed is then missed, and so is a server listening inside it). None: no such
    /// filter.
    pub local_ports: Option<(u16, u16)>,
}

/// One outgoing connection as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutSock {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `TCP_*` (`include/net/tcp_states.h`): 1 ESTABLISHED, 2 SYN_SENT, 6 TIME_WAIT, ...
    pub state: u8,
    /// Bytes sent and not acknowledged (`idiag_wqueue`: `write_seq - snd_una`).
    pub send_q: u32,
    /// The retransmission timer runs (`idiag_timer` 1: a retransmission, reordering or loss
    /// probe timeout is pending, `inet_sk_diag_fill`); not 4 (a zero-window probe), 2
    /// (keepalive) or 3 (TIME_WAIT).
    pub retransmitting: bool,
    /// `idiag_retrans`: for SYN_SENT the SYN's retransmissions, else the current backoff's.
    pub retrans: u8,
    /// tcp_info `tcpi_bytes_acked` (4.1); None when not asked or not sent.
    pub bytes_acked: Option<u64>,
    /// The socket's inode, which names the process holding it; 0 for TIME_WAIT.
    pub inode: u64,
}

/// TCP states of the connecting side (`include/net/tcp_states.h`).
pub const TCP_SYN_SENT: u8 = 2;
pub const TCP_TIME_WAIT: u8 = 6;
const CLOSING_STATES: [u8; 5] = [4, 5, 8, 9, 11]; // FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING
/// `INET_DIAG_BC_AUTO`: the socket's local port was chosen by the kernel.
const INET_DIAG_BC_AUTO: u8 = 6;
const INET_DIAG_BC_D_GE: u8 = 4;
const INET_DIAG_BC_D_LE: u8 = 5;

impl Outbound<'_> {
    fn states(&self) -> u32 {
        let mut states = 1u32 << TCP_SYN_SENT;
        if self.established {
            states |= 1 << TCP_ESTABLISHED;
        }
        if self.closing {
            states |= 1 << TCP_TIME_WAIT;
            for s in CLOSING_STATES {
                states |= 1 << s;
            }
        }
        states
    }

    fn extensions(&self) -> u8 {
        if self.info {
            1 << (INET_DIAG_INFO - 1)
        } else {
            0
        }
    }

    /// `AUTO` first, then (with `closing` or `established`, and a range) the local port within
    /// the range,
    /// each failing test a rejection (a jump 4 bytes past the end); then the servers' ports
    /// as `port_filter` does for local ones.
    fn bytecode(&self) -> Vec<u8> {
        let ports = port_filter_on(self.ports, INET_DIAG_BC_D_GE, INET_DIAG_BC_D_LE);
        let range = self
            .local_ports
            .filter(|_| self.closing || self.established);
        let total = 4 + if range.is_some() { 16 } else { 0 } + ports.len();
        let mut bc = Vec::with_capacity(total);
        // `no` of the op at `at`: 4 bytes past the end, relative to it.
        let reject = |at: usize| ((total - at) + 4) as u16;
        let op = |bc: &mut Vec<u8>, code: u8, yes: u8, no: u16| {
            bc.push(code);
            bc.push(yes);
            bc.extend_from_slice(&no.to_ne_bytes());
        };
        op(&mut bc, INET_DIAG_BC_AUTO, 4, reject(0));
        if let Some((low, high)) = range {
            // A port comparison's argument is the `no` of the op after it, skipped by `yes`.
            op(&mut bc, INET_DIAG_BC_S_GE, 8, reject(4));
            op(&mut bc, 0, 0, low);
            op(&mut bc, INET_DIAG_BC_S_LE, 8, reject(12));
            op(&mut bc, 0, 0, high);
        }
        bc.extend_from_slice(&ports);
        bc
    }
}

impl<'a> Query<'a> {
    /// Every TCP listener, nothing else: the base the other queries change.
    pub const TCP: Query<'static> = Query {
        ports: &[],
        syn_recv: false,
        drops: false,
        tcp: true,
        unix: false,
        unix_only: None,
        unix_lean: false,
        tcp_exact: &[],
        established: false,
        pending_of: &[],
        outgoing: None,
        parallel: false,
    };

    /// The ESTABLISHED sockets of these local ports, with tcp_info, filtered in the kernel.
    pub fn established(ports: &'a [u16]) -> Query<'a> {
        Query {
            ports,
            established: true,
            ..Query::TCP
        }
    }

    /// The pending connections of these Unix listeners, asked for one by one.
    pub fn pending_of(inodes: &'a [u64]) -> Query<'a> {
        Query {
            tcp: false,
            pending_of: inodes,
            ..Query::TCP
        }
    }

    /// This namespace's own connections to servers.
    pub fn outgoing(o: Outbound<'a>) -> Query<'a> {
        Query {
            outgoing: Some(o),
            ..Query::TCP
        }
    }

    /// The state bits of an inet_diag request (`1 << TCP_*`).
    fn states(&self) -> u32 {
        if let Some(o) = &self.outgoing {
            return o.states();
        }
        if self.established {
            return 1 << TCP_ESTABLISHED;
        }
        // As StateFlags says it; the kernel adds NEW_SYN_RECV to SYN_RECV itself.
        let mut states = 1u32 << TCP_LISTEN;
        if self.syn_recv {
            states |= 1 << TCP_SYN_RECV;
        }
        states
    }

    /// The bytecode filter: the local ports, or what `Outbound` keeps; none for a wait dump of
    /// one port (`sport`).
    fn bytecode(&self) -> Vec<u8> {
        match &self.outgoing {
            Some(o) => o.bytecode(),
            None if self.sport() != 0 => Vec::new(),
            None => port_filter(self.ports),
        }
    }

    /// A wait dump's one local port, put in the request's socket id (`idiag_sport`) instead of
    /// the bytecode: `inet_diag_dump_icsk` (net/ipv4/inet_diag.c) compares it with each
    /// socket's port right after its state, from the same cache line, where the bytecode
    /// (`inet_diag_bc_sk`) first gathers mark, cgroup and bind locks from the rest of the
    /// socket. The walk meets every socket of the host's established hash, so on a host with
    /// many connections elsewhere that is most of the dump. 0: no such port.
    fn sport(&self) -> u16 {
        match port_ranges(self.ports).as_slice() {
            [(lo, hi)] if self.established && lo == hi => *lo,
            _ => 0,
        }
    }

    /// The extension bits (`1 << (INET_DIAG_* - 1)`).
    fn extensions(&self) -> u8 {
        if let Some(o) = &self.outgoing {
            return o.extensions();
        }
        if self.established {
            1 << (INET_DIAG_INFO - 1)
        } else if self.drops {
            1 << (INET_DIAG_SKMEMINFO - 1)
        } else {
            0
        }
    }
}

/// An open NETLINK_SOCK_DIAG socket with its receive buffer, reused across samples.
pub struct Diag {
    socket: Socket,
    buf: Vec<u8>,
    seq: u32,
    /// False once the kernel refused a TCPDIAG_GETSOCK dump: then one dump per family.
    compat: bool,
    /// The listeners of the last dump.
    last_len: usize,
}

impl Diag {
    pub fn open() -> Result<Self> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(|source| Error::Netlink {
            op: "socket(NETLINK_SOCK_DIAG)",
            source,
        })?;
        socket
            .bind_auto()
            .map_err(|source| Error::Netlink { op: "bind", source })?;
        // Dumps are produced as we read, so this is headroom, not a requirement; ignore a refusal.
        let _ = socket.set_rx_buf_sz(SOCKET_RCVBUF as i32);
        Ok(Diag {
            socket,
            buf: vec![0; RECV_BUF],
            seq: 0,
            compat: true,
            last_len: 0,
        })
    }

    /// Frees the receive buffer until the next dump: a socket kept between the exporter's
    /// scrapes (one per namespace) keeps none of its 64 KiB.
    pub fn idle(&mut self) {
        self.buf = Vec::new();
    }

    /// The listeners (and request sockets) that `q` asks for.
    pub fn dump(&mut self, q: &Query) -> Result<Dump> {
        let whole_unix = q.unix && q.unix_only.is_none() && q.pending_of.is_empty();
        if q.parallel && q.tcp && whole_unix && q.tcp_exact.is_empty() {
            return self.dump_both_at_once(q);
        }
        let mut out = Dump::default();
        // As many as last time: 2,000 listeners pushed one by one are copied ~11 times over.
        out.listeners.reserve(self.last_len);
        let pending = &mut out.pending;
        self.unix_exact(q.pending_of, UDIAG_SHOW_ICONS, |inode, answer| {
            pending.push((inode, parse_icons(answer)));
            Ok(())
        })?;
        self.tcp_exact(q.tcp_exact, &mut out)?;
        if q.tcp {
            self.dump_inet(q, &mut out)?;
        }
        match q.unix_only {
            Some(inodes) if q.unix => self.unix_exact(inodes, UNIX_SHOW, |_, answer| {
                parse_unix_msg(answer, &mut out)
            })?,
            _ if q.unix => self.dump_family(AF_UNIX, q, &mut out)?,
            _ => {}
        }
        once_each(&mut out.listeners);
        self.last_len = out.listeners.len();
        if q.syn_recv {
            attach_syn_recv(&mut out.listeners, &out.requests);
        }
        Ok(out)
    }
}

impl Diag {
    /// `q`'s TCP dump here and its Unix dump on a socket of its own, on another thread (in the
    /// same network namespace: a thread starts in its creator's). Listeners in the same order
    /// as one socket gives them: TCP, then Unix.
    fn dump_both_at_once(&mut self, q: &Query) -> Result<Dump> {
        let tcp = Query {
            unix: false,
            parallel: false,
            ..*q
        };
        let unix = Query {
            tcp: false,
            syn_recv: false,
            parallel: false,
            ..*q
        };
        let (tcp, unix) = std::thread::scope(|s| {
            let other = s.spawn(|| Diag::open()?.dump(&unix));
            let tcp = self.dump(&tcp);
            let unix = other
                .join()
                .unwrap_or_else(|p| Err(Error::panicked("dumping Unix listeners", p)));
            (tcp, unix)
        });
        let (mut out, unix) = (tcp?, unix?);
        out.listeners.extend(unix.listeners);
        out.unix_absent = unix.unix_absent;
        out.drops_unknown += unix.drops_unknown;
        self.last_len = out.listeners.len();
        Ok(out)
    }
}

/// A dump spans several messages, and a listener closing or opening between two of them can
/// make the kernel's resume point (bucket, index) repeat a socket: keeps each once. A socket
/// seen twice has its inode twice, so when every inode differs (nearly always) no key is
/// hashed: sorting 20,000 inodes costs a tenth of hashing 20,000 keys.
fn once_each(listeners: &mut Vec<Listener>) {
    let mut inodes: Vec<u64> = listeners.iter().map(|l| l.inode).collect();
    inodes.sort_unstable();
    if inodes.windows(2).all(|w| w[0] != w[1]) {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    listeners.retain(|l| seen.insert(l.key()));
}

impl Diag {
    /// Both IP families: one walk of the listening hash where the kernel takes it.
    fn dump_inet(&mut self, q: &Query, out: &mut Dump) -> Result<()> {
        let one_walk = self.compat && {
            match self.dump_family(BOTH, q, out) {
                Ok(()) => true,
                Err(Error::Netlink { source, .. })
                    if matches!(
                        source.raw_os_error(),
                        Some(nix::libc::EINVAL | nix::libc::ENOENT | nix::libc::EOPNOTSUPP)
                    ) =>
                {
                    self.compat = false;
                    *out = Dump::default();
                    false
                }
                Err(e) => return Err(e),
            }
        };
        if !one_walk {
            for family in [AF_INET, AF_INET6] {
                self.dump_family(family, q, out)?;
            }
        }
        Ok(())
    }

    fn dump_family(&mut self, family: u8, q: &Query, out: &mut Dump) -> Result<()> {
        for _ in 0..DUMP_TRIES {
            let (l, r, d) = (out.listeners.len(), out.requests.len(), out.drops_unknown);
            match self.try_dump(family, q, out)? {
                Outcome::Complete => return Ok(()),
                Outcome::FamilyAbsent => {
                    out.unix_absent |= family == AF_UNIX;
                    return Ok(());
                }
                Outcome::Interrupted => {
                    out.listeners.truncate(l);
                    out.requests.truncate(r);
                    out.drops_unknown = d;
                }
            }
        }
        Err(Error::Protocol(format!(
            "the socket dump was interrupted {DUMP_TRIES} times in a row (NLM_F_DUMP_INTR); \
             sockets are changing very fast, try again"
        )))
    }

    fn try_dump(&mut self, family: u8, q: &Query, out: &mut Dump) -> Result<Outcome> {
        self.seq = self.seq.wrapping_add(1);
        let request = match family {
            AF_UNIX if q.unix_lean => build_unix_request_showing(UNIX_LEAN, self.seq),
            AF_UNIX => build_unix_request(self.seq),
            _ => build_request(family, q, self.seq),
        };
        self.socket
            .send(&request, 0)
            .map_err(|source| Error::Netlink { op: "send", source })?;

        let mut interrupted = false;
        loop {
            let n = self.receive("a dump message")?;
            let mut data = &self.buf[..n];
            while !data.is_empty() {
                let msg = next_message(&mut data)?;
                if msg.sequence_number() != self.seq {
                    // A leftover of an earlier, abandoned conversation.
                    continue;
                }
                if msg.flags() & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match msg.message_type() {
                    NLMSG_DONE => {
                        // An error met during the dump (a diag module that cannot be loaded)
                        // comes as a negative errno in DONE's payload, not as NLMSG_ERROR.
                        let code = errno(msg.payload());
                        if code < 0 {
                            return dump_error(family, code);
                        }
                        return Ok(if interrupted {
                            Outcome::Interrupted
                        } else {
                            Outcome::Complete
                        });
                    }
                    NLMSG_ERROR => {
                        let code = errno(msg.payload());
                        if code != 0 {
                            // 0 is an acknowledgement; the dump itself ends with NLMSG_DONE.
                            return dump_error(family, code);
                        }
                    }
                    SOCK_DIAG_BY_FAMILY if family == AF_UNIX => parse_unix_msg(msg.payload(), out)?,
                    SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK if q.outgoing.is_some() => {
                        parse_outgoing(msg.payload(), out)?
                    }
                    SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => {
                        parse_diag_msg(msg.payload(), q.drops, out)?
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The netlink message `data` starts with; `data` moves past it.
fn next_message<'a>(data: &mut &'a [u8]) -> Result<NetlinkBuffer<&'a [u8]>> {
    let msg = NetlinkBuffer::new_checked(*data).map_err(|source| Error::Decode {
        what: "malformed netlink message",
        source,
    })?;
    let len = align4(msg.length() as usize).min(data.len());
    *data = &data[len..];
    Ok(msg)
}

impl Diag {
    /// Receives the next datagram into the buffer: its length. `what` names it in the error of
    /// one too large for the buffer (MSG_TRUNC reports its true size).
    fn receive(&mut self, what: &str) -> Result<usize> {
        if self.buf.is_empty() {
            self.buf = vec![0; RECV_BUF];
        }
        let mut chunk = &mut self.buf[..];
        let n = self
            .socket
            .recv(&mut chunk, nix::libc::MSG_TRUNC)
            .map_err(|source| Error::Netlink { op: "recv", source })?;
        if n > self.buf.len() {
            return Err(Error::Protocol(format!(
                "{what} of {n} bytes exceeds the {RECV_BUF}-byte buffer"
            )));
        }
        Ok(n)
    }

    /// Asks for each Unix socket of `inodes` by inode (`unix_diag_get_exact`, net/unix/diag.c:
    /// one answer or an error each), `EXACT_BATCH` requests to a message, and hands each
    /// answer to `found` with the inode it was asked for; a socket that is gone (ENOENT) gets
    /// none.
    fn unix_exact(
        &mut self,
        inodes: &[u64],
        show: u32,
        mut found: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let build = |inode: &u64, seq| build_unix_exact(*inode, show, seq);
        self.exact(inodes, build, "unix_diag exact request", |i, a| {
            found(inodes[i], a)
        })
    }

    /// The TCP listeners at these addresses, each asked for by its address and port
    /// (`inet_diag_find_one_icsk`: a lookup in the listening hash, as for an incoming SYN,
    /// not a walk of every listener of every namespace as a dump is); to `out`. Of an
    /// SO_REUSEPORT group only the member the lookup picks answers.
    fn tcp_exact(&mut self, addrs: &[SocketAddr], out: &mut Dump) -> Result<()> {
        self.exact(
            addrs,
            |a, seq| build_inet_exact(*a, seq),
            "inet_diag exact request",
            |_, a| parse_diag_msg(a, true, out),
        )
    }

    /// Sends one exact request for each of `items` (`build` makes it with its sequence
    /// number), `EXACT_BATCH` to a message, and hands each answer to `found` with the index
    /// of the item asked for; a socket that is gone (ENOENT) gets none.
    fn exact<T>(
        &mut self,
        items: &[T],
        build: impl Fn(&T, u32) -> Vec<u8>,
        op: &'static str,
        mut found: impl FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        for (b, batch) in items.chunks(EXACT_BATCH).enumerate() {
            let first = self.seq.wrapping_add(1);
            let mut request = Vec::new();
            for (i, item) in batch.iter().enumerate() {
                request.extend(build(item, first.wrapping_add(i as u32)));
            }
            self.seq = first.wrapping_add(batch.len() as u32 - 1);
            self.socket
                .send(&request, 0)
                .map_err(|source| Error::Netlink { op: "send", source })?;
            let mut answered = vec![false; batch.len()];
            let mut left = batch.len();
            while left > 0 {
                let n = self.receive("a unix_diag answer")?;
                let mut data = &self.buf[..n];
                while !data.is_empty() {
                    let msg = next_message(&mut data)?;
                    // Another number is a leftover of an earlier, abandoned conversation.
                    let i = msg.sequence_number().wrapping_sub(first) as usize;
                    if i >= batch.len() || answered[i] {
                        continue;
                    }
                    match msg.message_type() {
                        NLMSG_ERROR => match -errno(msg.payload()) {
                            0 | nix::libc::ENOENT => {}
                            code => {
                                return Err(Error::Netlink {
                                    op,
                                    source: io::Error::from_raw_os_error(code),
                                });
                            }
                        },
                        SOCK_DIAG_BY_FAMILY => found(b * EXACT_BATCH + i, msg.payload())?,
                        _ => continue,
                    }
                    answered[i] = true;
                    left -= 1;
                }
            }
        }
        Ok(())
    }
}

/// `struct unix_diag_req` for one socket by inode, with the attributes `show` asks for.
fn build_unix_exact(inode: u64, show: u32, seq: u32) -> Vec<u8> {
    let total = 16 + UNIX_REQ_LEN;
    let mut buf = dump_request(SOCK_DIAG_BY_FAMILY, total, seq);
    // Not a dump: NLM_F_REQUEST alone makes the kernel look the inode up.
    NetlinkBuffer::new(&mut buf[..]).set_flags(NLM_F_REQUEST);
    buf[16] = AF_UNIX;
    buf[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    buf[24..28].copy_from_slice(&(inode as u32).to_ne_bytes()); // udiag_ino
    buf[28..32].copy_from_slice(&show.to_ne_bytes());
    buf[32..36].copy_from_slice(&NO_COOKIE.to_ne_bytes());
    buf[36..40].copy_from_slice(&NO_COOKIE.to_ne_bytes());
    buf
}

/// `struct inet_diag_req_v2` for the TCP listener at `addr`: not a dump, the local address
/// and port in the socket id, no cookie check, skmeminfo for the drops.
fn build_inet_exact(addr: SocketAddr, seq: u32) -> Vec<u8> {
    let mut buf = dump_request(SOCK_DIAG_BY_FAMILY, 16 + 56, seq);
    NetlinkBuffer::new(&mut buf[..]).set_flags(NLM_F_REQUEST);
    buf[16] = if addr.is_ipv4() { AF_INET } else { AF_INET6 };
    buf[17] = IPPROTO_TCP;
    buf[18] = 1 << (INET_DIAG_SKMEMINFO - 1);
    buf[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    buf[24..26].copy_from_slice(&addr.port().to_be_bytes()); // idiag_sport
    match addr.ip() {
        IpAddr::V4(ip) => buf[28..32].copy_from_slice(&ip.octets()), // idiag_src[0]
        IpAddr::V6(ip) => buf[28..44].copy_from_slice(&ip.octets()),
    }
    buf[64..68].copy_from_slice(&NO_COOKIE.to_ne_bytes()); // idiag_cookie
    buf[68..72].copy_from_slice(&NO_COOKIE.to_ne_bytes());
    buf
}

/// `UNIX_DIAG_ICONS` of one answer: the inodes of the pending connections' clients.
pub(crate) fn parse_icons(payload: &[u8]) -> Vec<u32> {
    let Some(attrs) = payload.get(UNIX_MSG_LEN..) else {
        return Vec::new();
    };
    NlasIterator::new(attrs)
        .map_while(|nla| nla.ok())
        .find(|nla| nla.kind() == UNIX_DIAG_ICONS)
        .map(|nla| {
            nla.value()
                .chunks_exact(4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .unwrap_or_default()
}

/// The errno an NLMSG_ERROR or NLMSG_DONE payload starts with (0 when too short).
fn errno(payload: &[u8]) -> i32 {
    payload
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// A dump refused (NLMSG_ERROR) or failed midway (a negative NLMSG_DONE): an absent IPv6 or
/// unix_diag is no listeners of that family, anything else an error.
fn dump_error(family: u8, code: i32) -> Result<Outcome> {
    if (family == AF_INET6 || family == AF_UNIX)
        && [
            nix::libc::ENOENT,
            nix::libc::EAFNOSUPPORT,
            nix::libc::EPROTONOSUPPORT,
        ]
        .contains(&-code)
    {
        return Ok(Outcome::FamilyAbsent);
    }
    Err(Error::Netlink {
        op: if family == AF_UNIX {
            "unix_diag dump"
        } else {
            "inet_diag dump"
        },
        source: io::Error::from_raw_os_error(-code),
    })
}

enum Outcome {
    Complete,
    Interrupted,
    FamilyAbsent,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Netlink header + the request + optional INET_DIAG_REQ_BYTECODE attribute: for `BOTH`, the
/// older `inet_diag_req` of TCPDIAG_GETSOCK, else `inet_diag_req_v2` of SOCK_DIAG_BY_FAMILY.
fn build_request(family: u8, q: &Query, seq: u32) -> Vec<u8> {
    if family == BOTH {
        return build_compat_request(q, seq);
    }
    let req = InetRequest {
        family,
        protocol: IPPROTO_TCP,
        extensions: ExtensionFlags::from_bits_retain(q.extensions()),
        states: StateFlags::from_bits_retain(q.states()),
        socket_id: SocketId {
            source_port: q.sport(),
            ..if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            }
        },
    };
    let bytecode = q.bytecode();
    let attr_len = if bytecode.is_empty() {
        0
    } else {
        4 + bytecode.len()
    };
    let total = 16 + req.buffer_len() + attr_len;
    let mut buf = dump_request(SOCK_DIAG_BY_FAMILY, total, seq);
    let body = 16 + req.buffer_len();
    req.emit(&mut buf[16..body]);
    if !bytecode.is_empty() {
        buf[body..body + 2].copy_from_slice(&(attr_len as u16).to_ne_bytes());
        buf[body + 2..body + 4].copy_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        buf[body + 4..].copy_from_slice(&bytecode);
    }
    buf
}

/// A zeroed request of `total` bytes behind a dump's `nlmsghdr` (to the kernel, port 0).
fn dump_request(message_type: u16, total: usize, seq: u32) -> Vec<u8> {
    let mut buf = vec![0u8; total];
    let mut hdr = NetlinkBuffer::new(&mut buf[..]);
    hdr.set_length(total as u32);
    hdr.set_message_type(message_type);
    hdr.set_flags(NLM_F_REQUEST | NLM_F_DUMP);
    hdr.set_sequence_number(seq);
    hdr.set_port_number(0);
    buf
}

/// `struct inet_diag_req` (TCPDIAG_GETSOCK): the kernel dumps it with AF_UNSPEC, whatever its
/// family byte says. Same states, extensions and bytecode as the newer request.
fn build_compat_request(q: &Query, seq: u32) -> Vec<u8> {
    let (states, ext) = (q.states(), q.extensions());
    let bytecode = q.bytecode();
    let attr_len = if bytecode.is_empty() {
        0
    } else {
        4 + bytecode.len()
    };
    let total = 16 + COMPAT_REQ_LEN + attr_len;
    let mut buf = dump_request(TCPDIAG_GETSOCK, total, seq);
    buf[16] = AF_INET; // idiag_family: not read by the dump
    buf[19] = ext; // idiag_ext; src_len, dst_len and the sockid but its sport stay zero
    buf[20..22].copy_from_slice(&q.sport().to_be_bytes()); // id.idiag_sport, network order
    buf[16 + 52..16 + 56].copy_from_slice(&states.to_ne_bytes()); // idiag_states
    let body = 16 + COMPAT_REQ_LEN;
    if !bytecode.is_empty() {
        buf[body..body + 2].copy_from_slice(&(attr_len as u16).to_ne_bytes());
        buf[body + 2..body + 4].copy_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        buf[body + 4..].copy_from_slice(&bytecode);
    }
    buf
}

/// `struct unix_diag_req` (`include/uapi/linux/unix_diag.h`): family, protocol, pad, states,
/// ino, show, cookie[2]. Listeners only; their name, socket file, queue lengths and owner uid.
fn build_unix_request(seq: u32) -> Vec<u8> {
    build_unix_request_showing(UNIX_SHOW, seq)
}

/// The Unix listener dump with the attributes `show` asks for.
fn build_unix_request_showing(show: u32, seq: u32) -> Vec<u8> {
    let total = 16 + UNIX_REQ_LEN;
    let mut buf = dump_request(SOCK_DIAG_BY_FAMILY, total, seq);
    buf[16] = AF_UNIX; // sdiag_family; sdiag_protocol 0
    let states = 1u32 << TCP_LISTEN; // udiag_states: the kernel skips the rest
    buf[20..24].copy_from_slice(&states.to_ne_bytes());
    buf[28..32].copy_from_slice(&show.to_ne_bytes()); // udiag_ino (24..28) 0: every socket
    buf
}

/// One `struct unix_diag_msg` (family, type, state, pad, ino, cookie[2]) and its attributes.
pub(crate) fn parse_unix_msg(payload: &[u8], out: &mut Dump) -> Result<()> {
    if payload.len() < UNIX_MSG_LEN {
        return Err(Error::Protocol(format!(
            "unix_diag message of {} bytes, expected at least {UNIX_MSG_LEN}",
            payload.len()
        )));
    }
    let kind = match payload[1] {
        SOCK_STREAM => UnixKind::Stream,
        SOCK_SEQPACKET => UnixKind::Seqpacket,
        _ => return Ok(()), // a datagram socket has no listen queue
    };
    if payload[2] != TCP_LISTEN {
        return Ok(());
    }
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        let b = b.get(at..at + 4)?;
        Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let inode = u32_at(payload, 4).unwrap_or(0);
    let (mut name, mut vfs, mut queues, mut uid) = (UnixName::Unnamed, None, None, 0);
    for nla in NlasIterator::new(&payload[UNIX_MSG_LEN..]) {
        let Ok(nla) = nla else { break };
        let v = nla.value();
        match nla.kind() {
            UNIX_DIAG_NAME => name = unix_name(v),
            UNIX_DIAG_VFS => {
                vfs = u32_at(v, 0).zip(u32_at(v, 4)).map(|(ino, dev)| Vfs {
                    ino: u64::from(ino),
                    dev,
                })
            }
            // unix_diag_get_rqlen (net/unix/diag.c): for a listener, rqueue is the number of
            // pending connections (skbs on its receive queue), wqueue sk_max_ack_backlog.
            UNIX_DIAG_RQLEN => queues = u32_at(v, 0).zip(u32_at(v, 4)),
            UNIX_DIAG_UID => uid = u32_at(v, 0).unwrap_or(0),
            _ => {}
        }
    }
    let Some((recv_q, send_q)) = queues else {
        return Err(Error::Protocol(
            "unix_diag sent a listener without UNIX_DIAG_RQLEN".into(),
        ));
    };
    out.listeners.push(Listener {
        local: Local::Unix(UnixLocal { name, kind, vfs }),
        inode: u64::from(inode),
        uid,
        recv_q,
        send_q,
        // Nothing counts a refused Unix connect: not sk_drops, not any /proc counter.
        drops: None,
        syn_recv: None,
        v6only: None,
        wait: None,
    });
    Ok(())
}

/// `UNIX_DIAG_NAME`: a path with its trailing NUL, or an abstract name after a leading NUL.
fn unix_name(v: &[u8]) -> UnixName {
    match v.split_first() {
        None => UnixName::Unnamed,
        Some((0, rest)) => UnixName::Abstract(Name::new(rest)),
        Some(_) => {
            let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
            UnixName::Path(Name::new(&v[..end]))
        }
    }
}

/// inet_diag bytecode accepting a socket whose local port is any of `ports`
/// (`inet_diag_bc_run`, `net/ipv4/inet_diag.c`): the program accepts when it runs off its end
/// exactly, and rejects by jumping 4 bytes past it. Per run of consecutive ports `lo..=hi`
/// (`port_ranges`), a 20-byte block `S_GE lo; S_LE hi; JMP end`, failures falling through to
/// the next block; a final JMP rejects. The kernel runs the blocks one after the other for
/// every socket, so 10,000 listeners on consecutive ports cost one block, not 10,000.
/// Only GE/LE are used (S_EQ is newer). Empty for no ports: no filter.
pub fn port_filter(ports: &[u16]) -> Vec<u8> {
    port_filter_on(ports, INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE)
}

/// `ports` sorted, without duplicates, as runs of consecutive ports `(lo, hi)`: the blocks of
/// `port_filter`.
pub fn port_ranges(ports: &[u16]) -> Vec<(u16, u16)> {
    let mut ports: Vec<u16> = ports.to_vec();
    ports.sort_unstable();
    let mut ranges: Vec<(u16, u16)> = Vec::new();
    for p in ports {
        match ranges.last_mut() {
            Some((_, hi)) if p <= hi.saturating_add(1) => *hi = (*hi).max(p),
            _ => ranges.push((p, p)),
        }
    }
    ranges
}

/// `port_filter` with the comparisons given: the local port's (S_GE/S_LE) or the remote's
/// (D_GE/D_LE).
fn port_filter_on(ports: &[u16], ge: u8, le: u8) -> Vec<u8> {
    let ranges = port_ranges(ports);
    if ranges.is_empty() {
        return Vec::new();
    }
    let n = ranges.len();
    let total = 20 * n + 4;
    let mut bc = Vec::with_capacity(total);
    let op = |bc: &mut Vec<u8>, code: u8, yes: u8, no: u16| {
        bc.push(code);
        bc.push(yes);
        bc.extend_from_slice(&no.to_ne_bytes());
    };
    for (i, &(lo, hi)) in ranges.iter().enumerate() {
        // offsets inside the block: 0 S_GE, 4 arg, 8 S_LE, 12 arg, 16 JMP
        op(&mut bc, ge, 8, 20);
        op(&mut bc, 0, 0, lo);
        op(&mut bc, le, 8, 12);
        op(&mut bc, 0, 0, hi);
        let to_end = (total - (20 * i + 16)) as u16;
        // JMP always takes `no`; `yes` must still be a valid length for the verifier.
        op(&mut bc, INET_DIAG_BC_JMP, 4, to_end);
    }
    op(&mut bc, INET_DIAG_BC_JMP, 4, 8);
    bc
}

pub(crate) fn parse_diag_msg(payload: &[u8], asked_drops: bool, out: &mut Dump) -> Result<()> {
    if payload.len() < DIAG_MSG_LEN {
        return Err(Error::Protocol(format!(
            "inet_diag message of {} bytes, expected at least {DIAG_MSG_LEN}",
            payload.len()
        )));
    }
    let header =
        InetResponseHeader::parse(&payload[..DIAG_MSG_LEN]).map_err(|source| Error::Decode {
            what: "inet_diag header",
            source,
        })?;
    let local = SocketAddr::new(
        unmap(header.socket_id.source_address),
        header.socket_id.source_port,
    );
    match header.state {
        TCP_LISTEN => {
            let (mut drops, mut v6only) = (None, None);
            for nla in NlasIterator::new(&payload[DIAG_MSG_LEN..]) {
                // A malformed attribute ends attribute parsing; the header is still good.
                let Ok(nla) = nla else { break };
                match nla.kind() {
                    INET_DIAG_SKMEMINFO => drops = skmeminfo_drops(nla.value()),
                    INET_DIAG_SKV6ONLY => v6only = nla.value().first().map(|b| *b != 0),
                    _ => {}
                }
            }
            if drops.is_none() && asked_drops {
                out.drops_unknown += 1;
            }
            out.listeners.push(Listener {
                local: Local::Inet(local),
                inode: u64::from(header.inode),
                uid: header.uid,
                // tcp_diag_get_info (net/ipv4/tcp_diag.c): for a listener rqueue is
                // sk_ack_backlog and wqueue is sk_max_ack_backlog.
                recv_q: header.recv_queue,
                send_q: header.send_queue,
                drops,
                syn_recv: None,
                v6only: if header.family == AF_INET6 {
                    v6only
                } else {
                    None
                },
                wait: None,
            });
        }
        TCP_SYN_RECV | TCP_NEW_SYN_RECV => out.requests.push(local),
        TCP_ESTABLISHED => {
            let info = NlasIterator::new(&payload[DIAG_MSG_LEN..])
                .map_while(|nla| nla.ok())
                .find(|nla| nla.kind() == INET_DIAG_INFO)
                .and_then(|nla| ConnInfo::parse(nla.value()));
            out.conns.push(Conn {
                local,
                remote: SocketAddr::new(
                    unmap(header.socket_id.destination_address),
                    header.socket_id.destination_port,
                ),
                inode: u64::from(header.inode),
                recv_q: header.recv_queue,
                info,
            });
        }
        _ => {}
    }
    Ok(())
}

/// One outgoing connection: its addresses, state, Send-Q and retransmission timer from the
/// header, `bytes_acked` from tcp_info when sent. TIME_WAIT sockets come as the same header
/// (`inet_twsk_diag_fill`), queues and timer aside.
pub(crate) fn parse_outgoing(payload: &[u8], out: &mut Dump) -> Result<()> {
    if payload.len() < DIAG_MSG_LEN {
        return Err(Error::Protocol(format!(
            "inet_diag message of {} bytes, expected at least {DIAG_MSG_LEN}",
            payload.len()
        )));
    }
    // Read by hand: the crate's header parser turns a timer it does not know into an error.
    let (state, timer, retrans) = (payload[1], payload[2], payload[3]);
    let header = InetResponseHeader::parse(&payload[..DIAG_MSG_LEN]).ok();
    let Some(header) = header else {
        return Ok(());
    };
    let bytes_acked = NlasIterator::new(&payload[DIAG_MSG_LEN..])
        .map_while(|nla| nla.ok())
        .find(|nla| nla.kind() == INET_DIAG_INFO)
        .and_then(|nla| {
            nla.value()
                .get(120..128)
                .map(|b| u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        });
    out.outgoing.push(OutSock {
        local: SocketAddr::new(
            unmap(header.socket_id.source_address),
            header.socket_id.source_port,
        ),
        remote: SocketAddr::new(
            unmap(header.socket_id.destination_address),
            header.socket_id.destination_port,
        ),
        state,
        send_q: if state == TCP_TIME_WAIT {
            0
        } else {
            header.send_queue
        },
        // 1: ICSK_TIME_RETRANS, REO_TIMEOUT or LOSS_PROBE (`inet_sk_diag_fill`); 2 is
        // keepalive, 3 TIME_WAIT's timer, 4 the zero-window probe.
        retransmitting: state != TCP_TIME_WAIT && timer == 1,
        retrans: if state == TCP_TIME_WAIT { 0 } else { retrans },
        bytes_acked,
        inode: u64::from(header.inode),
    });
    Ok(())
}

/// The drop counter from an INET_DIAG_SKMEMINFO payload; None when the array is too short
/// (kernels before listener drop accounting), as `ss` treats it.
pub fn skmeminfo_drops(value: &[u8]) -> Option<u32> {
    let at = SK_MEMINFO_DROPS * 4;
    let b = value.get(at..at + 4)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// IPv4 clients of a dual-stack `[::]` listener show up as `::ffff:a.b.c.d`.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Counts request sockets per listener. They carry no inode, so each is given to the most
/// specific listener that would have received its SYN: same address, else the wildcard of the
/// same family, else a dual-stack `[::]`. All sockets of an SO_REUSEPORT group get the count.
pub fn attach_syn_recv(listeners: &mut [Listener], requests: &[SocketAddr]) {
    for l in listeners.iter_mut().filter(|l| !l.local.is_unix()) {
        l.syn_recv = Some(0);
    }
    let mut per_addr: HashMap<SocketAddr, u32> = HashMap::new();
    for r in requests {
        *per_addr.entry(*r).or_default() += 1;
    }
    for (addr, n) in per_addr {
        let rank = |l: &Listener| rank(l, addr);
        let Some(best) = listeners.iter().filter_map(rank).max() else {
            continue;
        };
        for l in listeners.iter_mut().filter(|l| rank(l) == Some(best)) {
            l.syn_recv = Some(l.syn_recv.unwrap_or(0) + n);
        }
    }
}

/// A client quiet for this long after its request, with nothing sent back, is waiting for the
/// reply, not streaming: a connection whose client keeps sending (an upload, a log shipper)
/// reads as busy, not as waiting.
pub const QUIET_MS: u32 = 100;

/// Whether `attach_waits` could say this socket waits, now or later: one in an accept queue,
/// or an accepted one that has sent nothing yet. One that sent something never will (bytes
/// sent only grow), nor one without the tcp_info fields to tell.
pub fn may_wait_later(c: &Conn) -> bool {
    c.inode == 0 || c.info.as_ref().is_some_and(|i| i.nothing_sent())
}

/// The clients' wait of each TCP listener, from the ESTABLISHED sockets of their ports: a
/// socket with inode 0 is in the accept queue; an accepted one whose client sent a request,
/// went quiet and got nothing back is waiting inside the server. Each socket goes to the most
/// specific listener of its address, as request sockets do (`attach_syn_recv`). A child does
/// not say which member of an SO_REUSEPORT group queued it: the members holding connections
/// get the queued ones, every member the accepted ones.
pub fn attach_waits(listeners: &mut [Listener], conns: &[Conn]) -> Vec<Waiting> {
    let mut waiting = Vec::new();
    // The TCP listeners of each port: a reading may hold 100,000 sockets, most of them healthy,
    // and a scope 10,000 listeners; each socket looks only at its port's.
    let mut by_port: HashMap<u16, Vec<usize>> = HashMap::new();
    for (i, l) in listeners.iter_mut().enumerate() {
        if let Some(a) = l.local.inet() {
            l.wait = Some(Wait::default());
            // No socket, no lookup: 10,000 ports' lists are 10,000 allocations.
            if !conns.is_empty() {
                by_port.entry(a.port()).or_default().push(i);
            }
        }
    }
    for c in conns {
        let info = c.info.as_ref();
        let queued = c.inode == 0;
        let unanswered = !queued
            && info.is_some_and(|i| {
                i.nothing_sent()
                    && i.bytes_received.is_some_and(|b| b > 0)
                    && (c.recv_q > 0 || i.last_data_recv_ms >= QUIET_MS)
            });
        if !queued && !unanswered {
            continue;
        }
        let Some(on_port) = by_port.get(&c.local.port()) else {
            continue;
        };
        let Some(best) = on_port
            .iter()
            .filter_map(|&i| rank(&listeners[i], c.local))
            .max()
        else {
            continue;
        };
        let mut members: Vec<usize> = on_port
            .iter()
            .copied()
            .filter(|&i| rank(&listeners[i], c.local) == Some(best))
            .collect();
        // A child in the accept queue of an SO_REUSEPORT group is in one member's queue: of
        // the members, those holding connections (Recv-Q above 0) get it, when any does.
        if queued && members.len() > 1 && members.iter().any(|&i| listeners[i].recv_q > 0) {
            members.retain(|&i| listeners[i].recv_q > 0);
        }
        let waited = info.map_or(0, |i| i.last_data_sent_ms);
        for i in members {
            let l = &mut listeners[i];
            waiting.push(Waiting {
                listener: l.inode,
                queued,
                client: c.remote,
            });
            let w = l.wait.get_or_insert_with(Wait::default);
            if queued {
                w.queued += 1;
                w.queued_oldest_ms = w.queued_oldest_ms.max(waited);
            } else {
                w.unanswered += 1;
                w.unanswered_oldest_ms = w.unanswered_oldest_ms.max(waited);
                w.unread += u32::from(c.recv_q > 0);
            }
        }
    }
    waiting
}

/// One client found waiting by `attach_waits`: on which listener, where, and who.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Waiting {
    pub listener: u64,
    /// In the accept queue (else accepted and unanswered).
    pub queued: bool,
    pub client: SocketAddr,
}

/// How specifically a TCP listener takes connections to `addr`: 2 its own address, 1 the
/// wildcard of the family, 0 a dual-stack `[::]` for IPv4; None when it does not.
fn rank(l: &Listener, addr: SocketAddr) -> Option<u8> {
    let local = l.local.inet()?;
    if local.port() != addr.port() || !l.serves(addr.ip()) {
        None
    } else if local.ip() == addr.ip() {
        Some(2)
    } else if local.is_ipv4() == addr.is_ipv4() {
        Some(1)
    } else {
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::once_each;
    use crate::model::Listener;

    #[test]
    fn a_socket_repeated_by_the_dump_is_kept_once_in_order() {
        let l = |inode, recv_q| Listener {
            local: "127.0.0.1:8100".parse().unwrap(),
            inode,
            uid: 0,
            recv_q,
            send_q: 5,
            drops: Some(0),
            syn_recv: None,
            v6only: None,
            wait: None,
        };
        let mut all = vec![l(3, 0), l(1, 0), l(2, 0)];
        once_each(&mut all);
        assert_eq!(all.iter().map(|l| l.inode).collect::<Vec<_>>(), [3, 1, 2]);
        // The same socket twice (its first reading kept); one inode at two addresses stays.
        let mut other = l(1, 0);
        other.local = "127.0.0.1:9000".parse().unwrap();
        let mut all = vec![l(3, 0), l(1, 0), l(3, 4), other.clone(), l(2, 0)];
        once_each(&mut all);
        assert_eq!(all, [l(3, 0), l(1, 0), other, l(2, 0)]);
    }
}

/// Byte-level tests of what crosses the netlink socket, in the style of
/// netlink-packet-sock-diag's own `src/inet/tests.rs`: every message written out byte by byte,
/// one comment per field, and checked both ways (our bytes against the array, and the array
/// against an independent reading: the crate's own encoder or a model of the kernel's).
///
/// The kernel speaks host byte order in `nlmsghdr`, `inet_diag_req_v2.idiag_states`, the
/// bytecode ops and the queue/uid/inode fields of `inet_diag_msg`; ports and addresses in
/// `inet_diag_sockid` are network order. The arrays are written for a little-endian host
/// (x86_64, aarch64), as the crate's are, so the module is compiled only there.
#[cfg(all(test, target_endian = "little"))]
mod wire {
    use std::net::SocketAddr;

    use netlink_packet_core::{Emitable, NetlinkBuffer, Parseable};
    use netlink_packet_sock_diag::constants::{AF_INET, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY};
    use netlink_packet_sock_diag::inet::{
        ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags,
    };

    use super::{
        ConnInfo, Dump, Query, build_request, build_unix_exact, build_unix_request, parse_diag_msg,
        parse_icons, parse_unix_msg, port_filter,
    };
    use crate::model::Listener;

    const NO_PORTS: Query = Query {
        ports: &[],
        syn_recv: false,
        drops: true,
        tcp: true,
        unix: false,
        unix_only: None,
        unix_lean: false,
        tcp_exact: &[],
        established: false,
        pending_of: &[],
        outgoing: None,
        parallel: false,
    };

    /// `build_request(AF_INET, LISTEN only, SKMEMINFO, no ports, seq 7)`.
    #[rustfmt::skip]
    const REQ_V4_LISTEN: [u8; 72] = [
        // struct nlmsghdr
        0x48, 0x00, 0x00, 0x00, // nlmsg_len: 72 = 16 (nlmsghdr) + 56 (inet_diag_req_v2), no attribute
        0x14, 0x00,             // nlmsg_type: SOCK_DIAG_BY_FAMILY (20)
        0x01, 0x03,             // nlmsg_flags: NLM_F_REQUEST (0x001) | NLM_F_DUMP (0x300 = ROOT | MATCH)
        0x07, 0x00, 0x00, 0x00, // nlmsg_seq: 7
        0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0, the kernel
        // struct inet_diag_req_v2
        0x02,                   // sdiag_family: AF_INET
        0x06,                   // sdiag_protocol: IPPROTO_TCP
        0x40,                   // idiag_ext: 1 << (INET_DIAG_SKMEMINFO (7) - 1)
        0x00,                   // pad
        0x00, 0x04, 0x00, 0x00, // idiag_states: 1 << TCP_LISTEN (10) = 0x400
        // struct inet_diag_sockid: all zero, a dump matches on states and bytecode only
        0x00, 0x00,             // idiag_sport
        0x00, 0x00,             // idiag_dport
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // idiag_src
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // idiag_dst
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, // idiag_if
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // idiag_cookie
    ];

    /// The TCPDIAG_GETSOCK request: the same states, extensions and bytecode as the v2 one,
    /// laid out as `struct inet_diag_req`, which the kernel dumps with AF_UNSPEC.
    #[test]
    fn one_request_for_both_families() {
        let q = Query {
            ports: &[8100],
            syn_recv: true,
            drops: true,
            tcp: true,
            unix: false,
            unix_only: None,
            unix_lean: false,
            tcp_exact: &[],
            established: false,
            pending_of: &[],
            outgoing: None,
            parallel: false,
        };
        let compat = build_request(super::BOTH, &q, 9);
        let v2 = build_request(AF_INET, &q, 9);
        let hdr = NetlinkBuffer::new_checked(&compat[..]).unwrap();
        assert_eq!(hdr.message_type(), 18, "TCPDIAG_GETSOCK");
        assert_eq!(hdr.length() as usize, compat.len());
        assert_eq!(
            hdr.flags(),
            NetlinkBuffer::new_checked(&v2[..]).unwrap().flags()
        );
        assert_eq!(compat[16 + 3], v2[16 + 2], "idiag_ext");
        assert_eq!(compat[16 + 52..16 + 56], v2[16 + 4..16 + 8], "idiag_states");
        assert!(compat[16 + 4..16 + 52].iter().all(|b| *b == 0), "sockid");
        // The bytecode attribute follows the 60-byte request, as it follows the 56-byte one.
        assert_eq!(compat[16 + 60..], v2[16 + 56..]);
    }

    #[test]
    fn request_v4_listen_with_skmeminfo_and_no_ports() {
        assert_eq!(build_request(AF_INET, &NO_PORTS, 7), REQ_V4_LISTEN);
        // The other way: the array, read by netlink-packet-core and -sock-diag, is the request
        // we mean to send.
        let hdr = NetlinkBuffer::new_checked(&REQ_V4_LISTEN[..]).unwrap();
        assert_eq!(hdr.length(), 72);
        assert_eq!(hdr.message_type(), SOCK_DIAG_BY_FAMILY);
        assert_eq!(
            hdr.flags(),
            netlink_packet_core::NLM_F_REQUEST | netlink_packet_core::NLM_F_DUMP
        );
        assert_eq!((hdr.sequence_number(), hdr.port_number()), (7, 0));
        let req = InetRequest::parse(&REQ_V4_LISTEN[16..]).unwrap();
        assert_eq!(
            req,
            InetRequest {
                family: AF_INET,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::SKMEMINFO,
                states: StateFlags::LISTEN,
                socket_id: SocketId::new_v4(),
            }
        );
    }

    #[test]
    fn request_with_syn_recv_adds_its_state_bit_and_nothing_else() {
        let q = Query {
            syn_recv: true,
            ..NO_PORTS
        };
        let mut want = REQ_V4_LISTEN;
        // idiag_states: 1 << TCP_LISTEN (10) | 1 << TCP_SYN_RECV (3) = 0x408. The kernel adds
        // TCP_NEW_SYN_RECV itself (inet_diag_dump_icsk), so request sockets come with it.
        want[20..24].copy_from_slice(&[0x08, 0x04, 0x00, 0x00]);
        assert_eq!(build_request(AF_INET, &q, 7), want);
        let req = InetRequest::parse(&want[16..]).unwrap();
        assert_eq!(req.states, StateFlags::LISTEN | StateFlags::SYN_RECV);
    }

    #[test]
    fn request_without_drops_asks_for_no_extension() {
        let q = Query {
            drops: false,
            ..NO_PORTS
        };
        let mut want = REQ_V4_LISTEN;
        want[18] = 0x00; // idiag_ext: none, so no INET_DIAG_SKMEMINFO comes back
        assert_eq!(build_request(AF_INET, &q, 7), want);
    }

    // The port filter is a program for inet_diag_bc_run (net/ipv4/inet_diag.c), checked first by
    // inet_diag_bc_audit. Each op is `struct inet_diag_bc_op { u8 code; u8 yes; u16 no; }`
    // (include/uapi/linux/inet_diag.h), `yes`/`no` being how many bytes to move forward when the
    // condition holds or not. A port comparison (S_GE, S_LE) reads its port from the `no` field
    // of the op after it, in host order (it is compared with inet_num). JMP always moves by `no`.
    // The program accepts when it lands exactly on its end (len == 0) and rejects when it jumps
    // past it (len < 0). The audit walks the `yes` chain: every `yes` must be >= the op's size
    // (8 for a comparison and its port, 4 otherwise), every `no` must land on that chain or at
    // most 4 bytes past the end.

    /// `port_filter(&[8100])`: one 20-byte block and the final reject.
    #[rustfmt::skip]
    const BC_8100: [u8; 24] = [
        // block for 8100, at offset 0
        0x02, 0x08, 0x14, 0x00, //  0: S_GE; yes 8: to the S_LE after our port; no 20: next block (here the reject at 20)
        0x00, 0x00, 0xa4, 0x1f, //  4: port 8100 (0x1fa4) in `no`; skipped, never run
        0x03, 0x08, 0x0c, 0x00, //  8: S_LE; yes 8: to the JMP at 16; no 12: next block (8 + 12 = 20)
        0x00, 0x00, 0xa4, 0x1f, // 12: port 8100
        0x01, 0x04, 0x08, 0x00, // 16: JMP; no 8: exactly to the end (24): accept. yes 4: unused, but the audit walks it
        // final reject, at offset 20
        0x01, 0x04, 0x08, 0x00, // 20: JMP; no 8: 4 bytes past the end (the most the audit allows): reject
    ];

    /// `port_filter(&[80, 443])`: ports sorted, one block each, failures falling through.
    #[rustfmt::skip]
    const BC_80_443: [u8; 44] = [
        // block for 80, at offset 0
        0x02, 0x08, 0x14, 0x00, //  0: S_GE; yes 8: to S_LE; no 20: the next block, at 20
        0x00, 0x00, 0x50, 0x00, //  4: port 80 (0x0050)
        0x03, 0x08, 0x0c, 0x00, //  8: S_LE; yes 8: to the JMP; no 12: the next block (8 + 12 = 20)
        0x00, 0x00, 0x50, 0x00, // 12: port 80
        0x01, 0x04, 0x1c, 0x00, // 16: JMP; no 28: 16 + 28 = 44, the end: accept
        // block for 443, at offset 20
        0x02, 0x08, 0x14, 0x00, // 20: S_GE; yes 8; no 20: 40, the reject
        0x00, 0x00, 0xbb, 0x01, // 24: port 443 (0x01bb)
        0x03, 0x08, 0x0c, 0x00, // 28: S_LE; yes 8; no 12: 40, the reject
        0x00, 0x00, 0xbb, 0x01, // 32: port 443
        0x01, 0x04, 0x08, 0x00, // 36: JMP; no 8: 36 + 8 = 44, the end: accept
        // final reject, at offset 40
        0x01, 0x04, 0x08, 0x00, // 40: JMP; no 8: 48, past the end: reject
    ];

    /// `port_filter(&[8100])` inside a request: the INET_DIAG_REQ_BYTECODE attribute follows
    /// `inet_diag_req_v2` (inet_diag_parse_attrs reads attributes after the fixed header).
    #[rustfmt::skip]
    const REQ_V4_LISTEN_8100_ATTR: [u8; 4] = [
        0x1c, 0x00, // nla_len: 28 = 4 (nlattr) + 24 (bytecode), already a multiple of 4
        0x01, 0x00, // nla_type: INET_DIAG_REQ_BYTECODE (1)
    ];

    /// inet_diag_bc_run for the ops port_filter uses, on a socket bound to `sport`.
    fn bc_run(bc: &[u8], sport: u16) -> bool {
        bc_run_on(bc, sport, 0, false)
    }

    /// inet_diag_bc_run for the ops port_filter and `Outbound` use, on a socket from `sport`
    /// to `dport` whose local port is auto-bound or not (`inet_diag_bc_sk` says so for full
    /// sockets only: a TIME_WAIT socket is always `auto`).
    fn bc_run_on(bc: &[u8], sport: u16, dport: u16, auto: bool) -> bool {
        let mut at = 0usize;
        let mut len = bc.len() as isize;
        while len > 0 {
            let op = &bc[at..at + 4];
            let arg = || u16::from_ne_bytes([bc[at + 6], bc[at + 7]]);
            let yes = match op[0] {
                super::INET_DIAG_BC_JMP => false,
                super::INET_DIAG_BC_S_GE => sport >= arg(),
                super::INET_DIAG_BC_S_LE => sport <= arg(),
                super::INET_DIAG_BC_D_GE => dport >= arg(),
                super::INET_DIAG_BC_D_LE => dport <= arg(),
                super::INET_DIAG_BC_AUTO => auto,
                code => panic!("op {code} at {at} is not one we emit"),
            };
            let step = if yes {
                usize::from(op[1])
            } else {
                usize::from(u16::from_ne_bytes([op[2], op[3]]))
            };
            len -= step as isize;
            at += step;
        }
        len == 0
    }

    /// inet_diag_bc_audit for the same ops: true when the kernel would take the program.
    fn bc_audit(bc: &[u8]) -> bool {
        // valid_cc: `cc` bytes left is a point on the `yes` chain.
        let on_chain = |cc: isize| {
            let (mut at, mut len) = (0usize, bc.len() as isize);
            while len >= 0 {
                if cc > len {
                    return false;
                }
                if cc == len {
                    return true;
                }
                let yes = bc[at + 1] as isize;
                if yes < 4 || yes & 3 != 0 {
                    return false;
                }
                len -= yes;
                at += yes as usize;
            }
            false
        };
        let (mut at, mut len) = (0usize, bc.len() as isize);
        if len < 4 {
            return false;
        }
        while len > 0 {
            let min_len = match bc[at] {
                super::INET_DIAG_BC_JMP | super::INET_DIAG_BC_AUTO => 4,
                super::INET_DIAG_BC_S_GE
                | super::INET_DIAG_BC_S_LE
                | super::INET_DIAG_BC_D_GE
                | super::INET_DIAG_BC_D_LE => 8,
                _ => return false,
            };
            if len < min_len {
                return false;
            }
            let yes = bc[at + 1] as isize;
            let no = u16::from_ne_bytes([bc[at + 2], bc[at + 3]]) as isize;
            if no < min_len || no > len + 4 || no & 3 != 0 {
                return false;
            }
            if no < len && !on_chain(len - no) {
                return false;
            }
            if yes < min_len || yes > len + 4 || yes & 3 != 0 {
                return false;
            }
            at += yes as usize;
            len -= yes;
        }
        len == 0
    }

    #[test]
    fn port_filter_for_one_port() {
        assert_eq!(port_filter(&[8100]), BC_8100);
        assert!(bc_audit(&BC_8100));
        for (port, keep) in [
            (8100, true),
            (8099, false),
            (8101, false),
            (0, false),
            (65535, false),
        ] {
            assert_eq!(bc_run(&BC_8100, port), keep, "port {port}");
        }
    }

    #[test]
    fn port_filter_for_two_ports_sorted_and_deduplicated() {
        assert_eq!(port_filter(&[80, 443]), BC_80_443);
        assert_eq!(port_filter(&[443, 80, 443]), BC_80_443);
        assert!(bc_audit(&BC_80_443));
        for (port, keep) in [
            (80, true),
            (443, true),
            (79, false),
            (81, false),
            (442, false),
            (444, false),
            (8100, false),
        ] {
            assert_eq!(bc_run(&BC_80_443, port), keep, "port {port}");
        }
        assert!(port_filter(&[]).is_empty(), "no ports: no filter at all");
    }

    /// Consecutive ports are one block: `S_GE lo; S_LE hi`, the same 20 bytes as one port's.
    #[test]
    fn port_filter_for_consecutive_ports_is_one_block_per_run() {
        let ports: Vec<u16> = (20000..30000)
            .chain([80, 8100, 8101, 65535, 65534])
            .collect();
        assert_eq!(
            super::port_ranges(&ports),
            [(80, 80), (8100, 8101), (20000, 29999), (65534, 65535)]
        );
        let bc = port_filter(&ports);
        assert_eq!(bc.len(), 4 * 20 + 4);
        assert!(bc_audit(&bc));
        let mut one = BC_8100;
        one[12 + 2..12 + 4].copy_from_slice(&8101u16.to_ne_bytes()); // S_LE's port: the run's end
        assert_eq!(port_filter(&[8101, 8100, 8101]), one);
        for port in [0, 79, 81, 8099, 8102, 19999, 30000, 65533] {
            assert!(!bc_run(&bc, port), "port {port}");
        }
        for port in [80, 8100, 8101, 20000, 25000, 29999, 65534, 65535] {
            assert!(bc_run(&bc, port), "port {port}");
        }
    }

    #[test]
    fn request_with_a_port_filter_carries_it_as_an_attribute() {
        let q = Query {
            ports: &[8100],
            ..NO_PORTS
        };
        let mut want = Vec::from(REQ_V4_LISTEN);
        want[0] = 0x64; // nlmsg_len: 100 = 16 + 56 + 28
        want.extend_from_slice(&REQ_V4_LISTEN_8100_ATTR);
        want.extend_from_slice(&BC_8100);
        assert_eq!(build_request(AF_INET, &q, 7), want);
        let hdr = NetlinkBuffer::new_checked(&want[..]).unwrap();
        assert_eq!(hdr.length() as usize, want.len());
    }

    #[test]
    fn a_wait_dump_of_one_port_names_it_in_the_socket_id_instead_of_bytecode() {
        let q = Query::established(&[8100]);
        // TCPDIAG_GETSOCK: inet_diag_req's sockid starts at byte 4, idiag_sport first.
        let compat = build_request(super::BOTH, &q, 3);
        assert_eq!(compat.len(), 16 + 60, "no bytecode attribute");
        assert_eq!(compat[16 + 3], 1 << 1, "idiag_ext: INET_DIAG_INFO");
        assert_eq!(
            compat[16 + 4..16 + 6],
            [0x1f, 0xa4],
            "idiag_sport 8100, network order"
        );
        assert!(
            compat[16 + 6..16 + 52].iter().all(|b| *b == 0),
            "rest of the sockid"
        );
        assert_eq!(
            compat[16 + 52..16 + 56],
            2u32.to_ne_bytes(),
            "ESTABLISHED only"
        );
        // inet_diag_req_v2: the sockid starts at byte 8.
        let v2 = build_request(AF_INET, &q, 3);
        assert_eq!(v2.len(), 16 + 56);
        assert_eq!(v2[16 + 8..16 + 10], [0x1f, 0xa4]);
        // Two ports, a run of them, or a listener dump: the bytecode, and no sport.
        for (ports, established) in [
            (&[8100u16, 8200][..], true),
            (&[8100, 8101][..], true),
            (&[8100][..], false),
        ] {
            let q = Query {
                ports,
                established,
                ..NO_PORTS
            };
            let req = build_request(super::BOTH, &q, 3);
            assert_eq!(req[16 + 4..16 + 6], [0, 0], "{ports:?}");
            assert_eq!(req[16 + 60 + 4..], port_filter(ports), "{ports:?}");
        }
    }

    /// An `inet_diag_msg` for a listener on 127.0.0.1:8100 with 6 connections waiting for
    /// accept() and a backlog of 5, followed by an attribute we do not read, the skmeminfo
    /// array, and an attribute no kernel sends today. Payload of one SOCK_DIAG_BY_FAMILY
    /// message, after its nlmsghdr.
    #[rustfmt::skip]
    const RESP_V4_LISTENER: [u8; 72 + 8 + 40 + 8] = [
        // struct inet_diag_msg
        0x02,                   // idiag_family: AF_INET
        0x0a,                   // idiag_state: TCP_LISTEN (10)
        0x00,                   // idiag_timer: none
        0x00,                   // idiag_retrans
        // struct inet_diag_sockid
        0x1f, 0xa4,             // idiag_sport: 8100, network order
        0x00, 0x00,             // idiag_dport
        0x7f, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // idiag_src: 127.0.0.1 in the first 4 bytes
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // idiag_dst
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, // idiag_if
        0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // idiag_cookie
        0x00, 0x00, 0x00, 0x00, // idiag_expires
        0x06, 0x00, 0x00, 0x00, // idiag_rqueue: 6, sk_ack_backlog for a listener (tcp_diag_get_info)
        0x05, 0x00, 0x00, 0x00, // idiag_wqueue: 5, sk_max_ack_backlog
        0xe8, 0x03, 0x00, 0x00, // idiag_uid: 1000
        0x39, 0x30, 0x00, 0x00, // idiag_inode: 12345
        // INET_DIAG_SHUTDOWN: known to the kernel, not read here
        0x05, 0x00,             // nla_len: 5
        0x08, 0x00,             // nla_type: INET_DIAG_SHUTDOWN (8)
        0x00,                   // value
        0x00, 0x00, 0x00,       // padding to 4 bytes
        // INET_DIAG_SKMEMINFO: u32 sk_meminfo[SK_MEMINFO_VARS] (include/uapi/linux/sock_diag.h)
        0x28, 0x00,             // nla_len: 40 = 4 + 9 * 4
        0x07, 0x00,             // nla_type: INET_DIAG_SKMEMINFO (7)
        0x01, 0x00, 0x00, 0x00, // [0] SK_MEMINFO_RMEM_ALLOC: 1
        0x00, 0x00, 0x02, 0x00, // [1] SK_MEMINFO_RCVBUF: 131072
        0x02, 0x00, 0x00, 0x00, // [2] SK_MEMINFO_WMEM_ALLOC: 2
        0x00, 0x40, 0x00, 0x00, // [3] SK_MEMINFO_SNDBUF: 16384
        0x03, 0x00, 0x00, 0x00, // [4] SK_MEMINFO_FWD_ALLOC: 3
        0x04, 0x00, 0x00, 0x00, // [5] SK_MEMINFO_WMEM_QUEUED: 4
        0x05, 0x00, 0x00, 0x00, // [6] SK_MEMINFO_OPTMEM: 5
        0x0d, 0x00, 0x00, 0x00, // [7] SK_MEMINFO_BACKLOG: 13
        0x0e, 0x00, 0x00, 0x00, // [8] SK_MEMINFO_DROPS: 14
        // an attribute type from the future
        0x08, 0x00,             // nla_len: 8
        0xc8, 0x00,             // nla_type: 200, unknown
        0xff, 0xff, 0xff, 0xff, // value
    ];

    /// Where the skmeminfo attribute starts in RESP_V4_LISTENER.
    const SKMEMINFO_AT: usize = 72 + 8;

    fn listener_8100(drops: Option<u32>) -> Listener {
        Listener {
            local: SocketAddr::from(([127, 0, 0, 1], 8100)).into(),
            inode: 12345,
            uid: 1000,
            recv_q: 6,
            send_q: 5,
            drops,
            syn_recv: None,
            v6only: None,
            wait: None,
        }
    }

    fn parse(payload: &[u8], asked_drops: bool) -> Dump {
        let mut out = Dump::default();
        parse_diag_msg(payload, asked_drops, &mut out).expect("parses");
        out
    }

    #[test]
    fn response_listener_with_full_skmeminfo() {
        let out = parse(&RESP_V4_LISTENER, true);
        assert_eq!(out.listeners, vec![listener_8100(Some(14))]);
        assert_eq!(out.drops_unknown, 0);
        assert!(out.requests.is_empty());
        // The other way: the crate's encoder writes the same inet_diag_msg for these fields.
        let header = InetResponseHeader {
            family: AF_INET,
            state: netlink_packet_sock_diag::constants::TCP_LISTEN,
            timer: None,
            socket_id: SocketId {
                source_port: 8100,
                destination_port: 0,
                source_address: [127, 0, 0, 1].into(),
                destination_address: [0, 0, 0, 0].into(),
                interface_id: 0,
                cookie: [0x2a, 0, 0, 0, 0, 0, 0, 0],
            },
            recv_queue: 6,
            send_queue: 5,
            uid: 1000,
            inode: 12345,
        };
        let mut buf = [0u8; 72];
        header.emit(&mut buf);
        assert_eq!(buf, RESP_V4_LISTENER[..72]);
    }

    #[test]
    fn response_short_skmeminfo_means_drops_unknown() {
        // A kernel whose array stops before SK_MEMINFO_DROPS: 8 u32, nla_len 36.
        let mut msg = Vec::from(&RESP_V4_LISTENER[..SKMEMINFO_AT]);
        msg.extend_from_slice(&[0x24, 0x00, 0x07, 0x00]); // nla_len 36, INET_DIAG_SKMEMINFO
        msg.extend_from_slice(&RESP_V4_LISTENER[SKMEMINFO_AT + 4..SKMEMINFO_AT + 36]);
        let out = parse(&msg, true);
        assert_eq!(out.listeners, vec![listener_8100(None)]);
        assert_eq!(out.drops_unknown, 1, "counted, so the recorder can say why");
        // Not asked for and not sent: unknown too, but not a gap to report.
        let out = parse(&RESP_V4_LISTENER[..72], false);
        assert_eq!(out.listeners, vec![listener_8100(None)]);
        assert_eq!(out.drops_unknown, 0);
    }

    #[test]
    fn response_v4_mapped_listener_is_reported_as_ipv4() {
        // A dual-stack socket bound to ::ffff:127.0.0.1 (Java's ServerSocket does this).
        let mut msg = Vec::from(RESP_V4_LISTENER);
        msg[0] = 0x0a; // idiag_family: AF_INET6
        #[rustfmt::skip]
        msg[8..24].copy_from_slice(&[
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // idiag_src: ::ffff:127.0.0.1
            0x00, 0x00, 0xff, 0xff, 0x7f, 0x00, 0x00, 0x01,
        ]);
        #[rustfmt::skip]
        msg.extend_from_slice(&[
            0x05, 0x00, // nla_len: 5
            0x0b, 0x00, // nla_type: INET_DIAG_SKV6ONLY (11)
            0x00,       // IPV6_V6ONLY off: IPv4 clients reach it too
            0x00, 0x00, 0x00, // padding
        ]);
        let out = parse(&msg, true);
        let want = Listener {
            v6only: Some(false),
            ..listener_8100(Some(14))
        };
        assert_eq!(out.listeners, vec![want]);
    }

    /// `build_unix_request(seq 3)`: listeners only, with name, socket file, queues and uid;
    /// never UDIAG_SHOW_ICONS.
    #[rustfmt::skip]
    const REQ_UNIX: [u8; 40] = [
        // struct nlmsghdr
        0x28, 0x00, 0x00, 0x00, // nlmsg_len: 40 = 16 + 24 (unix_diag_req)
        0x14, 0x00,             // nlmsg_type: SOCK_DIAG_BY_FAMILY (20)
        0x01, 0x03,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_DUMP
        0x03, 0x00, 0x00, 0x00, // nlmsg_seq: 3
        0x00, 0x00, 0x00, 0x00, // nlmsg_pid
        // struct unix_diag_req
        0x01,                   // sdiag_family: AF_UNIX
        0x00,                   // sdiag_protocol
        0x00, 0x00,             // pad
        0x00, 0x04, 0x00, 0x00, // udiag_states: 1 << TCP_LISTEN (10)
        0x00, 0x00, 0x00, 0x00, // udiag_ino: 0, every socket
        0x53, 0x00, 0x00, 0x00, // udiag_show: NAME 0x1 | VFS 0x2 | RQLEN 0x10 | UID 0x40
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // udiag_cookie
    ];

    /// A php-fpm-like listener: stream, LISTEN, inode 0x1234, 3 pending of B=8.
    #[rustfmt::skip]
    const MSG_UNIX: [u8; 64] = [
        // struct unix_diag_msg
        0x01, 0x01, 0x0a, 0x00, // family AF_UNIX, type SOCK_STREAM (1), state LISTEN (10), pad
        0x34, 0x12, 0x00, 0x00, // udiag_ino: 0x1234
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // udiag_cookie
        // UNIX_DIAG_NAME: "/run/a.sock" and its NUL (12 bytes) → nla_len 16
        0x10, 0x00, 0x00, 0x00,
        b'/', b'r', b'u', b'n', b'/', b'a', b'.', b's', b'o', b'c', b'k', 0x00,
        // UNIX_DIAG_VFS: ino 77, dev 8<<20|1
        0x0c, 0x00, 0x01, 0x00,
        0x4d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x80, 0x00,
        // UNIX_DIAG_RQLEN: rqueue 3 (pending), wqueue 8 (B)
        0x0c, 0x00, 0x04, 0x00,
        0x03, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
        // UNIX_DIAG_UID: 33
        0x08, 0x00, 0x07, 0x00, 0x21, 0x00, 0x00, 0x00,
    ];

    /// One Unix listener by inode with its pending connections: not a dump (NLM_F_REQUEST
    /// alone), UDIAG_SHOW_ICONS, no cookie check.
    #[test]
    fn unix_exact_request_and_its_icons_byte_by_byte() {
        #[rustfmt::skip]
        let want: [u8; 40] = [
            40, 0, 0, 0,             // nlmsg_len
            20, 0,                   // SOCK_DIAG_BY_FAMILY
            0x01, 0x00,              // NLM_F_REQUEST, no NLM_F_DUMP
            7, 0, 0, 0,              // seq
            0, 0, 0, 0,              // pid: the kernel
            1, 0, 0, 0,              // AF_UNIX, protocol, pad
            0, 0x04, 0, 0,           // udiag_states: 1 << TCP_LISTEN (10)
            0x39, 0x30, 0, 0,        // udiag_ino 12345
            0x08, 0, 0, 0,           // udiag_show: UDIAG_SHOW_ICONS
            0xff, 0xff, 0xff, 0xff,  // udiag_cookie: INET_DIAG_NOCOOKIE
            0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(build_unix_exact(12345, super::UDIAG_SHOW_ICONS, 7), want);
        #[rustfmt::skip]
        let answer: [u8; 36] = [
            1, 1, 10, 0,             // AF_UNIX, SOCK_STREAM, TCP_LISTEN, pad
            0x39, 0x30, 0, 0,        // udiag_ino
            0, 0, 0, 0, 0, 0, 0, 0,  // cookie
            5, 0, 6, 0, 0, 0, 0, 0,  // UNIX_DIAG_SHUTDOWN, always sent
            12, 0, 3, 0,             // UNIX_DIAG_ICONS: two pending
            0xe8, 0x03, 0, 0,        // client inode 1000
            0xe9, 0x03, 0, 0,        // client inode 1001
        ];
        assert_eq!(parse_icons(&answer), [1000, 1001]);
        assert_eq!(
            parse_icons(&answer[..24]),
            Vec::<u32>::new(),
            "no icons: none pending"
        );
    }

    /// tcp_info as 6.18 sends it: the times at 44 and 52, bytes_received at 128, bytes_sent at
    /// 200; an older, shorter struct leaves the later fields unknown.
    fn outbound(closing: bool, ports: &[u16], local_ports: Option<(u16, u16)>) -> Vec<u8> {
        super::Outbound {
            established: true,
            closing,
            ports,
            info: false,
            local_ports,
        }
        .bytecode()
    }

    /// `Outbound` with the port range (TIME_WAIT read) and one server port, byte by byte.
    #[rustfmt::skip]
    const BC_OUT_RANGE_9000: [u8; 44] = [
        0x06, 0x04, 0x30, 0x00, //  0: AUTO; yes 4: on; no 48: 4 past the end (44): reject
        0x02, 0x08, 0x2c, 0x00, //  4: S_GE; yes 8: to the S_LE; no 44: 4 + 44 = 48: reject
        0x00, 0x00, 0x40, 0x9c, //  8: port 40000 (0x9c40) in `no`
        0x03, 0x08, 0x24, 0x00, // 12: S_LE; yes 8: to the port block; no 36: 12 + 36 = 48: reject
        0x00, 0x00, 0x49, 0x9c, // 16: port 40009 (0x9c49)
        0x04, 0x08, 0x14, 0x00, // 20: D_GE; yes 8; no 20: the final reject at 40
        0x00, 0x00, 0x28, 0x23, // 24: port 9000 (0x2328)
        0x05, 0x08, 0x0c, 0x00, // 28: D_LE; yes 8; no 12: 40, the reject
        0x00, 0x00, 0x28, 0x23, // 32: port 9000
        0x01, 0x04, 0x08, 0x00, // 36: JMP; no 8: 44, the end: accept
        0x01, 0x04, 0x08, 0x00, // 40: JMP; no 8: 48, past the end: reject
    ];

    #[test]
    fn outbound_filter_keeps_auto_bound_sockets_in_the_port_range_to_the_servers_ports() {
        let bc = outbound(true, &[9000], Some((40000, 40009)));
        assert_eq!(bc, BC_OUT_RANGE_9000);
        assert!(bc_audit(&bc));
        for (sport, dport, auto, keep) in [
            (40003, 9000, true, true),   // a client's connection, in any state
            (40003, 9001, true, false),  // to another server's port
            (9000, 40003, true, false),  // the server's own TIME_WAIT (no bind lock to test)
            (40003, 9000, false, false), // bound by the application
            (9000, 40003, true, false),  // accepted: a clone without the bind lock
            (39999, 9000, true, false),
            (40010, 9000, true, false),
            (40009, 9000, true, true),
        ] {
            assert_eq!(
                bc_run_on(&bc, sport, dport, auto),
                keep,
                "{sport} -> {dport} {auto}"
            );
        }
    }

    #[test]
    fn outbound_filter_of_syn_sent_alone_or_without_ports_is_auto_alone() {
        // SYN_SENT alone: no server socket is in that state, the range is not tested;
        // without ports, every server.
        let bc = super::Outbound {
            established: false,
            closing: false,
            ports: &[],
            info: false,
            local_ports: Some((40000, 40009)),
        }
        .bytecode();
        assert_eq!(bc, [0x06, 0x04, 0x08, 0x00]);
        assert!(bc_audit(&bc));
        assert!(bc_run_on(&bc, 9000, 1, true));
        assert!(!bc_run_on(&bc, 40000, 1, false));
        // ESTABLISHED without TIME_WAIT: the range is tested, accepted sockets stay out.
        let bc = outbound(false, &[], Some((40000, 40009)));
        assert!(bc_audit(&bc));
        assert!(bc_run_on(&bc, 40000, 9000, true));
        assert!(!bc_run_on(&bc, 9000, 40000, true));
        let bc = outbound(true, &[], None);
        assert_eq!(bc, [0x06, 0x04, 0x08, 0x00]);
        let bc = outbound(true, &[], Some((32768, 60999)));
        assert!(bc_audit(&bc));
        assert!(bc_run_on(&bc, 32768, 80, true) && bc_run_on(&bc, 60999, 80, true));
        assert!(!bc_run_on(&bc, 8080, 50000, true));
    }

    #[test]
    fn outbound_request_states_and_extensions() {
        let q = |closing: bool, info: bool| Query {
            outgoing: Some(super::Outbound {
                established: !closing,
                closing,
                ports: &[],
                info,
                local_ports: None,
            }),
            ..Query::TCP
        };
        // SYN_SENT (2) and ESTABLISHED (1); TIME_WAIT (6) with FIN_WAIT1/2 (4, 5), CLOSE_WAIT
        // (8), LAST_ACK (9), CLOSING (11).
        assert_eq!(q(false, true).states(), 0b110);
        assert_eq!(q(true, false).states(), 0b1011_0111_0100);
        assert_eq!(
            q(false, true).extensions(),
            0x02,
            "1 << (INET_DIAG_INFO - 1)"
        );
        assert_eq!(q(true, false).extensions(), 0);
    }

    /// An `inet_diag_msg` for a connect from 10.200.0.2:40003 to 10.200.0.1:9000: SYN_SENT, its
    /// SYN sent again twice, as `ss -tno state syn-sent` shows it: `timer:(on,1.5sec,2)`.
    #[rustfmt::skip]
    const RESP_V4_SYN_SENT: [u8; 72] = [
        0x02,                   // idiag_family: AF_INET
        0x02,                   // idiag_state: TCP_SYN_SENT (2)
        0x01,                   // idiag_timer: 1, retransmission
        0x02,                   // idiag_retrans: 2 (icsk_retransmits)
        0x9c, 0x43,             // idiag_sport: 40003, network order
        0x23, 0x28,             // idiag_dport: 9000
        0x0a, 0xc8, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, // idiag_src: 10.200.0.2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x0a, 0xc8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // idiag_dst: 10.200.0.1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, // idiag_if
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // idiag_cookie
        0xdc, 0x05, 0x00, 0x00, // idiag_expires: 1500 ms
        0x00, 0x00, 0x00, 0x00, // idiag_rqueue
        0x00, 0x00, 0x00, 0x00, // idiag_wqueue: the SYN is no data
        0x00, 0x00, 0x00, 0x00, // idiag_uid
        0x2a, 0x00, 0x00, 0x00, // idiag_inode
    ];

    #[test]
    fn response_syn_sent_time_wait_and_unacknowledged() {
        let mut out = Dump::default();
        super::parse_outgoing(&RESP_V4_SYN_SENT, &mut out).unwrap();
        let s = out.outgoing[0];
        assert_eq!(s.local, "10.200.0.2:40003".parse::<SocketAddr>().unwrap());
        assert_eq!(s.remote, "10.200.0.1:9000".parse::<SocketAddr>().unwrap());
        assert_eq!((s.state, s.retrans, s.retransmitting), (2, 2, true));
        assert_eq!((s.send_q, s.bytes_acked), (0, None));

        // ESTABLISHED with the 18-byte request unacknowledged, sent again once, and tcp_info
        // long enough for tcpi_bytes_acked (offset 120): 1, the SYN's sequence number only.
        let mut est = RESP_V4_SYN_SENT.to_vec();
        est[1] = 1;
        est[3] = 1;
        est[60..64].copy_from_slice(&18u32.to_ne_bytes());
        let mut info = vec![0u8; 4 + 128];
        info[..2].copy_from_slice(&132u16.to_ne_bytes()); // nla_len
        info[2..4].copy_from_slice(&2u16.to_ne_bytes()); // INET_DIAG_INFO
        info[4 + 120..4 + 128].copy_from_slice(&1u64.to_ne_bytes());
        est.extend_from_slice(&info);
        super::parse_outgoing(&est, &mut out).unwrap();
        let e = out.outgoing[1];
        assert_eq!(
            (e.state, e.send_q, e.retrans, e.bytes_acked),
            (1, 18, 1, Some(1))
        );

        // TIME_WAIT (`inet_twsk_diag_fill`): timer 3, no queues; nothing retransmits.
        let mut tw = RESP_V4_SYN_SENT.to_vec();
        tw[1] = 6;
        tw[2] = 3;
        tw[3] = 0;
        super::parse_outgoing(&tw, &mut out).unwrap();
        let t = out.outgoing[2];
        assert_eq!((t.state, t.retransmitting, t.send_q), (6, false, 0));

        // A zero-window probe (timer 4) is not a retransmission.
        let mut probe = est.clone();
        probe[2] = 4;
        super::parse_outgoing(&probe, &mut out).unwrap();
        assert!(!out.outgoing[3].retransmitting);
        assert!(super::parse_outgoing(&RESP_V4_SYN_SENT[..71], &mut out).is_err());
    }

    #[test]
    fn tcp_info_fields_the_wait_reads() {
        let mut info = vec![0u8; 232];
        info[44..48].copy_from_slice(&2856u32.to_ne_bytes()); // tcpi_last_data_sent
        info[52..56].copy_from_slice(&2772u32.to_ne_bytes()); // tcpi_last_data_recv
        info[128..136].copy_from_slice(&27u64.to_ne_bytes()); // tcpi_bytes_received
        let i = ConnInfo::parse(&info).expect("long enough");
        assert_eq!((i.last_data_sent_ms, i.last_data_recv_ms), (2856, 2772));
        assert_eq!(
            (i.bytes_received, i.bytes_sent, i.data_segs_out),
            (Some(27), Some(0), Some(0))
        );
        let old = ConnInfo::parse(&info[..104]).expect("the times are there");
        assert_eq!((old.bytes_received, old.bytes_sent), (None, None));
        assert_eq!(ConnInfo::parse(&info[..50]), None);
    }

    #[test]
    fn unix_request_and_listener_byte_by_byte() {
        assert_eq!(build_unix_request(3), REQ_UNIX);
        let mut out = Dump::default();
        parse_unix_msg(&MSG_UNIX, &mut out).unwrap();
        let l = &out.listeners[0];
        assert_eq!(l.local.to_string(), "/run/a.sock");
        assert_eq!(
            l.local.unix().and_then(|u| u.vfs),
            Some(crate::model::Vfs {
                ino: 77,
                dev: 8 << 20 | 1
            })
        );
        assert_eq!((l.inode, l.recv_q, l.send_q, l.uid), (0x1234, 3, 8, 33));
        assert_eq!(l.drops, None, "nothing counts refused Unix connects");
        // An abstract name, a datagram socket, a connected one, and a short message.
        let mut abs = MSG_UNIX;
        abs[20] = 0;
        parse_unix_msg(&abs, &mut out).unwrap();
        // Abstract names are bytes to the last one: here the path's NUL, escaped.
        assert_eq!(out.listeners[1].local.to_string(), "@run/a.sock\\x00");
        let mut dgram = MSG_UNIX;
        dgram[1] = 2;
        let mut connected = MSG_UNIX;
        connected[2] = 1;
        parse_unix_msg(&dgram, &mut out).unwrap();
        parse_unix_msg(&connected, &mut out).unwrap();
        assert_eq!(out.listeners.len(), 2);
        assert!(parse_unix_msg(&MSG_UNIX[..10], &mut out).is_err());
    }

    /// Writes fuzz seeds (`fuzz/seed` runs it, as root): the payload of every message this
    /// kernel answers the dumps with, for sockets of each kind made in a private network
    /// namespace, as `DIR/inet_diag/NAME-N` and `DIR/unix_diag/NAME-N`; and this module's
    /// own byte arrays. `RECORD_FUZZ_SEEDS=DIR cargo test --lib record_fuzz_seeds -- --ignored`
    #[test]
    #[ignore = "writes fuzz seeds: RECORD_FUZZ_SEEDS=DIR, as root"]
    fn record_fuzz_seeds() {
        let dir = std::path::PathBuf::from(std::env::var("RECORD_FUZZ_SEEDS").expect("a dir"));
        let (inet, unix) = (dir.join("inet_diag"), dir.join("unix_diag"));
        for d in [&inet, &unix] {
            std::fs::create_dir_all(d).expect("seed dir");
        }
        for (name, bytes) in [
            ("test-listener", &RESP_V4_LISTENER[..]),
            ("test-syn-sent", &RESP_V4_SYN_SENT[..]),
        ] {
            std::fs::write(inet.join(name), bytes).expect("write");
        }
        std::fs::write(unix.join("test-listener"), MSG_UNIX).expect("write");
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare: run as root");
        crate::source::netns::loopback_up().expect("lo up");
        let path =
            std::env::temp_dir().join(format!("backlogctl-seed-{}.sock", std::process::id()));
        let (tcp_port, _sockets) = sockets_of_every_kind(&path);
        let mut diag = super::Diag::open().expect("netlink");
        record_inet(&mut diag, &inet, tcp_port);
        record_unix(&mut diag, &unix);
        let _ = std::fs::remove_file(&path);
    }

    /// Listeners of both families, one dual-stack, one with a client queued and one with a
    /// client accepted that has sent data (tcp_info); one that is full (SYN_SENT clients), one
    /// that defers accept (a SYN_RECV request socket); a TIME_WAIT client. Unix listeners: a
    /// path with a client pending, an abstract name, a seqpacket one. The first listener's
    /// port, and every socket.
    fn sockets_of_every_kind(path: &std::path::Path) -> (u16, Vec<std::os::fd::OwnedFd>) {
        use std::io::Write;
        use std::net::{TcpListener, TcpStream};
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{UnixListener, UnixStream};
        let v4 = TcpListener::bind("127.0.0.1:0").expect("v4");
        let v6 = TcpListener::bind("[::1]:0").expect("v6");
        let dual = TcpListener::bind("[::]:0").expect("dual");
        let port = v4.local_addr().unwrap().port();
        let queued = TcpStream::connect(("127.0.0.1", port)).expect("queued");
        let mut sent = TcpStream::connect(v6.local_addr().unwrap()).expect("sent");
        let (served, _) = v6.accept().expect("accept");
        sent.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("send");
        let mapped = TcpStream::connect(("127.0.0.1", dual.local_addr().unwrap().port()));
        let mut fds = vec![
            queued.into(),
            sent.into(),
            served.into(),
            mapped.expect("mapped").into(),
            listen_raw("127.0.0.2:7001", 0, false),
            listen_raw("127.0.0.3:7002", 8, true),
        ];
        for _ in 0..3 {
            fds.push(connect_raw("127.0.0.2:7001"));
        }
        fds.push(
            TcpStream::connect("127.0.0.3:7002")
                .expect("deferred")
                .into(),
        );
        drop(TcpStream::connect(("127.0.0.1", port)).expect("to close"));
        std::thread::sleep(std::time::Duration::from_millis(200));
        let _ = std::fs::remove_file(path);
        let by_path = UnixListener::bind(path).expect("unix path");
        fds.push(UnixStream::connect(path).expect("unix connect").into());
        let abs = std::os::unix::net::SocketAddr::from_abstract_name(b"backlogctl-seed").unwrap();
        fds.push(UnixListener::bind_addr(&abs).expect("abstract").into());
        fds.push(unix_seqpacket());
        fds.extend([by_path.into(), v4.into(), v6.into(), dual.into()]);
        (port, fds)
    }

    /// The listener dumps (both families in one, each alone, with and without skmeminfo), the
    /// established sockets of `port` and of every port, the outgoing connections.
    fn record_inet(diag: &mut super::Diag, inet: &std::path::Path, port: u16) {
        use super::{BOTH, Outbound};
        use netlink_packet_sock_diag::constants::AF_INET6;
        let out = Outbound {
            established: true,
            closing: true,
            ports: &[],
            info: true,
            local_ports: None,
        };
        let listeners = Query {
            syn_recv: true,
            drops: true,
            ..Query::TCP
        };
        let v6only = Query {
            drops: false,
            ..listeners
        };
        for (name, family, q) in [
            ("listeners-both", BOTH, &listeners),
            ("listeners-v4", AF_INET, &listeners),
            ("listeners-v6", AF_INET6, &v6only),
            ("established", AF_INET, &Query::established(&[port])),
            ("established-v6", AF_INET6, &Query::established(&[])),
            ("outgoing", AF_INET, &Query::outgoing(out)),
        ] {
            let request = build_request(family, q, 100);
            record_answers(diag, &request, &inet.join(name), false);
        }
    }

    /// The Unix listener dump, then each listener's pending connections by an exact request.
    fn record_unix(diag: &mut super::Diag, unix: &std::path::Path) {
        let listeners = unix.join("listeners");
        record_answers(diag, &build_unix_request(101), &listeners, false);
        let unix_only = Query {
            tcp: false,
            unix: true,
            ..Query::TCP
        };
        let dump = diag.dump(&unix_only).expect("unix dump");
        assert!(!dump.listeners.is_empty(), "a Unix listener was dumped");
        for l in &dump.listeners {
            let exact = build_unix_exact(l.inode, super::UDIAG_SHOW_ICONS, 102);
            let name = unix.join(format!("icons-{}", l.inode));
            record_answers(diag, &exact, &name, true);
        }
    }

    /// Sends `request` and writes the payload of each socket's message it is answered with as
    /// `PREFIX-N`: to the end of the dump, or the first one for an exact request.
    fn record_answers(
        diag: &mut super::Diag,
        request: &[u8],
        prefix: &std::path::Path,
        once: bool,
    ) {
        use super::{NLMSG_DONE, NLMSG_ERROR, align4};
        diag.socket.send(request, 0).expect("send");
        let mut n = 0;
        loop {
            let len = diag.receive("an answer").expect("receive");
            let mut data = &diag.buf[..len];
            while !data.is_empty() {
                let msg = NetlinkBuffer::new_checked(data).expect("a netlink message");
                let size = msg.length() as usize;
                match msg.message_type() {
                    NLMSG_DONE | NLMSG_ERROR => return,
                    _ => {
                        let name = format!("{}-{n}", prefix.display());
                        std::fs::write(name, msg.payload()).expect("write");
                        n += 1;
                        if once {
                            return;
                        }
                    }
                }
                data = &data[align4(size).min(data.len())..];
            }
        }
    }

    fn listen_raw(addr: &str, backlog: i32, defer: bool) -> std::os::fd::OwnedFd {
        use nix::sys::socket::*;
        use std::os::fd::AsRawFd;
        let sa: SocketAddr = addr.parse().unwrap();
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrStorage::from(sa),
        )
        .expect("bind");
        if defer {
            let secs: nix::libc::c_int = 30;
            // SAFETY: setsockopt on a valid fd with a c_int that outlives the call.
            let rc = unsafe {
                nix::libc::setsockopt(
                    fd.as_raw_fd(),
                    nix::libc::IPPROTO_TCP,
                    nix::libc::TCP_DEFER_ACCEPT,
                    (&secs as *const nix::libc::c_int).cast(),
                    std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "TCP_DEFER_ACCEPT");
        }
        listen(&fd, Backlog::new(backlog).unwrap()).expect("listen");
        fd
    }

    fn connect_raw(addr: &str) -> std::os::fd::OwnedFd {
        use nix::sys::socket::*;
        let sa: SocketAddr = addr.parse().unwrap();
        let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
        let fd = socket(AddressFamily::Inet, SockType::Stream, flags, None).expect("socket");
        let _ = connect(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrStorage::from(sa),
        );
        fd
    }

    fn unix_seqpacket() -> std::os::fd::OwnedFd {
        use nix::sys::socket::*;
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        let addr = UnixAddr::new_abstract(b"backlogctl-seed-seqpacket").expect("name");
        bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).expect("bind");
        listen(&fd, Backlog::new(4).unwrap()).expect("listen");
        fd
    }
}
