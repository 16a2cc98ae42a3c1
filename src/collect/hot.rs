//! `watch`'s hot set: the listeners sampled at every interval by exact requests while the
//! whole scope is dumped only as often as the CPU budget allows. A listener is hot while it
//! had a queue or dropped in the last `HOT_FOR`, and always when the scope names targets (the
//! listeners asked for, `watch /run/php.sock`). Pure: fed samples, it says what to ask for.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::time::Duration;

use crate::model::Listener;

/// How long a listener stays hot after it last had a queue or dropped: bursts come again.
pub(super) const HOT_FOR: Duration = Duration::from_secs(5);
/// The most listeners sampled exactly: each costs a few microseconds (an exact Unix request,
/// a 20-byte bytecode block for TCP); beyond, the fullest stay and the rest wait for the
/// scope's dumps.
pub(super) const HOT_MAX: usize = 64;

/// Socket inodes are distinct small integers: one multiplication spreads them over a table,
/// where SipHash costs more than the rest of a 2,000-listener sample's bookkeeping.
#[derive(Default)]
pub(crate) struct InodeHasher(u64);

impl std::hash::Hasher for InodeHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by socket inode.
pub(super) type ByInode<V> = HashMap<u64, V, BuildHasherDefault<InodeHasher>>;

/// A set of socket inodes.
pub(super) type Inodes = HashSet<u64, BuildHasherDefault<InodeHasher>>;

/// How a hot listener is asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ask {
    /// A Unix listener, by inode.
    Unix,
    /// A TCP listener, by its address and port (a lookup in the listening hash).
    Exact(SocketAddr),
    /// A TCP listener the lookup did not answer with (one of an SO_REUSEPORT group, one bound
    /// to a device): in a dump filtered by its port.
    Port(u16),
}

/// One hot listener: how it is asked for, and until when it stays hot (None: pinned, a
/// target's).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    ask: Ask,
    until: Option<Duration>,
}

/// The hot listeners by inode, and what a hot sample asks for.
#[derive(Debug, Default)]
pub(super) struct HotSet {
    /// Every listener of the scope is hot (the scope names targets).
    pinned: bool,
    entries: ByInode<Entry>,
    /// Each TCP listener's drops at the last sample that saw it, to see them rise.
    drops: ByInode<u32>,
    /// What a hot sample asks for, rebuilt when the entries change.
    exact: Vec<SocketAddr>,
    ports: Vec<u16>,
    unix: Vec<u64>,
}

