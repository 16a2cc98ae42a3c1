//! Process attribution: which processes hold the listening sockets in scope — all of them,
//! as `ss -p` shows (websrv's master and workers, gunicorn's arbiter and workers). The kernel
//! keeps no socket → process index, so this reads `/proc/*/fd` links for `socket:[INODE]`,
//! matching only the inodes asked for, in two phases so that the cost follows the listeners,
//! not the connections:
//! 1. the first HEAD_FDS descriptors of every process: a server opens its listeners when it
//!    starts, and pre-fork workers inherit them at the same numbers, while the connections it
//!    accepts later take the numbers above;
//! 2. only for listeners still without a holder, the rest of the tables, the processes that
//!    already hold listeners first, stopping once every listener has one.
//!
//! Each link is read with readlinkat() relative to the open `/proc/PID/fd` directory (one
//! path component per descriptor). Processes that exit or deny access mid-scan are skipped;
//! when a listener stays unattributed because of denied access, the gap says so (another
//! user's `/proc/PID/fd` needs root, or CAP_DAC_READ_SEARCH to list it and CAP_SYS_PTRACE to
//! read its links). The holders found then get their name
//! and command line through procfs's `Process`, whose typed errors decide: a holder that exited
//! meanwhile is dropped; one whose name cannot be read stays, nameless, and the gap says why.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};

use std::io::Read;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, readlinkat};
use nix::sys::stat::Mode;
use procfs::ProcError;
use procfs::process::Process;

use crate::model::{Gap, Owner, ProcState, printable};

/// Descriptors per process read in the first phase (see the module comment).
const HEAD_FDS: usize = 32;

/// Owners of the given socket inodes, plus a gap when some could not be attributed or named.
pub fn owners(inodes: &HashSet<u64>) -> (Vec<Owner>, Option<Gap>) {
    if inodes.is_empty() {
        return (Vec::new(), None);
    }
    let pids = match pids() {
        Ok(pids) => pids,
        Err(e) => {
            return (
                Vec::new(),
                Some(Gap::new(
                    "process-owners",
                    format!("cannot list /proc: {e}"),
                )),
            );
        }
    };
    let mut scan = Scan::head(inodes, &pids);
    let late = scan.tail();
    scan.same_fds(&late);
    let mut named = Named::of(scan.held);
    let gap = named.gap(inodes, scan.denied);
    serving(&mut named.found);
    (named.found, gap)
}

/// Who serves a socket held by several processes (a master and its workers all hold every
/// listener, SO_REUSEPORT ones included): each holder's state and whether one of its epoll
/// sets watches the socket. Only for sockets with more than one holder: a lone holder is its
/// server, and each holder costs a read of its descriptor table's head and of its epoll sets.
fn serving(found: &mut [Owner]) {
    let mut holders: HashMap<u64, HashSet<u32>> = HashMap::new();
    for o in found.iter() {
        holders.entry(o.inode).or_default().insert(o.pid);
    }
    let mut wanted: BTreeMap<u32, HashSet<u64>> = BTreeMap::new();
    for o in found.iter() {
        if holders[&o.inode].len() > 1 {
            wanted.entry(o.pid).or_default().insert(o.inode);
        }
    }
    let seen: HashMap<u32, (Option<ProcState>, Watched)> = wanted
        .into_iter()
        .map(|(pid, inodes)| (pid, (state_of(pid), watched_by(pid, &inodes))))
        .collect();
    for o in found.iter_mut() {
        let Some((state, watched)) = seen.get(&o.pid) else {
            continue;
        };
        if holders[&o.inode].len() < 2 {
            continue;
        }
        o.state = *state;
        o.watches = if watched.inodes.contains(&o.inode) {
            Some(true)
        } else if watched.complete {
            Some(false)
        } else {
            None
        };
    }
}

