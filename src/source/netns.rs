//! The network namespace the calling thread is in. (Entering another one is added with
//! `--netns`/`--pid`; it must happen before any thread or netlink socket exists.)

use crate::model::Netns;

/// Inode of the calling thread's network namespace, and whether it is PID 1's.
pub fn current() -> Netns {
    let inode = ns_inode("/proc/thread-self/ns/net");
    let initial = match (inode, ns_inode("/proc/1/ns/net")) {
        (Some(mine), Some(init)) => Some(mine == init),
        _ => None, // /proc/1/ns needs ptrace access to PID 1
    };
    Netns { inode, initial }
}

/// `net:[4026531840]` → 4026531840.
fn ns_inode(link: &str) -> Option<u64> {
    let target = std::fs::read_link(link).ok()?;
    let s = target.to_str()?;
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
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
