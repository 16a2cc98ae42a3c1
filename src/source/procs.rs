//! Process attribution: which processes hold the listening sockets in scope. The kernel keeps
//! no socket → process index, so this scans `/proc/*/fd` for `socket:[INODE]` links, matching
//! only the inodes asked for, and only when there are some. Processes are scanned in PID order
//! and the scan stops after the process that gave the last missing listener its owner: one
//! readlink per descriptor is the whole cost (100,000 client sockets elsewhere took a second),
//! and listeners usually belong to long-running, low-PID daemons. A socket shared by several
//! processes (pre-fork servers) thus names the holders found up to that point, the first at
//! least. Processes that exit or deny access mid-scan are skipped; when a listener stays
//! unattributed because of denied access, the gap says so (another user's `/proc/PID/fd` needs
//! root or CAP_SYS_PTRACE).

use std::collections::HashSet;

use procfs::ProcError;
use procfs::process::FDTarget;

use crate::model::{Gap, Owner};

/// Owners of the given socket inodes, plus a gap when some could not be attributed.
pub fn owners(inodes: &HashSet<u64>) -> (Vec<Owner>, Option<Gap>) {
    let mut found = Vec::new();
    if inodes.is_empty() {
        return (found, None);
    }
    let mut denied = 0usize;
    let processes = match procfs::process::all_processes() {
        Ok(p) => p,
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
    let mut missing: HashSet<u64> = inodes.clone();
    for process in processes {
        if missing.is_empty() {
            break;
        }
        let Ok(process) = process else { continue };
        let fds = match process.fd() {
            Ok(fds) => fds,
            Err(ProcError::PermissionDenied(_)) => {
                denied += 1;
                continue;
            }
            Err(_) => continue, // exited while we looked
        };
        // Read this process's descriptors until it has shown every listener still missing.
        let mut mine = Vec::new();
        for fd in fds {
            if let Ok(fd) = fd
                && let FDTarget::Socket(inode) = fd.target
                && inodes.contains(&inode)
            {
                mine.push(inode);
                missing.remove(&inode);
                if missing.is_empty() {
                    break;
                }
            }
        }
        if mine.is_empty() {
            continue;
        }
        mine.sort_unstable();
        mine.dedup();
        let comm = process.stat().map(|s| s.comm).unwrap_or_default();
        let cmdline = process.cmdline().map(|a| a.join(" ")).unwrap_or_default();
        let pid = u32::try_from(process.pid()).unwrap_or_default();
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
