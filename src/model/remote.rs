//! The connecting side: this namespace's own connections to servers, grouped by the server's
//! address and port (docs/kernel.md, "The client's side"). A client's kernel knows when its
//! connects go unanswered (SYN_SENT, the SYN sent again), when its requests go unacknowledged
//! (ESTABLISHED, Send-Q above 0, the data sent again) and how many local ports it holds to one
//! server (TIME_WAIT included). What a snapshot keeps of them; `source::diag` reads them.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// This namespace's connections to one server at one reading. Only connections whose local
/// port the kernel chose (connect() without bind(), `INET_DIAG_BC_AUTO`) count: accepted
/// sockets are a listener's, not a client's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remote {
    /// The server's address and port, v4-mapped addresses unmapped.
    pub addr: SocketAddr,
    /// Connects waiting for the server's SYN-ACK (SYN_SENT).
    pub syn_sent: u32,
    /// Of them, those whose SYN was sent again at least once (`idiag_retrans` ≥ 1): the first
    /// went unanswered for a whole retransmission timeout (1 s at first).
    pub syn_retried: u32,
    /// The most times one of them has sent its SYN again: after N, a connect has waited at
    /// least 2^N − 1 initial timeouts (1, 3, 7, 15 s …).
    pub syn_retrans_max: u8,
    /// ESTABLISHED connections (None: not dumped at this reading; without a target they are
    /// read only while the namespace retransmits, see `Outgoing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub established: Option<u32>,
    /// Of them, those whose data waits unacknowledged and has been sent again (Send-Q above 0,
    /// the retransmission timer running, `idiag_retrans` ≥ 1): the server's kernel is not
    /// acknowledging what the client sent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unacked: u32,
    /// The most times one of them has sent its data again.
    #[serde(default, skip_serializing_if = "is_zero_u8")]
    pub unacked_retrans_max: u8,
    /// Of `unacked`, those of which the server never acknowledged a byte (tcp_info
    /// `bytes_acked` ≤ 1, the SYN's sequence number only): the connection never reached the
    /// server's application. None when tcp_info was not read (no target named this server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_acked: Option<u32>,
    /// TIME_WAIT sockets to this server: each holds its local port for 60 s. None: not dumped
    /// (the namespace held too few TIME_WAIT sockets for any server to run out of ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_wait: Option<u32>,
    /// Sockets in any other state that hold a local port to this server (FIN_WAIT, CLOSE_WAIT,
    /// LAST_ACK, CLOSING), counted with `time_wait`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub closing: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u8(n: &u8) -> bool {
    *n == 0
}

impl Remote {
    /// A server with nothing yet seen.
    pub fn new(addr: SocketAddr) -> Remote {
        Remote {
            addr,
            syn_sent: 0,
            syn_retried: 0,
            syn_retrans_max: 0,
            established: None,
            unacked: 0,
            unacked_retrans_max: 0,
            never_acked: None,
            time_wait: None,
            closing: 0,
        }
    }

    /// Local ports held to this server: every socket counted, TIME_WAIT included. Ports are
    /// unique per (local address, server address, server port), so this is what
    /// `ip_local_port_range` bounds.
    pub fn ports_held(&self) -> u32 {
        self.syn_sent
            .saturating_add(self.established.unwrap_or(0))
            .saturating_add(self.time_wait.unwrap_or(0))
            .saturating_add(self.closing)
    }

    /// Whether anything here is worth a look: a connect sent again, data sent again.
    pub fn troubled(&self) -> bool {
        self.syn_retried > 0 || self.unacked > 0
    }
}

/// What one reading of the outgoing connections saw. Only servers worth keeping are listed
/// (`Outgoing::KEPT` at most, the most troubled first), so a host with a hundred thousand
/// healthy connections stores nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// The servers: every target that is not this namespace's own address, and the servers
    /// with connects or data sent again, or holding many local ports.
    pub remotes: Vec<Remote>,
    /// Servers in trouble left out beyond `KEPT`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more: u32,
    /// Their connects waiting for a SYN-ACK, and of them sent again, summed: what the left-out
    /// servers add to a total (the exporter's `remote="other"`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_syn_sent: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_syn_retried: u32,
    /// Whether ESTABLISHED sockets were read at this reading (for targets always; otherwise
    /// only while the namespace's RetransSegs rose since the reading before, since healthy
    /// connections never retransmit).
    pub established_read: bool,
    /// Whether TIME_WAIT sockets were read (only when `/proc/net/sockstat` counted at least
    /// half the local port range of them, the fewest with which one server can run out).
    pub time_wait_read: bool,
}

impl Outgoing {
    /// The most servers a reading keeps.
    pub const KEPT: usize = 64;

    /// This server's line at this reading, if kept.
    pub fn get(&self, addr: SocketAddr) -> Option<&Remote> {
        self.remotes.iter().find(|r| r.addr == addr)
    }
}

