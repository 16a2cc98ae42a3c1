//! The connecting side's readings: this namespace's connections to servers, grouped by server,
//! read with the clients' wait (same cadence, same cost budget). What is dumped is decided here
//! so that a host with a hundred thousand healthy connections pays for almost nothing:
//! - SYN_SENT always (few on a healthy host; the kernel skips the rest by state);
//! - ESTABLISHED to the servers named as targets, with tcp_info, filtered by their port in the
//!   kernel; without a target, ESTABLISHED only while the namespace's `RetransSegs` rose since
//!   the reading before (a healthy connection sends nothing twice), without tcp_info;
//! - TIME_WAIT and the closing states only while `/proc/net/sockstat` counts at least half the
//!   local port range of TIME_WAIT sockets: the fewest with which one server can run out.
//!
//! Every dump keeps only sockets whose local port the kernel chose (`INET_DIAG_BC_AUTO`) and,
//! beyond SYN_SENT, that lies in `ip_local_port_range` (an accepted connection passes `AUTO`:
//! see `Outbound::local_ports`), so a server's accepted connections do not cross into user
//! space unless it listens inside that range.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::Sources;
pub use crate::model::is_local;
use crate::model::{Outgoing, OwnServer, PortRange, Remote};
use crate::source::diag::{self, OutSock, Outbound, TCP_SYN_SENT, TCP_TIME_WAIT};

const TCP_ESTABLISHED: u8 = 1;

/// What the readings look at, fixed for a recording.
#[derive(Debug, Clone, Default)]
pub(super) struct OutgoingScope {
    /// Servers named as targets (an address that is none of this namespace's): always listed.
    pub servers: Vec<SocketAddr>,
    /// No target was named: every server in trouble is listed.
    pub all: bool,
    /// From the recording's header, for the TIME_WAIT trigger.
    pub range: Option<PortRange>,
}

impl OutgoingScope {
    pub(super) fn wanted(&self) -> bool {
        self.all || !self.servers.is_empty()
    }
}

/// What the namespace's counters, read just before a reading, rule out; a counter the kernel
/// lacks rules nothing out.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Ruled {
    /// `Tcp:ActiveOpens` is 0: the namespace never called connect() (`tcp_connect` counts each
    /// first SYN), so it holds no SYN_SENT socket.
    pub never_connected: bool,
    /// `TcpExt:TCPTimeouts` is 0: no retransmission timer of the namespace ever fired, so no
    /// SYN_SENT socket has `idiag_retrans` above 0 (its `icsk_retransmits` rises only in
    /// `tcp_retransmit_timer`, net/ipv4/tcp_timer.c, after that counter; TCPSynRetrans comes
    /// later, after the resend, and a resend that fails locally skips it).
    pub no_timeouts: bool,
}

/// The readings' state between two of them.
#[derive(Debug, Default)]
pub(super) struct OutgoingReader {
    pub scope: OutgoingScope,
    /// RetransSegs at the reading before.
    last_retrans: Option<u64>,
    /// Why the last reading failed, for the gap.
    pub failed: Option<String>,
}

impl OutgoingReader {
    pub(super) fn new(scope: OutgoingScope) -> Self {
        OutgoingReader {
            scope,
            ..OutgoingReader::default()
        }
    }

    /// RetransSegs as a reading before this recording saw it (a scrape before): the first
    /// reading then compares with it, as later ones compare with the one before.
    pub(super) fn retrans_before(&mut self, value: u64) {
        self.last_retrans.get_or_insert(value);
    }

    /// One reading; None when nothing is wanted or the dump failed (`failed` says why).
    /// `ruled`: what the namespace's counters, read just before, say a reading of SYN_SENT
    /// alone would find; `retrans_segs`: their RetransSegs, when they hold it (else
    /// /proc/net/snmp is read again for it).
    pub(super) fn read<S: Sources>(
        &mut self,
        sources: &mut S,
        ruled: Ruled,
        retrans_segs: Option<u64>,
    ) -> Option<Outgoing> {
        if !self.scope.wanted() {
            return None;
        }
        let retrans = retrans_segs.or_else(|| sources.retrans_segs());
        let rose = match (self.last_retrans, retrans) {
            (Some(a), Some(b)) => b > a,
            // A kernel without the counter cannot say no.
            (_, None) => true,
            (None, Some(_)) => false,
        };
        self.last_retrans = retrans.or(self.last_retrans);
        let established = !self.scope.servers.is_empty() || rose;
        let time_wait_read = match (self.scope.range, sources.time_wait_count()) {
            (Some(r), Some(tw)) => tw >= u64::from(r.size() / 2).max(1),
            // Unknown range or count: only with targets, whose dump is filtered anyway.
            _ => !self.scope.servers.is_empty(),
        };
        let mut ports: Vec<u16> = self.scope.servers.iter().map(|s| s.port()).collect();
        if self.scope.all {
            ports.clear();
        }
        let q = diag::Query::outgoing(Outbound {
            established,
            closing: time_wait_read,
            ports: &ports,
            info: !self.scope.all,
            local_ports: self.scope.range.and_then(|r| r.ports()),
        });
        // That dump walks the host's whole established hash, connections or not, so it is
        // skipped when SYN_SENT alone is asked for and cannot list anyone: the namespace never
        // connected, or no server is named and none of its SYNs was ever sent again (without a
        // target a server with SYN_SENT sockets alone is listed only once one retried,
        // `Remote::troubled`; `group` of nothing is then the same reading).
        let lists_nobody =
            ruled.never_connected || (ruled.no_timeouts && self.scope.servers.is_empty());
        let dump = if lists_nobody && !established && !time_wait_read {
            Ok(diag::Dump::default())
        } else {
            sources.listeners(&q)
        };
        match dump {
            Ok(d) => {
                self.failed = None;
                Some(group(
                    &d.outgoing,
                    &self.scope,
                    established,
                    time_wait_read,
                    !self.scope.all,
                ))
            }
            Err(e) => {
                self.failed = Some(e.to_string());
                None
            }
        }
    }
}