/// `pid`'s state from `/proc/PID/stat`; None when it cannot be read.
fn state_of(pid: u32) -> Option<ProcState> {
    stat_state(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The state letter of a `/proc/PID/stat` line: the field after the name, which is in
/// parentheses and may hold spaces and parentheses itself, so it is found from the last `)`.
pub(crate) fn stat_state(stat: &str) -> Option<ProcState> {
    let rest = &stat[stat.rfind(')')? + 1..];
    ProcState::from_letter(rest.trim_start().chars().next()?)
}

/// The wanted sockets some epoll set of a process watches.
#[derive(Debug, Default)]
struct Watched {
    inodes: HashSet<u64>,
    /// Every descriptor and every epoll set was read: a wanted socket not in `inodes` is
    /// watched by none of them.
    complete: bool,
}

/// Descriptors looked at for epoll sets, at most: a server makes its epoll sets when it
/// starts, before its connections take the numbers above; a bigger table is read this far,
/// and what was not found there is unknown, not absent.
const EPOLL_FDS_AT_MOST: usize = 1024;

/// Which of `wanted` the epoll sets of `pid` watch. Each descriptor below the table's size
/// (`FDSize` in `/proc/PID/status`, `fdt->max_fds`: every open descriptor is below it), up to
/// EPOLL_FDS_AT_MOST, is read by number (readlinkat, as the owner scan does); for each one
/// that is `anon_inode:[eventpoll]`, its fdinfo lists what it watches, one `tfd:` line each
/// with the target's inode (`ep_show_fdinfo`, fs/eventpoll.c). A worker's epoll set watches
/// its connections too, so that file is read line by line, stopping once every wanted
/// socket is found.
fn watched_by(pid: u32, wanted: &HashSet<u64>) -> Watched {
    let mut w = Watched::default();
    let Some(size) = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| fd_table_size(&s))
    else {
        return w;
    };
    let Ok(dir) = fd_dir(format!("/proc/{pid}/fd").as_str()) else {
        return w;
    };
    let mut complete = size <= EPOLL_FDS_AT_MOST;
    for n in 0..size.min(EPOLL_FDS_AT_MOST) {
        let name = n.to_string();
        match readlinkat(&dir, name.as_str()) {
            Ok(link) if link.as_bytes() == EVENTPOLL => {}
            Ok(_) | Err(Errno::ENOENT) => continue,
            Err(_) => {
                complete = false;
                continue;
            }
        }
        let Ok(file) = std::fs::File::open(format!("/proc/{pid}/fdinfo/{n}")) else {
            complete = false;
            continue;
        };
        if epoll_targets(std::io::BufReader::new(file), wanted, &mut w.inodes).is_err() {
            complete = false;
        }
        if w.inodes.len() == wanted.len() {
            break;
        }
    }
    w.complete = complete;
    w
}

/// What an epoll descriptor's `/proc/PID/fd` link reads.
const EVENTPOLL: &[u8] = b"anon_inode:[eventpoll]";

/// `FDSize:` of `/proc/PID/status`.
pub(crate) fn fd_table_size(status: &str) -> Option<usize> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("FDSize:"))?
        .trim()
        .parse()
        .ok()
}

/// Adds to `found` the inodes of `wanted` that an epoll set's fdinfo lists, reading lines
/// until every wanted one is found.
fn epoll_targets(
    r: impl std::io::BufRead,
    wanted: &HashSet<u64>,
    found: &mut HashSet<u64>,
) -> std::io::Result<()> {
    for line in r.lines() {
        if let Some(inode) = epoll_target(&line?).filter(|i| wanted.contains(i)) {
            found.insert(inode);
            if found.len() == wanted.len() {
                break;
            }
        }
    }
    Ok(())
}

/// The target's inode of an epoll fdinfo line, `tfd: 7 events: 19 data: 7  pos:0 ino:69170
/// sdev:9`, where `ino` is hexadecimal (`%lx`); None for the header lines (`pos:`, `ino:` of
/// the epoll file itself, in decimal) and anything else.
pub(crate) fn epoll_target(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("tfd:")?;
    let hex = rest
        .split_whitespace()
        .find_map(|t| t.strip_prefix("ino:"))?;
    u64::from_str_radix(hex, 16).ok()
}

/// Every PID in `/proc`, in increasing order.
fn pids() -> std::io::Result<Vec<u32>> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// The descriptor scan's state across its phases (see the module comment).
struct Scan<'a> {
    /// The socket inodes asked for.
    inodes: &'a HashSet<u64>,
    /// Holders found so far, with the wanted inodes each holds (unsorted, maybe repeated).
    held: BTreeMap<u32, Vec<u64>>,
    /// Processes whose descriptors phase 1 could read, in increasing order; phase 2 puts
    /// the holders first.
    readable: Vec<u32>,
    /// Processes whose `/proc/PID/fd` could not be read.
    denied: usize,
}

