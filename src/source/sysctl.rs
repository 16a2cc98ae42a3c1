//! The sysctls that decide listen-queue behaviour, read with `std::fs` from `/proc/sys`, which
//! (unlike `/proc/net`) already follows the calling thread's network namespace. Each value is
//! an `Option`: unreadable or unparsable means unknown, recorded as a gap, never a default.

use crate::catalogue::{
    IP_LOCAL_PORT_RANGE, NF_CONNTRACK_COUNT, NF_CONNTRACK_MAX, Sysctl, sysctl_path,
};
use crate::model::{Gap, PortRange, SocketFile, Sysctls, Vfs};

const ROOT: &str = "/proc/sys";

/// Reads the listen-queue sysctls of the calling thread's network namespace.
pub(crate) fn read(gaps: &mut Vec<Gap>) -> Sysctls {
    let mut sysctls = Sysctls::default();
    for key in Sysctl::ALL {
        sysctls.set(key, read_one(key, gaps));
    }
    let range = sysctl_path(IP_LOCAL_PORT_RANGE);
    match std::fs::read_to_string(&range) {
        Ok(text) => match PortRange::parse(&text) {
            Some(r) => sysctls.ip_local_port_range = Some(r),
            None => gaps.push(Gap::new(
                IP_LOCAL_PORT_RANGE,
                format!("{range} holds {:?}, not two ports", text.trim()),
            )),
        },
        Err(e) => gaps.push(Gap::new(
            IP_LOCAL_PORT_RANGE,
            format!("cannot read {range}: {e}"),
        )),
    }
    // Present only where connection tracking is loaded: absent is no gap.
    let number = |name: &str| {
        std::fs::read_to_string(sysctl_path(name))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
    };
    sysctls.nf_conntrack_max = number(NF_CONNTRACK_MAX);
    sysctls.nf_conntrack_count = number(NF_CONNTRACK_COUNT);
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

/// What a Unix socket's path is (the file system is the other thing `/proc/sys` readers share:
/// both are read with `std::fs`), following symlinks as connect() does.
pub fn socket_file(path: &[u8]) -> SocketFile {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    match std::fs::metadata(std::ffi::OsStr::from_bytes(path)) {
        Ok(m) if m.file_type().is_socket() => {
            // glibc's gnu_dev_major/minor, then the kernel's own encoding (UNIX_DIAG_VFS).
            let dev = m.dev();
            let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
            let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
            SocketFile::Socket {
                ino: m.ino(),
                dev: Vfs::kernel_dev(major as u32, minor as u32),
            }
        }
        Ok(_) => SocketFile::NotASocket,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SocketFile::Missing,
        Err(e) => SocketFile::Unreadable {
            reason: format!("cannot stat it: {e}"),
        },
    }
}
