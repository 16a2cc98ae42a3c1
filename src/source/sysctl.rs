//! The sysctls that decide listen-queue behaviour, read with `std::fs` from `/proc/sys`, which
//! (unlike `/proc/net`) already follows the calling thread's network namespace. Each value is
//! an `Option`: unreadable or unparsable means unknown, recorded as a gap, never a default.
//!
//! A reading opens each directory of its sysctls once (`Dirs`) and the files relative to it:
//! every namespace has its own `/proc/sys/net/ipv4`, and looking one up by its full path walks
//! past the entries of all the others (`proc_sys_compare`), so with 100 namespaces a full path
//! cost 4-6 times an open relative to the directory.

use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use nix::fcntl::{OFlag, open, openat};
use nix::sys::stat::Mode;

use crate::catalogue::{
    IP_LOCAL_PORT_RANGE, NF_CONNTRACK_COUNT, NF_CONNTRACK_MAX, Sysctl, sysctl_path,
};
use crate::model::{Gap, PortRange, SocketFile, Sysctls, Vfs};

const ROOT: &str = "/proc/sys";

/// The directories of one reading's files, each opened at its first file and kept for the
/// rest. A directory that cannot be opened is not tried again: its files are read by their
/// full paths, so that they fail (or not) exactly as they would alone.
#[derive(Default)]
struct Dirs(Vec<(String, Option<OwnedFd>)>);

impl Dirs {
    /// The text of the file at `path` (absolute).
    fn read(&mut self, path: &str) -> std::io::Result<String> {
        let Some((dir, name)) = path.rsplit_once('/') else {
            return std::fs::read_to_string(path);
        };
        let at = match self.0.iter().position(|(d, _)| d == dir) {
            Some(at) => at,
            None => {
                let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
                self.0
                    .push((dir.to_string(), open(dir, flags, Mode::empty()).ok()));
                self.0.len() - 1
            }
        };
        let Some(fd) = &self.0[at].1 else {
            return std::fs::read_to_string(path);
        };
        let file = openat(fd, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
        read_small(std::fs::File::from(file))
    }
}

/// A file of a few bytes, read to its end without the size query `fs::read_to_string` makes
/// first (a sysctl file says size 0 anyway).
fn read_small(mut file: std::fs::File) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = Vec::new();
    let mut chunk = [0u8; 128];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(text).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Reads the listen-queue sysctls of the calling thread's network namespace.
pub(crate) fn read(gaps: &mut Vec<Gap>) -> Sysctls {
    let mut dirs = Dirs::default();
    read_through(&mut |path| dirs.read(path), gaps)
}

/// `read`, each file read by `file` from its absolute path: the exporter's come from
/// descriptors kept open in the namespace.
pub(crate) fn read_through(
    file: &mut dyn FnMut(&str) -> std::io::Result<String>,
    gaps: &mut Vec<Gap>,
) -> Sysctls {
    let mut sysctls = Sysctls::default();
    for key in Sysctl::ALL {
        sysctls.set(key, read_one(file, key, gaps));
    }
    let range = sysctl_path(IP_LOCAL_PORT_RANGE);
    match file(&range) {
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
    let mut number = |name: &str| {
        file(&sysctl_path(name))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
    };
    sysctls.nf_conntrack_max = number(NF_CONNTRACK_MAX);
    sysctls.nf_conntrack_count = number(NF_CONNTRACK_COUNT);
    sysctls
}

/// Kernel release (`uname -r`): read once, the running kernel's does not change (every
/// namespace of an `--all-netns` scrape asked for it twice).
pub fn kernel_release() -> Option<String> {
    static RELEASE: OnceLock<Option<String>> = OnceLock::new();
    RELEASE
        .get_or_init(|| {
            let text = std::fs::read_to_string(format!("{ROOT}/kernel/osrelease")).ok()?;
            Some(text.trim().to_string()).filter(|s| !s.is_empty())
        })
        .clone()
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

fn read_one(
    file: &mut dyn FnMut(&str) -> std::io::Result<String>,
    key: Sysctl,
    gaps: &mut Vec<Gap>,
) -> Option<u32> {
    let name = key.name();
    let path = key.path();
    match file(&path) {
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
