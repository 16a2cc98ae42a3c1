//! What the exporter keeps of each network namespace from one scrape to the next (`Held`):
//! the netlink socket and the `/proc` files its readings go through, each opened inside the
//! namespace the first time and read again with `pread` from any thread. A socket and an open
//! `/proc/thread-self/net` or `/proc/sys/net` file stay bound to the namespace they were
//! opened in, so a namespace already held is read without `setns` and without a path lookup
//! (looking a sysctl up by path walks past the entries of every other namespace:
//! `proc_sys_compare`).
//!
//! A dump of all of a held namespace's listeners is answered by one exact lookup per TCP
//! listener it held at the last dump (a hash lookup, where a dump walks the listeners of every
//! namespace of the host: 10,000 of them for each of 100 namespaces) when the namespace's
//! counts prove that no other TCP listener exists: its TCP sockets in use (`sockstat`,
//! `sockstat6`: listeners and connections in the hash tables), less its ESTABLISHED and
//! CLOSE_WAIT ones (`Tcp:CurrEstab`), are exactly the listeners held. Any other socket (one
//! connecting, one closing) or a listener gone, replaced or unfound makes it a dump.
//!
//! Holding a namespace's socket keeps the namespace alive: the collector lets go of every one
//! its scrape did not list. A hold is renewed after `HELD_FOR`, so that files missing at the
//! first reading (connection tracking loaded later) are looked for again.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::{Listener, Netns};
use crate::source::diag::{Diag, Dump, Query};
use crate::source::netstat;

/// How long a namespace's handles are kept before they are opened afresh, plus up to a minute
/// by inode, so that namespaces first read together are not all opened again in one scrape.
const HELD_FOR: Duration = Duration::from_secs(300);

/// Descriptors the pool leaves to everything else (connections, `/proc` scans): it holds a
/// namespace only while its descriptors stay under the soft RLIMIT_NOFILE less this.
const FDS_LEFT: u64 = 1024;

/// What a namespace holds: its netlink socket, netstat, snmp, sockstat, sockstat6, the
/// conntrack statistics and eleven sysctls.
const FDS_PER_NAMESPACE: usize = 18;

/// The handles of one namespace, opened inside it.
pub(crate) struct Held {
    inode: u64,
    since: Instant,
    /// The namespace as its first reading said it.
    pub(super) netns: Option<Netns>,
    pub(super) diag: Option<Diag>,
    /// Each file by path, or the error its opening gave.
    files: Vec<(&'static str, std::result::Result<File, i32>)>,
    /// The TCP listeners of the last whole dump (address, inode), when each can be looked up
    /// exactly: None after a dump that showed an SO_REUSEPORT group (a lookup finds one member
    /// only) or that lookups were seen to miss.
    known: Option<Vec<(SocketAddr, u64)>>,
    /// `Tcp:CurrEstab` of the counters read just before the next dump; taken by it.
    pub(super) curr_estab: Option<u64>,
    /// The last lookups found other listeners than those held.
    missed: bool,
    /// Lookups found other listeners than a dump right after: not tried again.
    lookups_miss: bool,
    /// A file could not be opened for want of descriptors, or a dump failed: not kept for the
    /// next scrape.
    pub(super) incomplete: bool,
}

impl Held {
    pub(super) fn new(inode: u64) -> Held {
        Held {
            inode,
            since: Instant::now(),
            netns: None,
            diag: None,
            files: Vec::new(),
            known: None,
            curr_estab: None,
            missed: false,
            lookups_miss: false,
            incomplete: false,
        }
    }

    /// The text of the file at `path` from its kept descriptor; None when it was never opened
    /// (the caller enters the namespace, then `open`s it).
    pub(super) fn read(&self, path: &str) -> Option<std::io::Result<String>> {
        let (_, file) = self.files.iter().find(|(p, _)| *p == path)?;
        Some(match file {
            Ok(f) => read_at_start(f, path),
            Err(code) => Err(std::io::Error::from_raw_os_error(*code)),
        })
    }

    /// Opens `path` (the calling thread is in the namespace), keeps it, and reads it. A file
    /// that cannot be opened is kept as its error, but for want of descriptors.
    pub(super) fn open(&mut self, path: &str) -> std::io::Result<String> {
        match File::open(path) {
            Ok(f) => {
                let text = read_at_start(&f, path);
                self.files.push((interned(path), Ok(f)));
                text
            }
            Err(e) => match e.raw_os_error() {
                Some(nix::libc::EMFILE | nix::libc::ENFILE) | None => {
                    self.incomplete = true;
                    Err(e)
                }
                Some(code) => {
                    self.files.push((interned(path), Err(code)));
                    Err(e)
                }
            },
        }
    }

