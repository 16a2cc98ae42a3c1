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