impl<'a> Scan<'a> {
    /// Phase 1: every holder among the first descriptors of every process.
    fn head(inodes: &'a HashSet<u64>, pids: &[u32]) -> Scan<'a> {
        let mut scan = Scan {
            inodes,
            held: BTreeMap::new(),
            readable: Vec::new(),
            denied: 0,
        };
        for &pid in pids {
            match sockets_of(pid, inodes, Fds::Head) {
                Ok(mine) => {
                    scan.readable.push(pid);
                    if !mine.is_empty() {
                        scan.held
                            .insert(pid, mine.into_iter().map(|(i, _)| i).collect());
                    }
                }
                Err(Errno::EACCES | Errno::EPERM) => scan.denied += 1,
                Err(_) => {} // exited while we looked
            }
        }
        scan
    }

    /// Phase 2: the rest of the long tables, for listeners nobody holds yet; the processes
    /// that hold listeners first (a proxy with thousands of listeners past HEAD_FDS). Returns
    /// the listeners found here, with the process each was found in.
    fn tail(&mut self) -> Vec<(u32, Hit)> {
        let mut missing: HashSet<u64> = self.inodes.clone();
        for mine in self.held.values() {
            for i in mine {
                missing.remove(i);
            }
        }
        let held = &self.held;
        self.readable
            .sort_by_key(|pid| (!held.contains_key(pid), *pid));
        let mut late: Vec<(u32, Hit)> = Vec::new();
        for &pid in &self.readable {
            if missing.is_empty() {
                break;
            }
            let wanted = missing.clone();
            if let Ok(mine) = sockets_of(pid, &wanted, Fds::Tail(&mut missing)) {
                self.held
                    .entry(pid)
                    .or_default()
                    .extend(mine.iter().map(|(i, _)| *i));
                late.extend(mine.into_iter().map(|h| (pid, h)));
            }
        }
        late
    }

    /// A listener found late in one process is at the same number in the processes that
    /// inherited it (forked workers): read that one descriptor in every other process, so
    /// every holder is named, within a bound (a proxy's thousands of listeners would cost
    /// thousands of reads per process).
    fn same_fds(&mut self, late: &[(u32, Hit)]) {
        if late.is_empty() || late.len() > SAME_FD_AT_MOST {
            return;
        }
        for &q in &self.readable {
            let theirs: Vec<&Hit> = late
                .iter()
                .filter(|(p, _)| *p != q)
                .map(|(_, h)| h)
                .collect();
            let also = same_fds(q, &theirs);
            self.held.entry(q).or_default().extend(also);
        }
    }
}

/// The holders the scan found, named.
struct Named {
    found: Vec<Owner>,
    attributed: HashSet<u64>,
    /// Holders that exited between their descriptors and their name.
    gone: usize,
    /// Holders whose name could not be read, with why.
    unnamed: Vec<String>,
}

impl Named {
    /// Name and command line of every holder in `held`, one `Owner` per inode it holds.
    fn of(held: BTreeMap<u32, Vec<u64>>) -> Named {
        let mut named = Named {
            found: Vec::new(),
            attributed: HashSet::new(),
            gone: 0,
            unnamed: Vec::new(),
        };
        for (pid, mut mine) in held {
            mine.sort_unstable();
            mine.dedup();
            let meta = match meta(pid) {
                Ok(meta) => meta,
                // Gone before its name was read: not an owner any more.
                Err(Unread::Gone) => {
                    named.gone += 1;
                    continue;
                }
                // Its descriptors say it holds the socket, so it is kept as an owner,
                // nameless, and the gap says why.
                Err(why) => {
                    named.unnamed.push(format!("PID {pid}: {why}"));
                    Meta::default()
                }
            };
            for inode in mine {
                named.attributed.insert(inode);
                named.found.push(Owner {
                    inode,
                    pid,
                    comm: meta.comm.clone(),
                    cmdline: meta.cmdline.clone(),
                    ..Owner::default()
                });
            }
        }
        named
    }