    /// The namespace's listeners by exact lookups, when `q` asks for all of them and the
    /// namespace's counts (`in_use`: TCP sockets in use, both families) prove none is new;
    /// None when a dump must answer.
    pub(super) fn by_lookups(&mut self, q: &Query, in_use: Option<u64>) -> Option<Dump> {
        let estab = self.curr_estab.take()?;
        let known = self.known.as_ref()?;
        if !whole_scope(q) || in_use?.checked_sub(estab)? != known.len() as u64 {
            return None;
        }
        let addrs: Vec<SocketAddr> = known.iter().map(|(a, _)| *a).collect();
        let lookups = Query {
            tcp: false,
            tcp_exact: &addrs,
            ..*q
        };
        let dump = self.diag.as_mut()?.dump(&lookups).ok()?;
        let tcp: Vec<&Listener> = dump
            .listeners
            .iter()
            .filter(|l| l.local.inet().is_some())
            .collect();
        let same = tcp.len() == known.len()
            && tcp
                .iter()
                .zip(known)
                .all(|(l, (_, inode))| l.inode == *inode);
        self.missed = !same;
        same.then_some(dump)
    }

    /// Learns the TCP listeners of a dump that answered `q`, for the next `by_lookups`.
    pub(super) fn learn(&mut self, q: &Query, dump: &Dump) {
        let looked_up = std::mem::take(&mut self.missed);
        if !whole_scope(q) {
            return;
        }
        let mut now: Vec<(SocketAddr, u64)> = dump
            .listeners
            .iter()
            .filter_map(|l| Some((l.local.inet()?, l.inode)))
            .collect();
        if looked_up && self.known.as_ref() == Some(&now) {
            // The same listeners, which lookups did not find (bound to a device, say).
            self.lookups_miss = true;
        }
        let mut addrs: Vec<SocketAddr> = now.iter().map(|(a, _)| *a).collect();
        addrs.sort_unstable();
        let group = addrs.windows(2).any(|w| w[0] == w[1]);
        self.known = (!group && !self.lookups_miss).then(|| std::mem::take(&mut now));
    }

    /// The descriptors it holds.
    fn fds(&self) -> usize {
        self.files.iter().filter(|(_, f)| f.is_ok()).count() + usize::from(self.diag.is_some())
    }

    /// Whether `by_lookups` may answer `q`: it asks for every listener, `learn` knows them,
    /// and the counters before it said `Tcp:CurrEstab`. Only then are the namespace's socket
    /// counts worth reading.
    pub(super) fn may_look_up(&self, q: &Query) -> bool {
        self.known.is_some() && self.curr_estab.is_some() && whole_scope(q)
    }
}

/// A query for every TCP listener of the namespace with its drops, nothing else of TCP: what
/// lookups can answer.
fn whole_scope(q: &Query) -> bool {
    q.tcp
        && q.drops
        && q.ports.is_empty()
        && !q.syn_recv
        && !q.established
        && q.outgoing.is_none()
        && q.tcp_exact.is_empty()
        && q.pending_of.is_empty()
}

/// `path` as a string kept for the process's life: the few paths of a namespace's readings
/// (some 20), held by every namespace, are not copied into each.
fn interned(path: &str) -> &'static str {
    static PATHS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut paths = PATHS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = paths.iter().find(|p| **p == path) {
        return p;
    }
    let kept: &'static str = Box::leak(path.to_string().into_boxed_str());
    paths.push(kept);
    kept
}

