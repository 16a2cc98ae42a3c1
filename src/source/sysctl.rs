//! The sysctls that decide listen-queue behaviour, read with `std::fs` from `/proc/sys`, which
//! (unlike `/proc/net`) already follows the calling thread's network namespace. Each value is
//! an `Option`: unreadable or unparsable means unknown, recorded as a gap, never a default.

use crate::catalogue::{Sysctl, sysctl_path};
use crate::model::{Gap, Sysctls};

const ROOT: &str = "/proc/sys";

/// Reads the listen-queue sysctls of the calling thread's network namespace.
pub(crate) fn read(gaps: &mut Vec<Gap>) -> Sysctls {
    let mut sysctls = Sysctls::default();
    for key in Sysctl::ALL {
        sysctls.set(key, read_one(key, gaps));
    }
    sysctls
}

/// Kernel release (`uname -r`).
pub fn kernel_release() -> Option<String> {
    let text = std::fs::read_to_string(format!("{ROOT}/kernel/osrelease")).ok()?;
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

pub fn hostname() -> Option<String> {
    let text = std::fs::read_to_string(format!("{ROOT}/kernel/hostname")).ok()?;
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

/// `net.core.somaxconn` → `/proc/sys/net/core/somaxconn`, for any sysctl (`explain` reads some
/// that `Sysctl` does not list).
pub fn path_of(name: &str) -> String {
    sysctl_path(name)
}

fn read_one(key: Sysctl, gaps: &mut Vec<Gap>) -> Option<u32> {
    let name = key.name();
    let path = key.path();
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(v) => Some(v),
            Err(_) => {
                gaps.push(Gap::new(
                    name,
                    format!("{path} holds {:?}, not a number", text.trim()),
                ));
                None
            }
        },
        Err(e) => {
            gaps.push(Gap::new(name, format!("cannot read {path}: {e}")));
            None
        }
    }
}