    /// Why some of `inodes` have no owner, or an owner without a name; None when all do.
    /// `denied`: processes whose descriptors could not be read.
    fn gap(&self, inodes: &HashSet<u64>, denied: usize) -> Option<Gap> {
        let missing = inodes.len() - inodes.intersection(&self.attributed).count();
        let gone = self.gone;
        let mut why = Vec::new();
        if missing > 0 {
            why.push(if denied > 0 {
                format!(
                    "{missing} listener(s) without a known process: /proc/PID/fd of {denied} \
                     process(es) could not be read; {}",
                    fd_hint(
                        nix::unistd::geteuid().is_root(),
                        effective_caps()
                    )
                )
            } else if gone > 0 {
                format!(
                    "{missing} listener(s) without a known process: {gone} process(es) holding them \
                     exited during the scan"
                )
            } else {
                format!(
                    "{missing} listener(s) without a known process: no process in this PID \
                     namespace holds them (another container's, or the kernel's)"
                )
            });
        }
        if !self.unnamed.is_empty() {
            why.push(format!(
                "name and command line of {} owner(s) could not be read ({})",
                self.unnamed.len(),
                self.unnamed.join("; ")
            ));
        }
        (!why.is_empty()).then(|| Gap::new("process-owners", why.join("; ")))
    }
}

/// Why a process's metadata could not be read, from procfs's typed errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unread {
    /// It exited meanwhile: ENOENT opening a file under `/proc/PID`, or ESRCH reading one
    /// already open (`comm_show`, `proc_pid_cmdline_read` find no task).
    Gone,
    /// Permission denied: `/proc` mounted with `hidepid=`, or a security module.
    Denied,
    /// Anything else, with procfs's words (they name the path).
    Failed(String),
}

impl From<ProcError> for Unread {
    fn from(e: ProcError) -> Self {
        match e {
            ProcError::NotFound(_) => Unread::Gone,
            ProcError::PermissionDenied(_) => Unread::Denied,
            ProcError::Io(io, _) if io.raw_os_error() == Some(Errno::ESRCH as i32) => Unread::Gone,
            other => Unread::Failed(other.to_string()),
        }
    }
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::Gone => f.write_str("exited"),
            Unread::Denied => f.write_str("permission denied"),
            Unread::Failed(why) => f.write_str(why),
        }
    }
}

/// What `/proc` says about a process holding a listener.
#[derive(Debug, Default)]
struct Meta {
    comm: String,
    cmdline: String,
}

/// Name and command line of `pid`, both read through one open `/proc/PID` (procfs's
/// `Process`), so a PID reused between the two reads cannot mix two processes.
fn meta(pid: u32) -> Result<Meta, Unread> {
    let pid = i32::try_from(pid).map_err(|_| Unread::Failed(format!("PID {pid} out of range")))?;
    let p = Process::new(pid)?;
    Ok(Meta {
        comm: comm(&p)?,
        cmdline: cmdline(&p)?,
    })
}

/// `/proc/PID/comm` without its newline, read as bytes since prctl(PR_SET_NAME) takes any.
/// `stat().comm` gives the same bytes, but parses all 52 fields of `/proc/PID/stat` for them.
pub(crate) fn comm(p: &Process) -> Result<String, Unread> {
    let raw = read_bytes(p, "comm")?;
    let name = raw.strip_suffix(b"\n").unwrap_or(&raw);
    Ok(printable(&String::from_utf8_lossy(name)))
}

/// `/proc/PID/cmdline`, arguments joined by spaces; empty for kernel threads and zombies.
/// Not `Process::cmdline()`: it reads into a `String` and fails on an argument that is not
/// UTF-8 (a Latin-1 file name), which `ps` shows and so do we, lossily.
fn cmdline(p: &Process) -> Result<String, Unread> {
    Ok(joined_args(&read_bytes(p, "cmdline")?))
}