/// A server this namespace's own connections go to, read after a window in which it sent RSTs
/// and opened connections (`Snapshot::own_connections`): the resets can be on these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnServer {
    pub addr: SocketAddr,
    /// Sockets to it whose local port connect() chose, in every state, TIME_WAIT included.
    pub sockets: u32,
    /// The processes holding them, by name; empty when none could be named (TIME_WAIT
    /// sockets belong to no process, names were not looked up or were hidden).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<String>,
}

impl OwnServer {
    /// The most servers kept.
    pub const KEPT: usize = 8;
}

/// `net.ipv4.ip_local_port_range`: the local ports connect() picks from, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub low: u32,
    pub high: u32,
}

impl PortRange {
    /// Linux's default, `32768 60999`: what connect() chooses from when the range is unknown.
    pub const DEFAULT: PortRange = PortRange {
        low: 32768,
        high: 60999,
    };

    /// How many ports: what one server's connections can hold at most from one local address.
    pub fn size(&self) -> u32 {
        self.high.saturating_sub(self.low).saturating_add(1)
    }

    /// Low and high as ports; None for a range beyond them (a file's garbage).
    pub fn ports(&self) -> Option<(u16, u16)> {
        Some((
            u16::try_from(self.low).ok()?,
            u16::try_from(self.high).ok()?,
        ))
    }

    /// `40000 40009`, as the file holds it.
    pub fn parse(text: &str) -> Option<PortRange> {
        let mut it = text.split_whitespace().map(|n| n.parse::<u32>().ok());
        let (low, high) = (it.next()??, it.next()??);
        (it.next().is_none() && low <= high && high <= 65535).then_some(PortRange { low, high })
    }
}

/// Whether `ip` is one of this namespace's own: a loopback address, the unspecified one, or one
/// of `local` (its interfaces' addresses).
pub fn is_local(ip: IpAddr, local: &[IpAddr]) -> bool {
    ip.is_loopback() || ip.is_unspecified() || local.contains(&ip)
}

/// A host name target resolved once, with every address it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// As typed: `db.internal:5432`.
    pub name: String,
    pub addrs: Vec<IpAddr>,
}

/// `doctor --trace` on the connecting side: what the kernel's events said of this namespace's
/// connections over the window, exactly, by server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTraced {
    pub remotes: Vec<TracedRemote>,
    /// connect() calls that failed at once, per process and errno (`syscalls:sys_exit_connect`):
    /// EAGAIN from a full Unix listener, EADDRNOTAVAIL for want of a local port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connect_errors: Vec<ConnectErrors>,
    /// Events the trace buffer lost: the counts are lower bounds.
    pub lost: u64,
}

impl ClientTraced {
    /// The connect() failures with this errno, per process (EAGAIN: refusals by a full Unix
    /// listener; EADDRNOTAVAIL: no local port left).
    pub fn connect_errors_of(&self, errno: i32) -> Vec<ConnectErrors> {
        self.connect_errors
            .iter()
            .filter(|e| e.errno == errno && e.count > 0)
            .cloned()
            .collect()
    }
}

/// One server's connections as the events saw them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedRemote {
    pub addr: SocketAddr,
    /// The errors the sockets' owners were given (`sock:inet_sk_error_report`), by errno
    /// (104 ECONNRESET, 110 ETIMEDOUT, 111 ECONNREFUSED).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<i32, u64>,
    /// SYNs sent again (`tcp:tcp_retransmit_skb` in SYN_SENT).
    #[serde(default)]
    pub syn_retransmits: u64,
    /// RSTs received (`tcp:tcp_receive_reset`).
    #[serde(default)]
    pub resets_received: u64,
    /// Connects that completed (SYN_SENT → ESTABLISHED) and how long they took, ms.
    #[serde(default)]
    pub connected: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<Percentiles>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// connect() failures of one process with one errno.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectErrors {
    pub pid: u32,
    pub comm: String,
    /// Positive: 11 EAGAIN, 99 EADDRNOTAVAIL, 111 ECONNREFUSED.
    pub errno: i32,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_range_is_two_numbers_in_order() {
        assert_eq!(PortRange::parse("40000\t40009\n").unwrap().size(), 10);
        assert_eq!(PortRange::parse("32768 60999").unwrap().size(), 28232);
        for bad in ["", "1", "2 1", "1 2 3", "a b", "1 70000"] {
            assert_eq!(PortRange::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ports_held_count_every_state_read() {
        let r = Remote {
            syn_sent: 2,
            established: Some(3),
            time_wait: Some(5),
            closing: 1,
            ..Remote::new("10.0.0.1:80".parse().unwrap())
        };
        assert_eq!(r.ports_held(), 11);
        assert!(!r.troubled());
    }
}
