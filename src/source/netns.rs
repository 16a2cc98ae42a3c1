//! Network namespaces: which one the calling thread is in, entering another (`--netns`,
//! `--pid`), and finding them all (`--all-netns`). Namespaces are per thread: `enter` must run
//! on the thread that will then open the netlink socket and read `/proc/thread-self/net`, before
//! it opens any; the sources then need no change. The walk of every process for `--all-netns`
//! goes through procfs's `all_processes()`, whose typed errors tell a process that exited (not a
//! member) from one whose namespace or name we may not read (a gap).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use procfs::process::Process;

use crate::error::{Error, Result};
use crate::model::{Gap, Netns};
use crate::source::procs::{self, Unread};

/// Where `ip netns add NAME` puts its namespaces.
pub const NAMED_DIR: &str = "/run/netns";

/// A namespace the user pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// A name under /run/netns, or a path to an nsfs file (/proc/PID/ns/net, a bind mount).
    Named(String),
    /// The namespace of this process.
    Pid(u32),
}

impl Which {
    pub fn path(&self) -> PathBuf {
        match self {
            Which::Named(s) if s.contains('/') => PathBuf::from(s),
            Which::Named(s) => Path::new(NAMED_DIR).join(s),
            Which::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        }
    }
}

thread_local! {
    /// How the calling thread entered its namespace, for `current` (namespaces are per thread).
    static ENTERED: std::cell::RefCell<Option<Which>> = const { std::cell::RefCell::new(None) };
}

/// Moves the calling thread into the network namespace `which` (setns(2), CLONE_NEWNET).
pub fn enter(which: &Which) -> Result<()> {
    enter_ns(which)?;
    ENTERED.with(|e| *e.borrow_mut() = Some(which.clone()));
    Ok(())
}

/// Checks that `which` names a namespace this process may open, without entering it: for
/// commands that enter it later, on other threads (`exporter --netns`).
pub fn check(which: &Which) -> Result<()> {
    open(which).map(drop)
}

fn open(which: &Which) -> Result<File> {
    let path = which.path();
    File::open(&path).map_err(|e| match (which, e.kind()) {
        (Which::Pid(pid), std::io::ErrorKind::NotFound) => Error::BadInput(format!(
            "no process with PID {pid}: cannot enter its network namespace"
        )),
        (Which::Named(name), std::io::ErrorKind::NotFound) if !name.contains('/') => {
            Error::BadInput(format!(
                "no network namespace named {name:?} (no {}); `ip netns list` shows the names, \
             or give a path such as /proc/PID/ns/net",
                path.display()
            ))
        }
        (_, std::io::ErrorKind::PermissionDenied) => Error::Permission {
            what: format!("opening {}", path.display()),
            hint: "another user's namespace needs root, or CAP_SYS_PTRACE for /proc/PID/ns".into(),
        },
        _ => Error::read(&path, e),
    })
}

fn enter_ns(which: &Which) -> Result<()> {
    use nix::sched::{CloneFlags, setns};
    let path = which.path();
    let file = open(which)?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| match e {
        nix::errno::Errno::EPERM => Error::Permission {
            what: format!("entering the network namespace {}", path.display()),
            hint: "setns(2) needs CAP_SYS_ADMIN; run as root".into(),
        },
        nix::errno::Errno::EINVAL => {
            Error::BadInput(format!("{} is not a network namespace", path.display()))
        }
        other => Error::read(&path, std::io::Error::from(other)),
    })
}

/// A process seen in a namespace, with the container it belongs to when its cgroup says so.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub pid: u32,
    /// `/proc/PID/comm`; absent (and left out of JSON) when it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// The cgroup path (cgroup v2 line of /proc/PID/cgroup); absent when the process has no
    /// v2 line (a cgroup v1 only host) or the file could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// A container id (64 hex digits) found in the cgroup path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// Every distinct network namespace on the host, by inode: the named ones and those of
/// running processes. Each entry: a path to enter it by, its names, its processes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    pub inode: u64,
    #[serde(skip)]
    pub path: PathBuf,
    pub names: Vec<String>,
    pub processes: Vec<Member>,
}