/// The text of `/proc/PID/cmdline`: its NUL-separated arguments, each made printable, joined
/// by spaces.
pub(crate) fn joined_args(raw: &[u8]) -> String {
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| printable(&String::from_utf8_lossy(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A whole file under the process's `/proc/PID`, opened relative to it.
fn read_bytes(p: &Process, name: &str) -> Result<Vec<u8>, ProcError> {
    let mut raw = Vec::new();
    p.open_relative(name)?.read_to_end(&mut raw)?;
    Ok(raw)
}

/// Descriptors of a tail read one after the other before the rest is split across threads.
const SERIAL_FDS: usize = 1024;

/// A wanted socket and the descriptor (its number, as /proc/PID/fd names it) it was found at.
type Hit = (u64, OsString);

/// At most this many listeners found in phase 2 are looked for in the other processes too.
const SAME_FD_AT_MOST: usize = 64;

/// Which descriptors of a process to read.
enum Fds<'a> {
    /// The first HEAD_FDS, every wanted inode among them.
    Head,
    /// The rest, until `missing` is empty, removing the inodes found from it.
    Tail(&'a mut HashSet<u64>),
}

// The hot path, and why it is not procfs's `Process::fd()` iterator (procfs 0.18): per
// descriptor that iterator opens the entry (openat O_PATH|O_NOFOLLOW), readlinkat()s and
// statat()s it, closes it, and allocates a path and an `FDInfo` with a parsed target: four
// system calls where this needs one. It also drops entries it cannot read, so a process that
// denies access (root without CAP_SYS_PTRACE) would pass for one without the listener, and a
// lazy iterator cannot be shared out to threads for a proxy's tens of thousands of descriptors.
// Measured on one process holding 10,004 socket descriptors (kernel 6.18, 2-vCPU VM, median of
// 15 rounds, scratch program not kept): readlinkat() relative to the open /proc/PID/fd
// 1.46 µs a descriptor (14.6 ms in all); `Process::fd()` 2.3 µs (23 ms); `fs::read_link` of
// `/proc/PID/fd/N` by full path 1.7 µs (17 ms). procfs is used for the few owners found
// (`meta`), not for the scan.
/// The wanted socket inodes among `pid`'s descriptors chosen by `which`. A tail bigger than
/// SERIAL_FDS is read by up to 4 threads: a proxy may hold tens of thousands of descriptors.
fn sockets_of(pid: u32, wanted: &HashSet<u64>, which: Fds) -> nix::Result<Vec<Hit>> {
    let table = FdTable::open(pid, wanted)?;
    let mine = match which {
        Fds::Head => table.head(),
        Fds::Tail(missing) => table.tail(missing)?,
    };
    if mine.is_empty() && table.denied.load(Ordering::Relaxed) {
        return Err(Errno::EACCES);
    }
    Ok(mine)
}

/// `/proc/PID/fd`, opened for readlinkat().
fn fd_dir(path: &str) -> nix::Result<OwnedFd> {
    open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// One process's descriptor table, open, and the socket inodes wanted from it.
struct FdTable<'a> {
    /// `/proc/PID/fd`, for listing it.
    path: String,
    dir: OwnedFd,
    wanted: &'a HashSet<u64>,
    /// Some descriptor could not be read (see `wanted_inode`); shared by the reading threads.
    denied: AtomicBool,
}

impl<'a> FdTable<'a> {
    fn open(pid: u32, wanted: &'a HashSet<u64>) -> nix::Result<FdTable<'a>> {
        let path = format!("/proc/{pid}/fd");
        let dir = fd_dir(&path)?;
        Ok(FdTable {
            path,
            dir,
            wanted,
            denied: AtomicBool::new(false),
        })
    }

    /// A wanted listener behind this descriptor. ENOENT is a descriptor closed meanwhile;
    /// EACCES/EPERM is a process we may list but not read (root without CAP_SYS_PTRACE, as
    /// in Docker's default set), which must not pass for a process without the listener.
    fn wanted_inode(&self, n: &OsString) -> Option<u64> {
        match readlinkat(&self.dir, n.as_os_str()) {
            Ok(link) => socket_inode(&link).filter(|i| self.wanted.contains(i)),
            Err(Errno::EACCES | Errno::EPERM) => {
                self.denied.store(true, Ordering::Relaxed);
                None
            }
            Err(_) => None,
        }
    }

    fn hit(&self, n: &OsString) -> Option<Hit> {
        self.wanted_inode(n).map(|inode| (inode, n.clone()))
    }

    fn read(&self, names: &[OsString]) -> Vec<Hit> {
        names.iter().filter_map(|n| self.hit(n)).collect()
    }

    /// Descriptors 0..HEAD_FDS by number, without listing the directory: listing
    /// /proc/PID/fd makes the kernel build an entry for every descriptor
    /// (`proc_readfd_common`), which costs as much as reading them, connections included.
    fn head(&self) -> Vec<Hit> {
        let head: Vec<OsString> = (0..HEAD_FDS)
            .map(|n| OsString::from(n.to_string()))
            .collect();
        self.read(&head)
    }

    /// The descriptors from HEAD_FDS on, until `missing` is empty, removing the inodes found
    /// from it: the first SERIAL_FDS one after the other, the rest split across threads.
    fn tail(&self, missing: &mut HashSet<u64>) -> nix::Result<Vec<Hit>> {
        let mut mine = Vec::new();
        // Listed in increasing order: the first ones, read in phase 1, are skipped.
        let mut names = std::fs::read_dir(&self.path)
            .map_err(|e| e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO))?
            .filter_map(|e| Some(e.ok()?.file_name()))
            .filter(|n| {
                n.to_str()
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_none_or(|n| n >= HEAD_FDS)
            });
        for n in names.by_ref().take(SERIAL_FDS) {
            if let Some((inode, n)) = self.hit(&n) {
                mine.push((inode, n));
                missing.remove(&inode);
                if missing.is_empty() {
                    break;
                }
            }
        }
        let tail: Vec<OsString> = if missing.is_empty() {
            Vec::new()
        } else {
            names.collect()
        };
        if !tail.is_empty() {
            let found = self.read_threaded(&tail);
            for (inode, _) in &found {
                missing.remove(inode);
            }
            mine.extend(found);
        }
        Ok(mine)
    }

    /// `read` of `tail` split across up to 4 threads.
    fn read_threaded(&self, tail: &[OsString]) -> Vec<Hit> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let chunk = tail.len().div_ceil(threads);
        std::thread::scope(|s| {
            let mut found = Vec::new();
            let mut handles = Vec::new();
            for part in tail.chunks(chunk) {
                // A thread that cannot be started (RLIMIT_NPROC) leaves its part here.
                match std::thread::Builder::new().spawn_scoped(s, move || self.read(part)) {
                    Ok(h) => handles.push(h),
                    Err(_) => found.extend(self.read(part)),
                }
            }
            for h in handles {
                // A panic stays one, as it would have been on this thread: taken for "none of
                // these descriptors is a socket", it would leave listeners unattributed
                // without a gap saying why.
                match h.join() {
                    Ok(hits) => found.extend(hits),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            found
        })
    }
}

/// The sockets of `hits` that `pid` holds at the same descriptor numbers.
fn same_fds(pid: u32, hits: &[&Hit]) -> Vec<u64> {
    let Ok(dir) = fd_dir(format!("/proc/{pid}/fd").as_str()) else {
        return Vec::new();
    };
    hits.iter()
        .filter(|(inode, n)| {
            readlinkat(&dir, n.as_os_str())
                .ok()
                .and_then(|l| socket_inode(&l))
                == Some(*inode)
        })
        .map(|(inode, _)| *inode)
        .collect()
}

/// `socket:[12345]` → 12345.
pub(crate) fn socket_inode(link: &OsStr) -> Option<u64> {
    std::str::from_utf8(link.as_bytes())
        .ok()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Capabilities that open another process's /proc/PID/fd: CAP_DAC_READ_SEARCH (2) and
/// CAP_SYS_PTRACE (19), as `proc_fd_access_allowed` asks ptrace_may_access().
const FD_CAPS: [(u32, &str); 2] = [(2, "CAP_DAC_READ_SEARCH"), (19, "CAP_SYS_PTRACE")];

/// This thread's effective capability set (`CapEff:` of /proc/thread-self/status).
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// What to do about descriptors that could not be read, by what actually refused: no
/// privilege (become root), a root without the capabilities (the container runtime dropped
/// them), or one with both (a security module, or processes of a parent user namespace).
fn fd_hint(root: bool, caps: Option<u64>) -> String {
    let lacking: Vec<&str> = match caps {
        Some(c) => FD_CAPS
            .iter()
            .filter(|(bit, _)| c & (1 << bit) == 0)
            .map(|(_, name)| *name)
            .collect(),
        None => FD_CAPS.iter().map(|(_, name)| *name).collect(),
    };
    match (root, lacking.is_empty()) {
        (false, false) => {
            "run as root (or with CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE) to see them".into()
        }
        (true, false) => format!(
            "this root process lacks {}: the container runtime or a parent user namespace took \
             it away (add it, e.g. `--cap-add SYS_PTRACE`, to see them)",
            lacking.join(" and ")
        ),
        (_, true) => "refused even with CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE: a security module \
                      (AppArmor, SELinux, Yama ptrace_scope 3) or processes of a parent user \
                      namespace keep them hidden"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_descriptor_hint_says_what_refused() {
        let all = (1u64 << 2) | (1 << 19);
        assert!(fd_hint(false, Some(0)).starts_with("run as root"));
        let dropped = fd_hint(true, Some(1 << 2));
        assert!(dropped.contains("lacks CAP_SYS_PTRACE:"), "{dropped}");
        assert!(!dropped.contains("run as root"), "{dropped}");
        for root in [true, false] {
            let full = fd_hint(root, Some(all));
            assert!(full.contains("security module"), "{full}");
        }
        // The capability set unread: as if none were held.
        assert!(fd_hint(true, None).contains("lacks CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE"));
        assert!(effective_caps().is_some(), "CapEff of this thread");
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(OsStr::new("socket:[4026]")), Some(4026));
        assert_eq!(socket_inode(OsStr::new("pipe:[4026]")), None);
        assert_eq!(socket_inode(OsStr::new("socket:[]")), None);
        assert_eq!(socket_inode(OsStr::new("/dev/null")), None);
    }

    /// `/proc/2864/fdinfo/13` of an websrv 1.22.1 worker (`worker_processes 4`, `listen
    /// 127.0.0.1:8080 reuseport`), kernel 6.18.44: its eventfd, its channel to the master and
    /// one of the four listeners, inode 543717 = 0x84be5 (`ss -e` ino:543717).
    const NGINX_WORKER_EPOLL: &str = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\n\
        tfd:       14 events: 80000019 data:     56407e920340  pos:0 ino:40e sdev:10\n\
        tfd:       12 events:     2019 data:     7f6d10111100  pos:0 ino:84734 sdev:9\n\
        tfd:        5 events:     2019 data:     7f6d10111010  pos:0 ino:84be5 sdev:9\n";

    #[test]
    fn an_epoll_sets_targets_are_read_by_inode_in_hex() {
        let targets: Vec<u64> = NGINX_WORKER_EPOLL
            .lines()
            .filter_map(epoll_target)
            .collect();
        assert_eq!(targets, [0x40e, 542516, 543717]);
        // The epoll file's own `ino:` (decimal, a header line) is not a target.
        assert_eq!(epoll_target("ino:\t1038"), None);
        // EPOLLEXCLUSIVE (python3 on 6.18), a truncated line, an unparsable inode.
        assert_eq!(
            epoll_target(
                "tfd:        3 events: 10000019 data:                3  pos:0 ino:69170 sdev:9"
            ),
            Some(430448)
        );
        assert_eq!(epoll_target("tfd:        3 events: 10000019 data:"), None);
        assert_eq!(epoll_target("tfd: 3 ino:zz sdev:9"), None);
        assert_eq!(epoll_target(""), None);

        let wanted: HashSet<u64> = [543716, 543717].into();
        let mut found = HashSet::new();
        epoll_targets(NGINX_WORKER_EPOLL.as_bytes(), &wanted, &mut found).unwrap();
        assert_eq!(found, [543717].into());
    }

    #[test]
    fn a_process_state_is_the_letter_after_its_name() {
        // /proc/2864/stat of that worker, then SIGSTOPped (kernel 6.18.44).
        let worker = "2864 (websrv) S 2861 2861 2861 0 -1 4194624 215 0 0 0 0 0 0 0 20 0 1 0 \
                      210163 12255232 1004 18446744073709551615";
        assert_eq!(stat_state(worker), Some(ProcState::Sleeping));
        assert_eq!(
            stat_state(&worker.replace(") S ", ") T ")),
            Some(ProcState::Stopped)
        );
        // A name may hold spaces and parentheses (prctl PR_SET_NAME).
        assert_eq!(
            stat_state("77 (a) Z (b) D 1 77 77"),
            Some(ProcState::DiskSleep)
        );
        assert_eq!(stat_state("77 (websrv"), None);
        assert_eq!(stat_state("77 (websrv) "), None);
        assert_eq!(stat_state("77 (websrv) ? 1"), None);
        assert_eq!(stat_state(""), None);
    }

    #[test]
    fn the_fd_table_size_bounds_the_descriptors_read() {
        let status =
            "Name:\twebsrv\nUmask:\t0022\nState:\tS (sleeping)\nFDSize:\t256\nGroups:\t0\n";
        assert_eq!(fd_table_size(status), Some(256));
        assert_eq!(fd_table_size("Name:\twebsrv\n"), None);
        assert_eq!(fd_table_size("FDSize:\tmany\n"), None);
    }

    #[test]
    fn this_process_watches_its_listener_in_its_epoll_set() {
        use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let other = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let inode = |fd: i32| {
            let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).expect("fd link");
            socket_inode(link.as_os_str()).expect("a socket")
        };
        let (mine, theirs) = (inode(l.as_raw_fd()), inode(other.as_raw_fd()));
        let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).expect("epoll");
        ep.add(&l, EpollEvent::new(EpollFlags::EPOLLIN, 0))
            .expect("epoll_ctl");
        let w = watched_by(std::process::id(), &[mine, theirs].into());
        assert!(w.inodes.contains(&mine), "{w:?}");
        assert!(!w.inodes.contains(&theirs), "{w:?}");
        // The main thread's state: running, or sleeping while the test threads run.
        assert!(state_of(std::process::id()).is_some());
    }

    #[test]
    fn procfs_errors_say_gone_denied_or_why() {
        let gone = || ProcError::NotFound(Some("/proc/1234/comm".into()));
        assert_eq!(Unread::from(gone()), Unread::Gone);
        let esrch = std::io::Error::from_raw_os_error(Errno::ESRCH as i32);
        assert_eq!(Unread::from(ProcError::Io(esrch, None)), Unread::Gone);
        assert_eq!(
            Unread::from(ProcError::PermissionDenied(None)),
            Unread::Denied
        );
        let eio = std::io::Error::from_raw_os_error(Errno::EIO as i32);
        assert!(matches!(
            Unread::from(ProcError::Io(eio, Some("/proc/1/cmdline".into()))),
            Unread::Failed(why) if why.contains("/proc/1/cmdline")
        ));
    }

    #[test]
    fn meta_of_this_process_is_what_proc_says() {
        let me = std::process::id();
        let m = meta(me).expect("our own /proc/PID");
        let comm = std::fs::read_to_string("/proc/self/comm").expect("comm");
        assert_eq!(m.comm, comm.trim_end_matches('\n'));
        let exe = std::env::args().next().expect("argv[0]");
        assert!(m.cmdline.starts_with(&exe), "{} / {exe}", m.cmdline);
    }

    #[test]
    fn meta_of_a_pid_that_cannot_exist_is_gone() {
        // PID_MAX_LIMIT (include/linux/threads.h) is 4194304 on 64-bit.
        assert_eq!(meta(4_194_305).unwrap_err(), Unread::Gone);
        assert!(matches!(meta(u32::MAX), Err(Unread::Failed(_))));
    }

    #[test]
    fn names_that_are_not_utf8_are_kept_lossily() {
        use std::os::unix::ffi::OsStrExt;
        // sh stays (a builtin follows sleep) with a Latin-1 byte as its $0.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; :"])
            .arg(OsStr::from_bytes(b"caf\xe9"))
            .spawn()
            .expect("sh");
        // spawn() returns once exec has switched to the new memory map (begin_new_exec,
        // fs/exec.c), before the ELF loader sets its arg_start (create_elf_tables): until then
        // cmdline reads empty, as observed here. Wait on that state.
        let mut m = meta(child.id());
        for _ in 0..1000 {
            if !matches!(&m, Ok(m) if m.cmdline.is_empty()) {
                break;
            }
            std::thread::yield_now();
            m = meta(child.id());
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            m.expect("child's /proc").cmdline,
            "sh -c sleep 30; : caf\u{fffd}"
        );

        // comm too: prctl(PR_SET_NAME) and /proc/PID/task/TID/comm take any bytes.
        let name = std::thread::spawn(|| {
            std::fs::write("/proc/thread-self/comm", b"bl\xfftest").expect("set own comm");
            let task = std::fs::read_link("/proc/thread-self").expect("thread-self");
            let p =
                Process::new_with_root(std::path::Path::new("/proc").join(task)).expect("own task");
            comm(&p)
        })
        .join()
        .expect("thread");
        assert_eq!(name, Ok("bl\u{fffd}test".to_string()));
    }
}
