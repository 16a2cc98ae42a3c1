//! inet_diag over NETLINK_SOCK_DIAG: the listening TCP sockets of the calling thread's network
//! namespace, and the request sockets (SYN_RECV) waiting on them. The kernel does the
//! filtering: the request carries a state mask (LISTEN, plus SYN_RECV when asked) and, when the
//! scope names ports, a bytecode port filter, so established sockets never cross into user
//! space. One dump per address family; a dump the kernel marks NLM_F_DUMP_INTR (the hash
//! tables changed under it) is repeated a bounded number of times.
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
use crate::model::Listener;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// Request sockets are dumped in this state (`include/net/tcp_states.h`); asking for
/// SYN_RECV includes them (`inet_diag_dump_icsk`, `net/ipv4/inet_diag.c`).
const TCP_NEW_SYN_RECV: u8 = 12;
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

/// What one pass over both families saw.
#[derive(Debug, Default, Clone)]
pub struct Dump {
    pub listeners: Vec<Listener>,
    /// Local address of every request socket (SYN_RECV), v4-mapped addresses unmapped.
    pub requests: Vec<SocketAddr>,
    /// Listeners whose skmeminfo was missing or too short to hold the drop counter.
    pub drops_unknown: usize,
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
}

/// An open NETLINK_SOCK_DIAG socket with its receive buffer, reused across samples.
pub struct Diag {
    socket: Socket,
    buf: Vec<u8>,
    seq: u32,
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
        })
    }

    /// The listeners (and request sockets) that `q` asks for.
    pub fn dump(&mut self, q: &Query) -> Result<Dump> {
        let mut out = Dump::default();
        for family in [AF_INET, AF_INET6] {
            self.dump_family(family, q, &mut out)?;
        }
        // A dump spans several messages, and a listener closing or opening between two of them
        // can make the kernel's resume point (bucket, index) repeat a socket; keep each once.
        let mut seen = std::collections::HashSet::new();
        out.listeners.retain(|l| seen.insert(l.key()));
        if q.syn_recv {
            attach_syn_recv(&mut out.listeners, &out.requests);
        }
        Ok(out)
    }

    fn dump_family(&mut self, family: u8, q: &Query, out: &mut Dump) -> Result<()> {
        for _ in 0..DUMP_TRIES {
            let (l, r, d) = (out.listeners.len(), out.requests.len(), out.drops_unknown);
            match self.try_dump(family, q, out)? {
                Outcome::Complete => return Ok(()),
                Outcome::FamilyAbsent => return Ok(()),
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
        let request = build_request(family, q, self.seq);
        self.socket
            .send(&request, 0)
            .map_err(|source| Error::Netlink { op: "send", source })?;

        let mut interrupted = false;
        loop {
            let mut chunk = &mut self.buf[..];
            let n = self
                .socket
                .recv(&mut chunk, nix::libc::MSG_TRUNC)
                .map_err(|source| Error::Netlink { op: "recv", source })?;
            if n > self.buf.len() {
                return Err(Error::Protocol(format!(
                    "a dump message of {n} bytes exceeds the {RECV_BUF}-byte buffer"
                )));
            }
            let mut data = &self.buf[..n];
            while !data.is_empty() {
                let msg = NetlinkBuffer::new_checked(data)
                    .map_err(|e| Error::Protocol(format!("malformed netlink message: {e}")))?;
                let len = msg.length() as usize;
                if msg.sequence_number() != self.seq {
                    // A leftover of an earlier, abandoned conversation.
                    data = &data[align4(len).min(data.len())..];
                    continue;
                }
                if msg.flags() & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match msg.message_type() {
                    NLMSG_DONE => {
                        return Ok(if interrupted {
                            Outcome::Interrupted
                        } else {
                            Outcome::Complete
                        });
                    }
                    NLMSG_ERROR => {
                        let code = msg
                            .payload()
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        if code == 0 {
                            // An acknowledgement; the dump itself ends with NLMSG_DONE.
                        } else if family == AF_INET6
                            && [
                                nix::libc::ENOENT,
                                nix::libc::EAFNOSUPPORT,
                                nix::libc::EPROTONOSUPPORT,
                            ]
                            .contains(&-code)
                        {
                            return Ok(Outcome::FamilyAbsent);
                        } else {
                            return Err(Error::Netlink {
                                op: "inet_diag dump",
                                source: io::Error::from_raw_os_error(-code),
                            });
                        }
                    }
                    SOCK_DIAG_BY_FAMILY => parse_diag_msg(msg.payload(), q.drops, out)?,
                    _ => {}
                }
                data = &data[align4(len).min(data.len())..];
            }
        }
    }
}

enum Outcome {
    Complete,
    Interrupted,
    FamilyAbsent,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Netlink header + `inet_diag_req_v2` + optional INET_DIAG_REQ_BYTECODE attribute.
fn build_request(family: u8, q: &Query, seq: u32) -> Vec<u8> {
    let mut states = StateFlags::LISTEN;
    if q.syn_recv {
        states |= StateFlags::SYN_RECV;
    }
    let req = InetRequest {
        family,
        protocol: IPPROTO_TCP,
        extensions: if q.drops {
            ExtensionFlags::SKMEMINFO
        } else {
            ExtensionFlags::empty()
        },
        states,
        socket_id: if family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        },
    };
    let bytecode = port_filter(q.ports);
    let attr_len = if bytecode.is_empty() {
        0
    } else {
        4 + bytecode.len()
    };
    let total = 16 + req.buffer_len() + attr_len;
    let mut buf = vec![0u8; total];
    {
        let mut hdr = NetlinkBuffer::new(&mut buf[..]);
        hdr.set_length(total as u32);
        hdr.set_message_type(SOCK_DIAG_BY_FAMILY);
        hdr.set_flags(NLM_F_REQUEST | NLM_F_DUMP);
        hdr.set_sequence_number(seq);
        hdr.set_port_number(0);
    }
    let body = 16 + req.buffer_len();
    req.emit(&mut buf[16..body]);
    if !bytecode.is_empty() {
        buf[body..body + 2].copy_from_slice(&(attr_len as u16).to_ne_bytes());
        buf[body + 2..body + 4].copy_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        buf[body + 4..].copy_from_slice(&bytecode);
    }
    buf
}

/// inet_diag bytecode accepting a socket whose local port is any of `ports`
/// (`inet_diag_bc_run`, `net/ipv4/inet_diag.c`): the program accepts when it runs off its end
/// exactly, and rejects by jumping 4 bytes past it. Per port, a 20-byte block
/// `S_GE p; S_LE p; JMP end`, failures falling through to the next block; a final JMP rejects.
/// Only GE/LE are used (S_EQ is newer). Empty for no ports: no filter.
pub fn port_filter(ports: &[u16]) -> Vec<u8> {
    let mut ports: Vec<u16> = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        return Vec::new();
    }
    let n = ports.len();
    let total = 20 * n + 4;
    let mut bc = Vec::with_capacity(total);
    let op = |bc: &mut Vec<u8>, code: u8, yes: u8, no: u16| {
        bc.push(code);
        bc.push(yes);
        bc.extend_from_slice(&no.to_ne_bytes());
    };
    for (i, &port) in ports.iter().enumerate() {
        // offsets inside the block: 0 S_GE, 4 arg, 8 S_LE, 12 arg, 16 JMP
        op(&mut bc, INET_DIAG_BC_S_GE, 8, 20);
        op(&mut bc, 0, 0, port);
        op(&mut bc, INET_DIAG_BC_S_LE, 8, 12);
        op(&mut bc, 0, 0, port);
        let to_end = (total - (20 * i + 16)) as u16;
        // JMP always takes `no`; `yes` must still be a valid length for the verifier.
        op(&mut bc, INET_DIAG_BC_JMP, 4, to_end);
    }
    op(&mut bc, INET_DIAG_BC_JMP, 4, 8);
    bc
}