/// What a walk of `/proc` learnt of each process, for the next walk (the exporter's, at every
/// scrape): a process whose PID and network namespace are the ones it had is not read again
/// (its name and cgroup) for `MEMBER_FOR`. On a node of 1,000 processes that is 6,000 system
/// calls a scrape fewer.
#[derive(Debug, Default)]
pub struct Members(HashMap<u32, (u64, Instant, Member)>);

/// How long a process's name and cgroup are taken from the last walk.
const MEMBER_FOR: Duration = Duration::from_secs(60);

/// Every network namespace that can be seen, and gaps for what could not: processes whose
/// namespace is hidden from us (another user's without root; PID 1 of some sandboxes even to
/// root), and members whose name or cgroup could not be read. Processes that exit during the
/// walk are simply not members.
pub fn all() -> (Vec<Found>, Vec<Gap>) {
    all_with(&mut Members::default())
}

/// `all`, the processes `known` from an earlier walk taken from it, and the walk's kept there.
pub fn all_with(known: &mut Members) -> (Vec<Found>, Vec<Gap>) {
    let mut by_inode: BTreeMap<u64, Found> = BTreeMap::new();
    let mut gaps = Vec::new();
    fn add(by_inode: &mut BTreeMap<u64, Found>, inode: u64, path: PathBuf) -> &mut Found {
        by_inode.entry(inode).or_insert_with(|| Found {
            inode,
            path,
            names: Vec::new(),
            processes: Vec::new(),
        })
    }
    match std::fs::read_dir(NAMED_DIR) {
        Ok(dir) => {
            for e in dir.flatten() {
                let path = e.path();
                if let Ok(meta) = std::fs::metadata(&path) {
                    let name = e.file_name().to_string_lossy().into_owned();
                    add(&mut by_inode, meta.ino(), path).names.push(name);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // no `ip netns add` yet
        Err(e) => gaps.push(Gap::new(
            "named-netns",
            format!("cannot list {NAMED_DIR}: {e}"),
        )),
    }
    let processes = match procfs::process::all_processes() {
        Ok(p) => p,
        Err(e) => {
            gaps.push(Gap::new(
                "netns-processes",
                format!("cannot list /proc: {e}"),
            ));
            return (by_inode.into_values().collect(), gaps);
        }
    };
    let mut hidden = Tally::default();
    let mut unread = Tally::default();
    let mut seen = HashSet::new();
    for p in processes {
        let pid = p.as_ref().ok().and_then(|p| u32::try_from(p.pid).ok());
        seen.extend(pid);
        match p
            .map_err(Unread::from)
            .and_then(|p| member(&p, &mut unread, known))
        {
            Ok(Some((inode, m))) => {
                let path = PathBuf::from(format!("/proc/{}/ns/net", m.pid));
                add(&mut by_inode, inode, path).processes.push(m);
            }
            Ok(None) | Err(Unread::Gone) => {} // exited meanwhile: no process of ours
            Err(why) => hidden.add(pid, why),
        }
    }
    if let Some(why) = hidden.said("network namespace unknown for") {
        // /proc/PID/ns/net asks ptrace_may_access() (`proc_ns_get_link`, fs/proc/namespaces.c).
        let hint = if nix::unistd::geteuid().is_root() {
            "denied even to root: a process of a parent user namespace, or a security module"
        } else {
            "root (or CAP_SYS_PTRACE) sees another user's /proc/PID/ns/net"
        };
        gaps.push(Gap::new("netns-processes", format!("{why}; {hint}")));
    }
    if let Some(why) = unread.said("name or cgroup unread for") {
        gaps.push(Gap::new("netns-members", why));
    }
    known.0.retain(|pid, _| seen.contains(pid));
    (by_inode.into_values().collect(), gaps)
}

/// One process of the walk: its network namespace's inode and what it is; None when it exited
/// meanwhile, Err when its namespace cannot be read. A name or cgroup that cannot be read is
/// left absent and counted in `unread`.
fn member(
    p: &Process,
    unread: &mut Tally,
    known: &mut Members,
) -> Result<Option<(u64, Member)>, Unread> {
    let Ok(pid) = u32::try_from(p.pid) else {
        return Err(Unread::Failed(format!("PID {} out of range", p.pid)));
    };
    let inode = net_inode(p)?;
    if let Some((was, at, m)) = known.0.get(&pid)
        && *was == inode
        && at.elapsed() < MEMBER_FOR
    {
        return Ok(Some((inode, m.clone())));
    }
    let missed = unread.count();
    let comm = match procs::comm(p) {
        Ok(comm) => Some(comm),
        Err(Unread::Gone) => return Ok(None),
        Err(why) => {
            unread.add(Some(pid), why);
            None
        }
    };
    let cgroup = match p.cgroups().map_err(Unread::from) {
        // The unified hierarchy: ID 0, no controllers (cgroups(7)).
        Ok(groups) => groups
            .into_iter()
            .find(|g| g.hierarchy == 0 && g.controllers.is_empty())
            .map(|g| g.pathname),
        Err(Unread::Gone) => return Ok(None),
        Err(why) => {
            unread.add(Some(pid), why);
            None
        }
    };
    let container = cgroup.as_deref().and_then(container_id);
    let m = Member {
        pid,
        comm,
        cgroup,
        container,
    };
    // What could not be read is read again, and said again, at the next walk.
    if unread.count() == missed {
        known.0.insert(pid, (inode, Instant::now(), m.clone()));
    }
    Ok(Some((inode, m)))
}

/// Inode of a process's network namespace: `/proc/PID/ns/net` opened relative to its
/// `/proc/PID`, then fstat. Not `Process::namespaces()`: it stats every namespace type, and
/// turns a failed stat (EACCES for another user's process; for PID 1 of a sandbox even as root)
/// into an internal error, where this keeps procfs's PermissionDenied / NotFound.
fn net_inode(p: &Process) -> Result<u64, Unread> {
    let file = p.open_relative("ns/net")?;
    let meta = file.metadata().map_err(procfs::ProcError::from)?;
    Ok(meta.ino())
}

/// Processes some part of which could not be read, counted by reason with a few PIDs each.
#[derive(Default)]
struct Tally {
    /// Reason → (how many, the PIDs known; an unopenable `/proc/PID` names its path instead).
    by_reason: BTreeMap<String, (usize, Vec<u32>)>,
}

impl Tally {
    /// Processes counted so far.
    fn count(&self) -> usize {
        self.by_reason.values().map(|(n, _)| n).sum()
    }

    fn add(&mut self, pid: Option<u32>, why: Unread) {
        let (count, pids) = self.by_reason.entry(why.to_string()).or_default();
        *count += 1;
        pids.extend(pid);
    }

    /// `network namespace unknown for 3 process(es) (permission denied: PID 1, 2, 3)`.
    fn said(&self, what: &str) -> Option<String> {
        if self.by_reason.is_empty() {
            return None;
        }
        let total: usize = self.by_reason.values().map(|(n, _)| n).sum();
        let reasons: Vec<String> = self
            .by_reason
            .iter()
            .map(|(why, (_, pids))| {
                if pids.is_empty() {
                    return why.clone();
                }
                let shown: Vec<String> = pids.iter().take(5).map(u32::to_string).collect();
                let more = if pids.len() > 5 { ", ..." } else { "" };
                format!("{why}: PID {}{more}", shown.join(", "))
            })
            .collect();
        Some(format!(
            "{what} {total} process(es) ({})",
            reasons.join("; ")
        ))
    }
}

/// A 64-hex-digit container id in a cgroup path: `/docker/<id>`, `docker-<id>.scope`,
/// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`.
pub fn container_id(cgroup: &str) -> Option<String> {
    cgroup
        .split(['/', '-', '.', ':'])
        .find(|p| p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
}

/// `init_net` has had this fixed inode since NET_NS_INIT_INO (`include/uapi/linux/nsfs.h`,
/// `net_ns_net_init` in `net/core/net_namespace.c`, 6.18); before, it was numbered like any other.
const NET_NS_INIT_INO: u64 = 0xEFFF_FFF9;

/// Inode of the initial (host) network namespace, when it can be told: fixed from 6.18 on,
/// else that of PID 1 or of kthreadd when we see the host's PIDs (a pod with `hostPID`, on its
/// own network or not). None otherwise: older kernels vary the inode.
pub fn initial_inode() -> Option<u64> {
    let host_pids = || ns_inode_of("/proc/thread-self/ns/pid", "pid") == Some(PROC_PID_INIT_INO);
    let kthreadd = || {
        let comm = std::fs::read_to_string("/proc/2/comm").ok()?;
        Some((comm.trim_end_matches('\n').to_string(), inode_of_pid(2)?))
    };
    initial_from(fixed_init_inode(), host_pids, || inode_of_pid(1), kthreadd)
}

/// `initial_inode`'s decision, apart from /proc: `host_pids` tells whether we are in the
/// initial PID namespace, `init` gives PID 1's network namespace, `kthreadd` PID 2's name and
/// network namespace; each is asked only when needed.
fn initial_from(
    fixed: bool,
    host_pids: impl FnOnce() -> bool,
    init: impl FnOnce() -> Option<u64>,
    kthreadd: impl FnOnce() -> Option<(String, u64)>,
) -> Option<u64> {
    if fixed {
        return Some(NET_NS_INIT_INO);
    }
    // PIDs 1 and 2 are the host's init and kthreadd only in the initial PID namespace (fixed
    // inode since 3.8); in a container PID 1 is the container's init, in its network namespace.
    if !host_pids() {
        return None;
    }
    // /proc/1/ns/net needs ptrace access to init, which some sandboxes deny even to root with
    // CAP_SYS_PTRACE; kthreadd (PID 2, `rest_init` in init/main.c) has no mm to guard and, as
    // every kernel thread, lives in init_net (`init_nsproxy`).
    init().or_else(|| kthreadd().and_then(|(comm, inode)| (comm == "kthreadd").then_some(inode)))
}

/// The addresses of the calling thread's namespace's interfaces (`getifaddrs`, a netlink
/// dump opened now, so in this thread's namespace); None when they cannot be listed.
pub fn local_addresses() -> Option<Vec<std::net::IpAddr>> {
    let mut out: Vec<std::net::IpAddr> = nix::ifaddrs::getifaddrs()
        .ok()?
        .filter_map(|i| {
            let a = i.address?;
            if let Some(v4) = a.as_sockaddr_in() {
                Some(std::net::IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip()))
            }
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// Inode of the calling thread's network namespace, and whether it is the initial (host) one.
pub fn current() -> Netns {
    let inode = ns_inode("/proc/thread-self/ns/net");
    let initial = match inode {
        Some(NET_NS_INIT_INO) => Some(true),
        Some(mine) => initial_inode().map(|init| init == mine),
        None => None,
    };
    let names = inode.map(names_of).unwrap_or_default();
    // How it was entered: commands that must run in it (fixes) enter it the same way.
    let (pid, path) = match ENTERED.with(|e| e.borrow().clone()) {
        Some(Which::Pid(pid)) => (Some(pid), None),
        Some(Which::Named(p)) if p.contains('/') => {
            let pid = p
                .strip_prefix("/proc/")
                .and_then(|r| r.strip_suffix("/ns/net"))
                .and_then(|n| n.parse().ok());
            match pid {
                Some(pid) => (Some(pid), None),
                None => (None, Some(p)),
            }
        }
        _ => (None, None),
    };
    Netns {
        inode,
        initial,
        names,
        pid,
        path,
    }
}

/// Names under /run/netns that refer to the namespace with this inode. The directory is read
/// again only when its modification time changes (`ip netns add` and `del` create and remove
/// entries): an exporter records a hundred namespaces per scrape, each of which would otherwise
/// stat every name.
fn names_of(inode: u64) -> Vec<String> {
    /// The directory's mtime, when it was listed, and the listing.
    type Names = (
        std::time::SystemTime,
        std::time::Instant,
        BTreeMap<u64, Vec<String>>,
    );
    static CACHE: std::sync::Mutex<Option<Names>> = std::sync::Mutex::new(None);
    let Ok(modified) = std::fs::metadata(NAMED_DIR).and_then(|m| m.modified()) else {
        return Vec::new();
    };
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    // `ip netns add` creates the file, then bind-mounts the namespace on it: the mount does not
    // touch the directory, so a listing made between the two is trusted only for a moment.
    let fresh = |(at, read, _): &Names| {
        *at == modified && read.elapsed() < std::time::Duration::from_secs(5)
    };
    if !cache.as_ref().is_some_and(fresh) {
        let mut by_inode: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir(NAMED_DIR) {
            for e in dir.flatten() {
                if let Ok(m) = std::fs::metadata(e.path()) {
                    by_inode
                        .entry(m.ino())
                        .or_default()
                        .push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        for names in by_inode.values_mut() {
            names.sort();
        }
        *cache = Some((modified, std::time::Instant::now(), by_inode));
    }
    cache
        .as_ref()
        .and_then(|(_, _, m)| m.get(&inode).cloned())
        .unwrap_or_default()
}

/// Whether this kernel numbers init_net with NET_NS_INIT_INO (6.18 and later).
fn fixed_init_inode() -> bool {
    let Some(release) = crate::source::sysctl::kernel_release() else {
        return false;
    };
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    matches!((parts.next(), parts.next()), (Some(major), Some(minor)) if (major, minor) >= (6, 18))
}

/// `PROC_PID_INIT_INO` (`include/linux/proc_ns.h`).
const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;

/// The network namespace a process lives in (`/proc/PID/ns/net` → `net:[INODE]`); None once
/// it has exited or cannot be read.
pub fn inode_of_pid(pid: u32) -> Option<u64> {
    ns_inode(&format!("/proc/{pid}/ns/net"))
}

/// `net:[4026531840]` → 4026531840.
/// The inode of the network namespace a `/proc/.../ns/net` link points to.
pub fn ns_inode(link: &str) -> Option<u64> {
    ns_inode_of(link, "net")
}

fn ns_inode_of(link: &str, kind: &str) -> Option<u64> {
    link_inode(std::fs::read_link(link).ok()?.to_str()?, kind)
}

/// The inode a namespace link's text names: `net:[4026531840]` of kind `net` → 4026531840.
pub(crate) fn link_inode(target: &str, kind: &str) -> Option<u64> {
    target
        .strip_prefix(kind)?
        .strip_prefix(":[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Brings the loopback interface of the calling thread's namespace up (a new namespace starts
/// with `lo` down): SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP.
pub fn loopback_up() -> std::io::Result<()> {
    use nix::libc;
    use std::io::Error;
    // SAFETY: plain socket/ioctl calls on a zeroed `ifreq` we own; the fd is closed on all paths.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(Error::last_os_error());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut res = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr);
        if res == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            res = libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &ifr);
        }
        let err = Error::last_os_error();
        libc::close(fd);
        if res < 0 { Err(err) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second walk takes a process whose PID and namespace are unchanged from the first
    /// (here marked so that it shows), and reads again one whose namespace changed.
    #[test]
    fn a_walk_takes_unchanged_processes_from_the_last_one() {
        let mut known = Members::default();
        all_with(&mut known);
        let me = std::process::id();
        let Some((inode, _, m)) = known.0.get_mut(&me) else {
            return; // our own /proc/PID/ns/net hidden from us: nothing to take
        };
        let (inode, real) = (*inode, m.comm.clone());
        m.comm = Some("from-the-last-walk".into());
        let ours = |found: &[Found]| {
            let m = found
                .iter()
                .flat_map(|f| &f.processes)
                .find(|m| m.pid == me);
            m.and_then(|m| m.comm.clone())
        };
        assert_eq!(
            ours(&all_with(&mut known).0).as_deref(),
            Some("from-the-last-walk")
        );
        if let Some((was, _, m)) = known.0.get_mut(&me) {
            m.comm = Some("from-the-last-walk".into());
            *was = inode.wrapping_add(1);
        }
        assert_eq!(
            ours(&all_with(&mut known).0),
            real,
            "namespace changed: read again"
        );
    }

    #[test]
    fn the_walk_finds_this_process_with_its_name_and_cgroup() {
        let (found, _gaps) = all();
        let me = std::process::id();
        let mine = ns_inode("/proc/self/ns/net").expect("own namespace");
        let ns = found
            .iter()
            .find(|f| f.processes.iter().any(|p| p.pid == me))
            .expect("this process is in the walk");
        assert_eq!(ns.inode, mine);
        let member = ns.processes.iter().find(|p| p.pid == me).expect("member");
        let comm = std::fs::read_to_string("/proc/self/comm").expect("comm");
        assert_eq!(member.comm.as_deref(), Some(comm.trim_end_matches('\n')));
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").expect("cgroup");
        let v2 = cgroup.lines().find_map(|l| l.strip_prefix("0::"));
        assert_eq!(member.cgroup.as_deref(), v2);
        // Deduplicated by inode: one entry per namespace.
        let mut inodes: Vec<u64> = found.iter().map(|f| f.inode).collect();
        inodes.dedup();
        assert_eq!(inodes.len(), found.len());
    }

    #[test]
    fn the_initial_namespace_is_fixed_or_pid_1s_or_kthreadds() {
        let kthreadd = || Some(("kthreadd".to_string(), 9));
        let unasked = || -> Option<u64> { panic!("PID 1 asked on a kernel with a fixed inode") };
        // 6.18 and later: the fixed inode, whatever /proc says.
        assert_eq!(
            initial_from(true, || false, unasked, kthreadd),
            Some(NET_NS_INIT_INO)
        );
        // Older: PID 1's in the host's PID namespace, kthreadd's when init is hidden.
        assert_eq!(initial_from(false, || true, || Some(7), kthreadd), Some(7));
        assert_eq!(initial_from(false, || true, || None, kthreadd), Some(9));
        // PID 2 counts only when it is kthreadd; outside the host's PID namespace, nothing does.
        let not_kthreadd = || Some(("sh".to_string(), 9));
        assert_eq!(initial_from(false, || true, || None, not_kthreadd), None);
        assert_eq!(initial_from(false, || false, || Some(7), kthreadd), None);
    }

    /// On this machine, in the host's PID namespace: kthreadd's namespace is the initial one,
    /// whichever way `initial_inode` found it.
    #[test]
    fn kthreadd_lives_in_the_initial_namespace() {
        use std::io::Write;
        // Straight to stderr, as tests/common's `skip` does: libtest would hide a print.
        let skip = |why: &str| {
            let _ = writeln!(
                std::io::stderr(),
                "skipped: kthreadd_lives_in_the_initial_namespace: {why}"
            );
        };
        if ns_inode_of("/proc/thread-self/ns/pid", "pid") != Some(PROC_PID_INIT_INO) {
            return skip("in a container's PID namespace, kthreadd is not in view");
        }
        let Some(kthreadd) = inode_of_pid(2) else {
            return skip("/proc/2/ns/net needs root");
        };
        assert_eq!(initial_inode(), Some(kthreadd));
    }

    #[test]
    fn a_tally_counts_by_reason_and_names_a_few_pids() {
        let mut t = Tally::default();
        assert_eq!(t.said("x for"), None);
        for pid in 1..=7 {
            t.add(Some(pid), Unread::Denied);
        }
        t.add(None, Unread::Failed("cannot open /proc/9".into()));
        assert_eq!(
            t.said("network namespace unknown for").as_deref(),
            Some(
                "network namespace unknown for 8 process(es) (cannot open /proc/9; \
                 permission denied: PID 1, 2, 3, 4, 5, ...)"
            )
        );
    }

    #[test]
    fn container_ids_from_cgroup_paths() {
        let id = "3f2a9c1b0d4e".repeat(5) + "abcd";
        assert_eq!(id.len(), 64);
        for path in [
            format!("/docker/{id}"),
            format!("/system.slice/docker-{id}.scope"),
            format!("/kubepods.slice/cri-containerd-{id}.scope"),
        ] {
            assert_eq!(container_id(&path).as_deref(), Some(id.as_str()), "{path}");
        }
        assert_eq!(
            container_id("/user.slice/user-0.slice/session-1.scope"),
            None
        );
    }
}