/// A `/proc` file's text from its start, however many reads it takes; one for the files
/// that give their whole text to one read large enough, whose short read is the end: a sysctl (`proc_sys_call_handler`), and the namespace files made of one record
/// (`single_open`: netstat, snmp, sockstat). 2,500 reads of 100 namespaces' ends were a
/// tenth of reading them, and a sysctl's handler allocates and zeroes a kernel buffer of
/// the size asked for (`kvzalloc(count + 1)`), 16 kB for a 5-byte value.
fn read_at_start(file: &File, path: &str) -> std::io::Result<String> {
    let sysctl = path.starts_with("/proc/sys/");
    let one = sysctl
        || [
            netstat::NETSTAT,
            netstat::SNMP,
            netstat::SOCKSTAT,
            netstat::SOCKSTAT6,
        ]
        .contains(&path);
    let mut text = Vec::new();
    let mut chunk = [0u8; 16384];
    let mut size = if sysctl { 256 } else { chunk.len() };
    loop {
        match file.read_at(&mut chunk[..size], text.len() as u64) {
            Ok(0) => break,
            // A longer sysctl than any of ours: a number's handler reads only from 0, so
            // again from there, all at once.
            Ok(n) if sysctl && n == size && size < chunk.len() => size = chunk.len(),
            Ok(n) => {
                text.extend_from_slice(&chunk[..n]);
                if one && n < size {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(text)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
}

/// The TCP sockets in use of both families, from the held `sockstat` texts.
pub(super) fn tcp_in_use(v4: &str, v6: Option<&str>) -> Option<u64> {
    let four = netstat::parse_sockstat_inuse(v4, "TCP:")?;
    let six = match v6 {
        Some(t) => netstat::parse_sockstat_inuse(t, "TCP6:")?,
        None => 0,
    };
    Some(four + six)
}

/// A pooled `Kernel`'s namespace handles, given back to the pool when it is done.
#[derive(Default)]
pub(crate) struct Slot {
    pool: Option<Pool>,
    pub(super) held: Option<Held>,
}

impl Slot {
    pub(super) fn new(pool: Pool) -> Slot {
        Slot {
            pool: Some(pool),
            held: None,
        }
    }

    pub(super) fn pool(&self) -> Option<&Pool> {
        self.pool.as_ref()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let (Some(pool), Some(held)) = (&self.pool, self.held.take())
            && !held.incomplete
        {
            pool.put(held);
        }
    }
}

/// The held namespaces between scrapes, by inode, and how many dumps lookups answered.
#[derive(Clone)]
pub(crate) struct Pool {
    held: Arc<Mutex<HashMap<u64, Held>>>,
    looked_up: Arc<AtomicU64>,
    /// Descriptors it may hold (`FDS_LEFT`).
    budget: usize,
    /// The counters its readers keep (`Pool::keeping`); None: all.
    pub(super) counters: Option<&'static HashSet<&'static str>>,
}

impl Default for Pool {
    fn default() -> Pool {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(0, |(soft, _)| soft);
        Pool {
            held: Arc::default(),
            looked_up: Arc::default(),
            budget: usize::try_from(soft.saturating_sub(FDS_LEFT)).unwrap_or(usize::MAX),
            counters: None,
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard one, as a long-running server that holds a few
/// descriptors per namespace should (systemd's soft default is 1,024; its hard one 524,288).
pub fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

impl Pool {
    /// A pool whose namespaces' counters are parsed only for these keys (the collector's
    /// metrics and what its sampler reads).
    pub(super) fn keeping(keys: &'static HashSet<&'static str>) -> Pool {
        Pool {
            counters: Some(keys),
            ..Pool::default()
        }
    }

    /// Whether one more namespace may be held.
    pub(super) fn room(&self) -> bool {
        let held: usize = self.lock().values().map(Held::fds).sum();
        held + FDS_PER_NAMESPACE <= self.budget
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A dump was answered by lookups.
    pub(super) fn looked_up(&self) {
        self.looked_up.fetch_add(1, Ordering::Relaxed);
    }

    /// Dumps answered by lookups so far.
    pub(crate) fn lookups(&self) -> u64 {
        self.looked_up.load(Ordering::Relaxed)
    }

    /// The namespace's handles, when held and not older than `HELD_FOR`.
    pub(super) fn take(&self, inode: u64) -> Option<Held> {
        let held = self.lock().remove(&inode)?;
        let life = HELD_FOR + Duration::from_secs(inode % 60);
        (held.since.elapsed() < life).then_some(held)
    }

    pub(super) fn put(&self, mut held: Held) {
        if let Some(d) = &mut held.diag {
            d.idle();
        }
        // Kept for minutes among a scrape's short-lived allocations: no spare room.
        held.files.shrink_to_fit();
        if let Some(k) = &mut held.known {
            k.shrink_to_fit();
        }
        self.lock().insert(held.inode, held);
    }

    /// Lets go of every namespace `keep` says no to.
    pub(crate) fn retain(&self, keep: impl Fn(u64) -> bool) {
        self.lock().retain(|inode, _| keep(*inode));
    }

    /// How many namespaces are held.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_sockets_in_use_add_both_families_and_a_missing_sockstat6_is_none_in_use() {
        let v4 = "sockets: used 9\nTCP: inuse 5 orphan 0 tw 12 alloc 7 mem 1\nUDP: inuse 0 mem 0\n";
        let v6 = "TCP6: inuse 3\nUDP6: inuse 0\n";
        assert_eq!(tcp_in_use(v4, Some(v6)), Some(8));
        assert_eq!(tcp_in_use(v4, None), Some(5));
        assert_eq!(tcp_in_use("UDP: inuse 0\n", Some(v6)), None);
        assert_eq!(tcp_in_use(v4, Some("TCP6: inuse x\n")), None);
    }
}