impl HotSet {
    pub(super) fn new(pinned: bool) -> HotSet {
        HotSet {
            pinned,
            ..HotSet::default()
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn contains(&self, inode: u64) -> bool {
        self.entries.contains_key(&inode)
    }

    /// The addresses of the hot TCP listeners asked for exactly.
    pub(super) fn exact(&self) -> &[SocketAddr] {
        &self.exact
    }

    /// The ports of the hot TCP listeners asked for by port, sorted, for the kernel's
    /// bytecode filter.
    pub(super) fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The inodes of the hot Unix listeners, for exact requests.
    pub(super) fn unix(&self) -> &[u64] {
        &self.unix
    }

    /// After a sample of the whole scope at `now`: listeners gone leave, troubled ones join.
    /// A dump without drops (`Sampler::queues_only`) keeps the drops last seen, so the next
    /// dump with them still sees them rise.
    pub(super) fn scope_seen(&mut self, listeners: &[Listener], now: Duration) {
        let before = self.entries.clone();
        let mut drops = ByInode::with_capacity_and_hasher(self.drops.len(), Default::default());
        let mut joining = Vec::new();
        for l in listeners {
            let was = self.drops.get(&l.inode).copied();
            let rose = match l.drops {
                Some(d) => {
                    drops.insert(l.inode, d);
                    was.is_some_and(|was| was != d)
                }
                None => {
                    if let Some(was) = was {
                        drops.insert(l.inode, was);
                    }
                    false
                }
            };
            if self.pinned || l.recv_q > 0 || rose {
                joining.push(l);
            }
        }
        self.drops = drops;
        if !self.entries.is_empty() {
            let live: HashSet<u64, BuildHasherDefault<InodeHasher>> =
                listeners.iter().map(|l| l.inode).collect();
            self.entries
                .retain(|inode, e| live.contains(inode) && e.until.is_none_or(|u| u > now));
        }
        // The fullest first, when there is no room for all.
        joining.sort_by_key(|l| std::cmp::Reverse(l.recv_q));
        let until = (!self.pinned).then_some(now + HOT_FOR);
        for l in joining {
            self.join(l, until);
        }
        if self.entries != before {
            self.rebuild();
        }
    }

    /// After a hot sample at `now`: the hot listeners it found. One asked for by address and
    /// not found is asked for by port from now on; one not found by port or inode is gone (a
    /// restarted server's new socket is found by the next dump of the scope).
    pub(super) fn hot_seen(&mut self, listeners: &[Listener], now: Duration) {
        // What is asked for changes only when an entry leaves or is asked for another way;
        // a renewal (every hot sample of a troubled listener) changes nothing to rebuild.
        let mut moved = false;
        self.entries.retain(|inode, e| {
            if listeners.iter().any(|l| l.inode == *inode) {
                return true;
            }
            moved = true;
            if let Ask::Exact(a) = e.ask {
                e.ask = Ask::Port(a.port());
                return true;
            }
            false
        });
        for l in listeners {
            if self.troubled(l)
                && let Some(e) = self.entries.get_mut(&l.inode)
                && e.until.is_some()
            {
                e.until = Some(now + HOT_FOR);
            }
        }
        if moved {
            self.rebuild();
        }
    }

    /// A queue now, or drops risen since the last sample that saw it (which it remembers).
    fn troubled(&mut self, l: &Listener) -> bool {
        let rose = match l.drops {
            Some(d) => self.drops.insert(l.inode, d).is_some_and(|was| was != d),
            None => false,
        };
        l.recv_q > 0 || rose
    }

    fn join(&mut self, l: &Listener, until: Option<Duration>) {
        if let Some(e) = self.entries.get_mut(&l.inode) {
            e.until = until;
            return;
        }
        if self.entries.len() < HOT_MAX {
            let ask = l.local.inet().map_or(Ask::Unix, Ask::Exact);
            self.entries.insert(l.inode, Entry { ask, until });
        }
    }

    fn rebuild(&mut self) {
        (self.exact, self.ports, self.unix) = (Vec::new(), Vec::new(), Vec::new());
        for (inode, e) in &self.entries {
            match e.ask {
                Ask::Unix => self.unix.push(*inode),
                Ask::Exact(a) => self.exact.push(a),
                Ask::Port(p) => self.ports.push(p),
            }
        }
        self.exact.sort_unstable();
        self.exact.dedup();
        self.ports.sort_unstable();
        self.ports.dedup();
        self.unix.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Local, UnixKind, UnixLocal, UnixName};

    fn tcp(port: u16, inode: u64, recv_q: u32, drops: u32) -> Listener {
        Listener {
            local: Local::Inet(format!("127.0.0.1:{port}").parse().unwrap()),
            inode,
            uid: 0,
            recv_q,
            send_q: 16,
            drops: Some(drops),
            syn_recv: None,
            v6only: None,
            wait: None,
        }
    }

    fn unix(inode: u64, recv_q: u32) -> Listener {
        Listener {
            local: Local::Unix(UnixLocal {
                name: UnixName::Unnamed,
                kind: UnixKind::Stream,
                vfs: None,
            }),
            drops: None,
            ..tcp(0, inode, recv_q, 0)
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_queue_or_a_drop_makes_a_listener_hot_for_a_while() {
        let mut hot = HotSet::new(false);
        let quiet = [tcp(80, 1, 0, 0), tcp(81, 2, 0, 5), unix(3, 0)];
        hot.scope_seen(&quiet, S);
        assert_eq!(hot.len(), 0, "drops seen for the first time are no rise");
        hot.scope_seen(&[tcp(80, 1, 3, 0), tcp(81, 2, 0, 6), unix(3, 1)], 2 * S);
        assert_eq!(hot.exact(), [addr(80), addr(81)]);
        assert_eq!(hot.unix(), [3]);
        // Quiet again: still hot until HOT_FOR has passed since the trouble.
        let quiet = [tcp(80, 1, 0, 0), tcp(81, 2, 0, 6), unix(3, 0)];
        hot.scope_seen(&quiet, 6 * S);
        assert_eq!(hot.len(), 3);
        hot.scope_seen(&quiet, 2 * S + HOT_FOR + S);
        assert_eq!(hot.len(), 0, "{hot:?}");
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_hot_sample_renews_its_listeners_and_drops_the_gone() {
        let mut hot = HotSet::new(false);
        hot.scope_seen(&[tcp(80, 1, 1, 0), unix(3, 1)], S);
        hot.hot_seen(&[tcp(80, 1, 2, 0)], 4 * S);
        assert_eq!((hot.exact(), hot.unix()), (&[addr(80)][..], &[][..]));
        hot.scope_seen(&[tcp(80, 1, 0, 0)], 8 * S);
        assert!(hot.contains(1), "renewed at 4 s, hot until 9 s");
        hot.scope_seen(&[tcp(80, 1, 0, 0)], 10 * S);
        assert_eq!(hot.len(), 0);
    }

    #[test]
    fn a_listener_the_lookup_misses_is_asked_for_by_port_then_dropped() {
        let mut hot = HotSet::new(false);
        hot.scope_seen(&[tcp(80, 1, 1, 0), tcp(80, 2, 1, 0)], S);
        // The lookup answered with listener 1 only (2 is of its SO_REUSEPORT group).
        hot.hot_seen(&[tcp(80, 1, 1, 0)], S);
        assert_eq!((hot.exact(), hot.ports()), (&[addr(80)][..], &[80][..]));
        hot.hot_seen(&[tcp(80, 1, 1, 0), tcp(80, 2, 1, 0)], S);
        assert_eq!(hot.len(), 2);
        hot.hot_seen(&[tcp(80, 1, 1, 0)], S);
        assert_eq!((hot.len(), hot.ports()), (1, &[][..]));
    }

    #[test]
    fn targets_are_pinned_and_the_set_is_bounded_fullest_first() {
        let mut pinned = HotSet::new(true);
        pinned.scope_seen(&[unix(7, 0)], S);
        pinned.scope_seen(&[unix(7, 0)], 100 * S);
        assert_eq!(pinned.unix(), [7]);
        let mut hot = HotSet::new(false);
        let many: Vec<Listener> = (0..200)
            .map(|i| tcp(1000 + i as u16, i + 1, i as u32, 0))
            .collect();
        hot.scope_seen(&many, S);
        assert_eq!(hot.len(), HOT_MAX);
        assert!(hot.contains(200) && !hot.contains(2), "the fullest stay");
    }
}
