//! Network namespaces: which one the calling thread is in, entering another (`--netns`,
//! `--pid`), and finding them all (`--all-netns`). Namespaces are per thread: `enter` must run
//! on the thread that will then open the netlink socket and read `/proc/thread-self/net`, before
//! it opens any; the sources then need no change.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::Netns;

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

fn enter_ns(which: &Which) -> Result<()> {
    use nix::sched::{CloneFlags, setns};
    let path = which.path();
    let file = File::open(&path).map_err(|e| match (which, e.kind()) {
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
    })?;
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
    pub comm: String,
    /// The cgroup path (cgroup v2 line of /proc/PID/cgroup).
    pub cgroup: String,
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

pub fn all() -> Vec<Found> {
    use std::os::unix::fs::MetadataExt;
    let mut by_inode: BTreeMap<u64, Found> = BTreeMap::new();
    fn add(by_inode: &mut BTreeMap<u64, Found>, inode: u64, path: PathBuf) -> &mut Found {
        by_inode.entry(inode).or_insert_with(|| Found {
            inode,
            path,
            names: Vec::new(),
            processes: Vec::new(),
        })
    }
    if let Ok(dir) = std::fs::read_dir(NAMED_DIR) {
        for e in dir.flatten() {
            let path = e.path();
            if let Ok(meta) = std::fs::metadata(&path) {
                let name = e.file_name().to_string_lossy().into_owned();
                add(&mut by_inode, meta.ino(), path).names.push(name);
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
            // stat follows the link to the nsfs inode; a process may exit meanwhile.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .unwrap_or_default()
                .trim()
                .to_string();
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            let cgroup = cgroup
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or("")
                .to_string();
            let container = container_id(&cgroup);
            add(&mut by_inode, meta.ino(), path).processes.push(Member {
                pid,
                comm,
                cgroup,
                container,
            });
        }
    }
    by_inode.into_values().collect()
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

/// Inode of the calling thread's network namespace, and whether it is the initial (host) one.
pub fn current() -> Netns {
    let inode = ns_inode("/proc/thread-self/ns/net");
    // PID 1 is the host's init only in the initial PID namespace (fixed inode since 3.8);
    // in a container it is the container's init, in the container's network namespace.
    let host_pid1 = ns_inode_of("/proc/thread-self/ns/pid", "pid") == Some(PROC_PID_INIT_INO);
    let initial = match inode {
        Some(NET_NS_INIT_INO) => Some(true),
        Some(mine) if host_pid1 && let Some(init) = ns_inode("/proc/1/ns/net") => {
            Some(init == mine)
        }
        // From 6.18 on, init_net always has NET_NS_INIT_INO: any other inode is another namespace.
        Some(_) if fixed_init_inode() => Some(false),
        _ => None, // /proc/1/ns needs ptrace access to PID 1; older kernels vary the inode
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

/// Names under /run/netns that refer to the namespace with this inode.
fn names_of(inode: u64) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(dir) = std::fs::read_dir(NAMED_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.ino() == inode))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
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

/// `net:[4026531840]` → 4026531840.
fn ns_inode(link: &str) -> Option<u64> {
    ns_inode_of(link, "net")
}

fn ns_inode_of(link: &str, kind: &str) -> Option<u64> {
    let target = std::fs::read_link(link).ok()?;
    let s = target.to_str()?;
    s.strip_prefix(kind)?
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