/// The sockets of one reading folded by server; the targets' servers always, the others
/// when troubled or holding half the port range, most troubled first, `Outgoing::KEPT` at most.
pub(super) fn group(
    socks: &[OutSock],
    scope: &OutgoingScope,
    established: bool,
    time_wait_read: bool,
    info: bool,
) -> Outgoing {
    let mut by: HashMap<SocketAddr, Remote> = HashMap::new();
    let fresh = |addr: SocketAddr| {
        let mut r = Remote::new(addr);
        if established {
            r.established = Some(0);
        }
        if time_wait_read {
            r.time_wait = Some(0);
        }
        if info && established {
            r.never_acked = Some(0);
        }
        r
    };
    for s in socks {
        let r = by.entry(s.remote).or_insert_with(|| fresh(s.remote));
        count(r, s, info);
    }
    let half_range = scope.range.map(|r| (r.size() / 2).max(1));
    let named = |addr: &SocketAddr| scope.servers.iter().any(|s| serves(*s, *addr));
    let mut kept: Vec<Remote> = Vec::new();
    let mut others: Vec<Remote> = Vec::new();
    for (addr, r) in by {
        if named(&addr) {
            kept.push(r);
        } else if scope.all
            && (r.troubled() || (time_wait_read && half_range.is_some_and(|h| r.ports_held() >= h)))
        {
            others.push(r);
        }
    }
    // A named server nothing connects to is listed too: "no connection" is its evidence.
    for s in &scope.servers {
        if !s.ip().is_unspecified() && !kept.iter().any(|r| r.addr == *s) {
            kept.push(fresh(*s));
        }
    }
    others.sort_by_key(|r| {
        (
            std::cmp::Reverse(r.syn_retried + r.unacked),
            std::cmp::Reverse(r.ports_held()),
            r.addr,
        )
    });
    let room = Outgoing::KEPT.saturating_sub(kept.len());
    let more = others.len().saturating_sub(room) as u32;
    let left = others.split_off(room.min(others.len()));
    let sum = |f: fn(&Remote) -> u32| left.iter().map(f).fold(0u32, u32::saturating_add);
    kept.sort_by_key(|r| r.addr);
    kept.extend(others);
    Outgoing {
        remotes: kept,
        more,
        more_syn_sent: sum(|r| r.syn_sent),
        more_syn_retried: sum(|r| r.syn_retried),
        established_read: established,
        time_wait_read,
    }
}

/// The namespace's own connections (`socks`, all states) folded by server, the most sockets
/// first, `OwnServer::KEPT` at most; each with the inodes of up to `INODES` of its sockets
/// (TIME_WAIT has none), to name who holds them without naming thousands.
pub fn own_servers(socks: &[OutSock]) -> Vec<(OwnServer, Vec<u64>)> {
    const INODES: usize = 4;
    let mut by: HashMap<SocketAddr, (u32, Vec<u64>)> = HashMap::new();
    for s in socks {
        let (n, inodes) = by.entry(s.remote).or_default();
        *n = n.saturating_add(1);
        if s.inode != 0 && inodes.len() < INODES {
            inodes.push(s.inode);
        }
    }
    let mut servers: Vec<(OwnServer, Vec<u64>)> = by
        .into_iter()
        .map(|(addr, (sockets, inodes))| {
            let server = OwnServer {
                addr,
                sockets,
                processes: Vec::new(),
            };
            (server, inodes)
        })
        .collect();
    servers.sort_by_key(|(s, _)| (std::cmp::Reverse(s.sockets), s.addr));
    servers.truncate(OwnServer::KEPT);
    servers
}

