//! Process attribution: which processes hold the listening sockets in scope. The kernel keeps
//! no socket → process index, so this scans `/proc/*/fd` for `socket:[INODE]` links, matching
//! only the inodes asked for, and only when there are some. Processes are scanned in PID order
//! and the scan stops after the process that gave the last missing listener its owner: one
//! readlink per descriptor is the whole cost, and listeners usually belong to long-running,
//! low-PID daemons. Each link is read with readlinkat() relative to the open `/proc/PID/fd`
//! directory, so the kernel resolves one path component per descriptor instead of four
//! (about 1.7 µs a descriptor instead of 5.6, benches/vs_ss.sh). A socket shared by several
//! processes (pre-fork servers) thus names the holders found up to that point, the first at
//! least. Processes that exit or deny access mid-scan are skipped; when a listener stays
//! unattributed because of denied access, the gap says so (another user's `/proc/PID/fd` needs
//! root or CAP_SYS_PTRACE).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, readlinkat};
use nix::sys::stat::Mode;

use crate::model::{Gap, Owner};

/// Owners of the given socket inodes, plus a gap when some could not be attributed.
pub fn owners(inodes: &HashSet<u64>) -> (Vec<Owner>, Option<Gap>) {
    let mut found = Vec::new();
    if inodes.is_empty() {
        return (found, None);
    }
    let mut denied = 0usize;
    let mut pids: Vec<u32> = match std::fs::read_dir("/proc") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(e) => {
            return (
                found,
                Some(Gap::new(
                    "process-owners",
                    format!("cannot list /proc: {e}"),
                )),
            );
        }
    };
    pids.sort_unstable();
    let mut missing: HashSet<u64> = inodes.clone();
    for pid in pids {
        if missing.is_empty() {
            break;
        }
        let mine = match sockets_of(pid, inodes, &mut missing) {
            Ok(mine) => mine,
            Err(Errno::EACCES | Errno::EPERM) => {
                denied += 1;
                continue;
            }
            Err(_) => continue, // exited while we looked
        };
        if mine.is_empty() {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim_end_matches('\n').to_string())
            .unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|raw| {
                raw.split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        for inode in mine {
            found.push(Owner {
                inode,
                pid,
                comm: comm.clone(),
                cmdline: cmdline.clone(),
            });
        }
    }
    let attributed: HashSet<u64> = found.iter().map(|o| o.inode).collect();
    let missing = inodes.len() - inodes.intersection(&attributed).count();
    let gap = (missing > 0).then(|| {
        let why = if denied > 0 {
            format!(
                "{missing} listener(s) without a known process: /proc/PID/fd of {denied} \
                 process(es) could not be read; run as root (or with CAP_SYS_PTRACE) to see them"
            )
        } else {
            format!(
                "{missing} listener(s) without a known process: no process in this PID \
                 namespace holds them (another container's, or the kernel's)"
            )
        };
        Gap::new("process-owners", why)
    });
    (found, gap)
}

/// Descriptors read one after the other before the rest of a big table is split across threads:
/// a server's listeners usually sit among its first descriptors, so small tables and early
/// finds stop here.
const SERIAL_FDS: usize = 1024;

/// The wanted socket inodes among `pid`'s descriptors, sorted and deduplicated; reads until
/// the process has shown every listener still `missing`, removing those it finds. A table
/// bigger than SERIAL_FDS is read by up to 4 threads, since each descriptor costs one
/// readlinkat() of about 3 µs in the kernel and a proxy may hold tens of thousands.
fn sockets_of(
    pid: u32,
    wanted: &HashSet<u64>,
    missing: &mut HashSet<u64>,
) -> nix::Result<Vec<u64>> {
    let path = format!("/proc/{pid}/fd");
    let dir = open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = std::fs::read_dir(&path)
        .map_err(|e| e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO))?
        .filter_map(|e| Some(e.ok()?.file_name()));
    // A wanted listener behind this descriptor. ENOENT is a descriptor closed meanwhile;
    // EACCES/EPERM is a process we may list but not read (root without CAP_SYS_PTRACE, as in
    // Docker's default set), which must not pass for a process without the listener.
    let denied = std::sync::atomic::AtomicBool::new(false);
    let wanted_inode = |n: &OsString| match readlinkat(&dir, n.as_os_str()) {
        Ok(link) => socket_inode(&link).filter(|i| wanted.contains(i)),
        Err(Errno::EACCES | Errno::EPERM) => {
            denied.store(true, std::sync::atomic::Ordering::Relaxed);
            None
        }
        Err(_) => None,
    };
    let read = |names: &[OsString]| -> Vec<u64> { names.iter().filter_map(wanted_inode).collect() };
    let mut mine = Vec::new();
    for n in names.by_ref().take(SERIAL_FDS) {
        if let Some(inode) = wanted_inode(&n) {
            mine.push(inode);
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
    if !missing.is_empty() && !tail.is_empty() {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let chunk = tail.len().div_ceil(threads);
        let found: Vec<u64> = std::thread::scope(|s| {
            let mut found = Vec::new();
            let mut handles = Vec::new();
            for part in tail.chunks(chunk) {
                // A thread that cannot be started (RLIMIT_NPROC) leaves its part to this one.
                match std::thread::Builder::new().spawn_scoped(s, move || read(part)) {
                    Ok(h) => handles.push(h),
                    Err(_) => found.extend(read(part)),
                }
            }
            for h in handles {
                found.extend(h.join().unwrap_or_default());
            }
            found
        });
        for inode in &found {
            missing.remove(inode);
        }
        mine.extend(found);
    }
    mine.sort_unstable();
    mine.dedup();
    if mine.is_empty() && denied.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Errno::EACCES);
    }
    Ok(mine)
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &OsStr) -> Option<u64> {
    std::str::from_utf8(link.as_bytes())
        .ok()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(OsStr::new("socket:[4026]")), Some(4026));
        assert_eq!(socket_inode(OsStr::new("pipe:[4026]")), None);
        assert_eq!(socket_inode(OsStr::new("socket:[]")), None);
        assert_eq!(socket_inode(OsStr::new("/dev/null")), None);
    }
}