fn parse_diag_msg(payload: &[u8], asked_drops: bool, out: &mut Dump) -> Result<()> {
    if payload.len() < DIAG_MSG_LEN {
        return Err(Error::Protocol(format!(
            "inet_diag message of {} bytes, expected at least {DIAG_MSG_LEN}",
            payload.len()
        )));
    }
    let header = InetResponseHeader::parse(&payload[..DIAG_MSG_LEN])
        .map_err(|e| Error::Protocol(format!("inet_diag header: {e}")))?;
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
                local,
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
            });
        }
        TCP_SYN_RECV | TCP_NEW_SYN_RECV => out.requests.push(local),
        _ => {}
    }
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
    for l in listeners.iter_mut() {
        l.syn_recv = Some(0);
    }
    let mut per_addr: HashMap<SocketAddr, u32> = HashMap::new();
    for r in requests {
        *per_addr.entry(*r).or_default() += 1;
    }
    for (addr, n) in per_addr {
        let rank = |l: &Listener| -> Option<u8> {
            if l.local.port() != addr.port() || !l.serves(addr.ip()) {
                None
            } else if l.local.ip() == addr.ip() {
                Some(2)
            } else if l.local.is_ipv4() == addr.is_ipv4() {
                Some(1)
            } else {
                Some(0)
            }
        };
        let Some(best) = listeners.iter().filter_map(rank).max() else {
            continue;
        };
        for l in listeners.iter_mut().filter(|l| rank(l) == Some(best)) {
            l.syn_recv = Some(l.syn_recv.unwrap_or(0) + n);
        }
    }
}
