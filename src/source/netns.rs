//! The network namespace the calling thread is in. (Entering another one is added with
//! `--netns`/`--pid`; it must happen before any thread or netlink socket exists.)

use crate::model::Netns;

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
    Netns { inode, initial }
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
