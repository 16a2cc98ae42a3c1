//! Files as another process sees them: a configuration file its command line names, and the
//! directories its includes list. Through `/proc/PID/root`, so a container's own file is read,
//! not the host's at the same path; a relative path from `/proc/PID/cwd`; and a variable of
//! its environment (`/proc/PID/environ`) that names its data directory. Each open is an
//! openat2() that resolves inside that root (`RESOLVE_IN_ROOT`: an absolute symlink in a
//! container stays in the container) or, for a relative path, beneath that directory
//! (`RESOLVE_BENEATH`), and never through a magic link. Only regular files are read, and at
//! most `MAX_BYTES` of one. Thin: what the text means is `doctor::runtime::settings`'s.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat2};
use nix::sys::stat::{Mode, SFlag, fstat};

/// A configuration file is read up to this size; a bigger one is not one.
const MAX_BYTES: u64 = 4 << 20;

/// The text of `path` as process `pid` sees it (invalid UTF-8 replaced).
pub fn read(pid: u32, path: &str) -> io::Result<String> {
    let fd = open_as(
        pid,
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
    )?;
    let st = fstat(&fd).map_err(io::Error::from)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(io::Error::other("not a regular file"));
    }
    let mut raw = Vec::new();
    File::from(fd).take(MAX_BYTES).read_to_end(&mut raw)?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// The names in the directory `dir` as process `pid` sees it.
pub fn list(pid: u32, dir: &str) -> io::Result<Vec<String>> {
    let fd = open_as(pid, dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
    // The directory is open: list it through our own descriptor's magic link, which leads to
    // that very directory and not to a path resolved again.
    let names = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    Ok(names)
}

/// A variable of process `pid`'s environment as it started (`/proc/PID/environ`), read as
/// bytes, invalid UTF-8 replaced.
pub fn env_var(pid: u32, var: &str) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{var}=");
    raw.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Opens `path` as process `pid` would resolve it (see the module comment).
fn open_as(pid: u32, path: &str, flags: OFlag) -> io::Result<OwnedFd> {
    let (base, rest, resolve) = match path.strip_prefix('/') {
        Some(rest) => (
            format!("/proc/{pid}/root"),
            rest,
            ResolveFlag::RESOLVE_IN_ROOT,
        ),
        None => (
            format!("/proc/{pid}/cwd"),
            path,
            ResolveFlag::RESOLVE_BENEATH,
        ),
    };
    let base = open(
        base.as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    let rest = if rest.is_empty() { "." } else { rest };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(&base, rest, how).map_err(|e| match e {
        Errno::ENOSYS => io::Error::other("openat2() is not available (Linux 5.6 or later)"),
        Errno::EXDEV => io::Error::other("the path leads outside the process's directory"),
        e => io::Error::from(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_files_as_we_see_them() {
        let dir = std::env::temp_dir().join(format!("backlogctl-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("main.conf"), "max_connections = 5\n").unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "").unwrap();
        let me = std::process::id();
        let main = dir.join("main.conf");
        assert_eq!(
            read(me, main.to_str().unwrap()).unwrap(),
            "max_connections = 5\n"
        );
        let mut names = list(me, dir.to_str().unwrap()).unwrap();
        names.sort();
        assert_eq!(names, ["conf.d", "main.conf"]);
        assert_eq!(
            read(me, dir.join("missing").to_str().unwrap())
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        assert!(read(me, dir.to_str().unwrap()).is_err(), "a directory");
        // Our own environment, as /proc shows it.
        assert_eq!(env_var(me, "BACKLOGCTL_NO_SUCH_VAR"), None);
        if let Ok(path) = std::env::var("PATH") {
            assert_eq!(env_var(me, "PATH"), Some(path));
        }
        // Relative: from our working directory, never above it.
        assert!(read(me, "../../../../../../../../etc/hostname").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