/// One socket into its server's line.
fn count(r: &mut Remote, s: &OutSock, info: bool) {
    match s.state {
        TCP_SYN_SENT => {
            r.syn_sent += 1;
            if s.retrans > 0 {
                r.syn_retried += 1;
            }
            r.syn_retrans_max = r.syn_retrans_max.max(s.retrans);
        }
        TCP_ESTABLISHED => {
            *r.established.get_or_insert(0) += 1;
            if s.send_q > 0 && s.retransmitting && s.retrans > 0 {
                r.unacked += 1;
                r.unacked_retrans_max = r.unacked_retrans_max.max(s.retrans);
                if info && s.bytes_acked.is_some_and(|b| b <= 1) {
                    *r.never_acked.get_or_insert(0) += 1;
                }
            }
        }
        TCP_TIME_WAIT => *r.time_wait.get_or_insert(0) += 1,
        _ => r.closing += 1,
    }
}

/// A port range as the bytecode compares ports.
/// Whether a connection to `addr` is one to the server a target names (its address, or any
/// address when the target's is unspecified).
fn serves(target: SocketAddr, addr: SocketAddr) -> bool {
    target.port() == addr.port() && (target.ip().is_unspecified() || target.ip() == addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn sock(remote: &str, state: u8, send_q: u32, retrans: u8, acked: Option<u64>) -> OutSock {
        OutSock {
            local: "10.200.0.2:40000".parse().unwrap(),
            remote: remote.parse().unwrap(),
            state,
            send_q,
            retransmitting: retrans > 0,
            retrans,
            bytes_acked: acked,
            inode: 0,
        }
    }

    #[test]
    fn sockets_fold_by_server_and_only_troubled_ones_are_kept_without_a_target() {
        let socks = [
            sock("10.200.0.1:9000", TCP_SYN_SENT, 0, 2, None),
            sock("10.200.0.1:9000", TCP_SYN_SENT, 0, 0, None),
            sock("10.200.0.1:9000", TCP_ESTABLISHED, 18, 3, Some(1)),
            sock("10.200.0.1:9000", TCP_ESTABLISHED, 0, 0, Some(19)),
            sock("10.200.0.9:443", TCP_ESTABLISHED, 0, 0, None),
            sock("10.200.0.9:443", TCP_SYN_SENT, 0, 0, None),
        ];
        let scope = OutgoingScope {
            all: true,
            ..OutgoingScope::default()
        };
        let out = group(&socks, &scope, true, false, false);
        assert_eq!(out.remotes.len(), 1, "{out:?}");
        let r = &out.remotes[0];
        assert_eq!(r.addr, "10.200.0.1:9000".parse().unwrap());
        assert_eq!((r.syn_sent, r.syn_retried, r.syn_retrans_max), (2, 1, 2));
        assert_eq!(
            (r.established, r.unacked, r.unacked_retrans_max),
            (Some(2), 1, 3)
        );
        assert_eq!((r.never_acked, r.time_wait), (None, None));
    }

    #[test]
    fn a_named_server_is_listed_even_with_nothing_to_it() {
        let scope = OutgoingScope {
            servers: vec!["10.200.0.1:9000".parse().unwrap()],
            ..OutgoingScope::default()
        };
        let socks = [sock("10.200.0.1:9000", TCP_ESTABLISHED, 18, 1, Some(1))];
        let out = group(&socks, &scope, true, true, true);
        assert_eq!(out.remotes[0].never_acked, Some(1));
        assert_eq!(out.remotes[0].time_wait, Some(0));
        let out = group(&[], &scope, true, true, true);
        assert_eq!(out.remotes.len(), 1);
        assert_eq!(out.remotes[0].established, Some(0));
    }

    #[test]
    fn servers_holding_half_the_port_range_are_kept_and_the_list_is_bounded() {
        let mut socks = Vec::new();
        for _ in 0..6 {
            socks.push(sock("10.200.0.1:9000", TCP_TIME_WAIT, 0, 0, None));
        }
        for i in 0..100u16 {
            socks.push(sock(
                &format!("10.1.0.1:{}", 1000 + i),
                TCP_SYN_SENT,
                0,
                1,
                None,
            ));
        }
        let scope = OutgoingScope {
            all: true,
            range: Some(PortRange {
                low: 40000,
                high: 40009,
            }),
            ..OutgoingScope::default()
        };
        let out = group(&socks, &scope, false, true, false);
        assert_eq!(out.remotes.len(), Outgoing::KEPT);
        assert_eq!(out.more as usize, 101 - Outgoing::KEPT);
        // What is left out still counts in the totals: every connect is one SYN_SENT, sent
        // again, once in the servers kept or once in the sums.
        let kept: u32 = out.remotes.iter().map(|r| r.syn_sent).sum();
        assert_eq!(kept + out.more_syn_sent, 100);
        assert_eq!(out.more_syn_retried, out.more_syn_sent);
        let out = group(&socks[..6], &scope, false, true, false);
        assert_eq!(out.remotes[0].time_wait, Some(6));
    }

    #[test]
    fn local_addresses() {
        let mine: Vec<IpAddr> = vec!["10.200.0.2".parse().unwrap()];
        assert!(is_local("127.0.0.5".parse().unwrap(), &mine));
        assert!(is_local("::1".parse().unwrap(), &mine));
        assert!(is_local("10.200.0.2".parse().unwrap(), &mine));
        assert!(!is_local("10.200.0.1".parse().unwrap(), &mine));
    }
}
