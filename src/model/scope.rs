//! What a command looks at: the targets a user names (`:8100`, `127.0.0.1:8100`, `[::1]:80`;
//! `/run/php/php8.2-fpm.sock`, `unix:relative.sock`, `@abstract`) and the scope they make,
//! with the socket families it covers (`-t`, `-x`). Part of the model: snapshots store their
//! targets typed, as the strings a user types, so a schema-1 file reads back as it was
//! written.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Listener;
use super::local::{Local, Name, UnixName, Vfs};
use crate::error::{Error, Result};

/// A listener the user names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A TCP port, optionally with the address clients connect to.
    Inet { ip: Option<IpAddr>, port: u16 },
    /// A Unix-domain socket by path or abstract name.
    Unix(UnixTarget),
}

/// A Unix-domain listener the user names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnixTarget {
    /// A path (as typed: relative ones stay relative) or an abstract name.
    pub name: UnixName,
    /// The path's socket file as it was when the command started (`stat`), so that a listener
    /// bound through another spelling of the path (relative, a symlink) is still matched.
    /// Not part of a snapshot file.
    pub file: Option<Vfs>,
}

impl Target {
    /// A TCP port on any address.
    pub fn port(port: u16) -> Target {
        Target::Inet { ip: None, port }
    }

    pub fn parse(s: &str) -> Result<Target> {
        let t = s.trim();
        if let Some(name) = t.strip_prefix("unix:") {
            return Target::unix(s, name);
        }
        if t.starts_with('/') || t.starts_with('@') || t.starts_with("./") {
            return Target::unix(s, t);
        }
        Target::parse_inet(s)
    }

    /// `/path`, `relative/path` (after `unix:`), `@abstract`.
    fn unix(s: &str, name: &str) -> Result<Target> {
        let name = match name.strip_prefix('@') {
            Some("") => {
                return Err(Error::BadInput(format!(
                    "malformed target {s:?}: an abstract name after @, e.g. @appsock"
                )));
            }
            Some(abs) => UnixName::Abstract(Name::new(abs.as_bytes())),
            None if name.is_empty() => {
                return Err(Error::BadInput(format!(
                    "malformed target {s:?}: a socket path after unix:, e.g. unix:/run/php/appsrv.sock"
                )));
            }
            None => UnixName::Path(Name::new(name.as_bytes())),
        };
        Ok(Target::Unix(UnixTarget { name, file: None }))
    }

    fn parse_inet(s: &str) -> Result<Target> {
        let bad = |why: &str| {
            Error::BadInput(format!(
                "malformed target {s:?}: {why}; use :PORT, PORT, ADDR:PORT, [IPv6]:PORT, a socket \
                 path or @abstract, e.g. :8100, [::1]:8100 or /run/php/php8.2-fpm.sock"
            ))
        };
        let t = s.trim();
        let port_of = |p: &str| -> Result<u16> {
            match p.parse::<u16>() {
                Ok(0) => Err(bad("port 0 is not a listening port")),
                Ok(port) => Ok(port),
                Err(_) => Err(bad(&format!("{p:?} is not a port number (1-65535)"))),
            }
        };
        if t.is_empty() {
            return Err(bad("empty"));
        }
        if let Some(p) = t.strip_prefix(':') {
            return Ok(Target::port(port_of(p)?));
        }
        if let Some(p) = t.strip_prefix("*:") {
            return Ok(Target::port(port_of(p)?));
        }
        if t.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Target::port(port_of(t)?));
        }
        if let Ok(sa) = t.parse::<SocketAddr>() {
            return Ok(Target::Inet {
                ip: Some(sa.ip()),
                port: port_of(&sa.port().to_string())?,
            });
        }
        if t.parse::<IpAddr>().is_ok() {
            return Err(bad("an address without a port"));
        }
        match t.rsplit_once(':') {
            Some((addr, p)) if addr.parse::<IpAddr>().is_ok() || addr.starts_with('[') => {
                port_of(p)?;
                Err(bad(
                    "unreadable address (IPv6 addresses go in brackets: [::1]:8100)",
                ))
            }
            Some((_, p)) => {
                port_of(p)?;
                Err(bad("neither an address nor a host name"))
            }
            None => Err(bad("no port")),
        }
    }

    /// Whether a listener serves this target: the port (and an address clients can reach it
    /// by); the same name, or for a path the same socket file.
    pub fn matches(&self, listener: &Listener) -> bool {
        match (self, &listener.local) {
            (Target::Inet { ip, port }, Local::Inet(a)) => {
                a.port() == *port && ip.is_none_or(|ip| listener.serves(ip))
            }
            (Target::Unix(t), Local::Unix(u)) => {
                t.name == u.name || (t.file.is_some() && t.file == u.vfs)
            }
            _ => false,
        }
    }

    /// The TCP port, for the kernel's port filter.
    pub fn inet_port(&self) -> Option<u16> {
        match self {
            Target::Inet { port, .. } => Some(*port),
            Target::Unix(_) => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Inet { ip: None, port } => write!(f, ":{port}"),
            Target::Inet { ip: Some(ip), port } => write!(f, "{}", SocketAddr::new(*ip, *port)),
            Target::Unix(UnixTarget { name, .. }) => f.write_str(&name.target()),
        }
    }
}

impl FromStr for Target {
    type Err = Error;
    fn from_str(s: &str) -> Result<Target> {
        Target::parse(s)
    }
}

impl Target {
    /// The target as a user types it: what `Target::parse` reads back as this target. Not the
    /// display form, which escapes a name's backslashes and control characters for a terminal
    /// (`\\`, `\x18`): read back, those would name another socket.
    fn typed(&self) -> String {
        let raw = |n: &Name| String::from_utf8_lossy(n.bytes()).into_owned();
        match self {
            Target::Inet { .. } => self.to_string(),
            Target::Unix(u) => match &u.name {
                UnixName::Path(p) if p.bytes().starts_with(b"/") => raw(p),
                UnixName::Path(p) => format!("unix:{}", raw(p)),
                UnixName::Abstract(n) => format!("@{}", raw(n)),
                UnixName::Unnamed => "unix:".to_string(),
            },
        }
    }
}

/// Stored as the user typed it (`:8100`, `127.0.0.1:8100`, `/run/app.sock`).
impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.typed())
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Target, D::Error> {
        let raw = String::deserialize(d)?;
        Target::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// `db.internal:5432` as a host name and a port, when it is one (letters, digits, `-` and `.`,
/// not all digits, and a port); None for anything else, which `Target::parse` judges.
pub fn host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.trim().rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    let name = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(name)
        && host.bytes().any(|b| b.is_ascii_alphabetic())
        && !host.starts_with(['-', '.']);
    ok.then_some((host, port))
}

/// Every target in `raw`, or the first malformed one's error.
pub fn parse_targets(raw: &[String]) -> Result<Vec<Target>> {
    raw.iter().map(|s| Target::parse(s)).collect()
}

/// The socket families a command covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    pub tcp: bool,
    pub unix: bool,
}

impl Default for Families {
    fn default() -> Families {
        Families {
            tcp: true,
            unix: true,
        }
    }
}

/// Which listeners a command looks at: those serving any target, or every one of the
/// families asked for (`-t`, `-x`; both by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub targets: Vec<Target>,
    pub families: Families,
    /// Host name targets, resolved once: each address is a target of its own.
    pub resolved: Vec<super::Resolved>,
    /// The targets that are servers this namespace connects to (at none of its addresses):
    /// no listener of its own is theirs. Set when the namespace's addresses are known.
    pub servers: Vec<SocketAddr>,
}

impl Scope {
    pub fn new(targets: Vec<Target>) -> Self {
        Scope {
            targets,
            families: Families::default(),
            resolved: Vec::new(),
            servers: Vec::new(),
        }
    }

    /// Only these families (`-t`/`-x`).
    pub fn only(mut self, families: Families) -> Self {
        self.families = families;
        self
    }

    /// The targets that name listeners of this namespace: all but the servers.
    fn listener_targets(&self) -> impl Iterator<Item = &Target> {
        self.targets.iter().filter(|t| match t {
            Target::Inet { ip: Some(ip), port } => {
                !self.servers.contains(&SocketAddr::new(*ip, *port))
            }
            _ => true,
        })
    }

    /// Ports for the kernel-side filter; empty = all.
    pub fn ports(&self) -> Vec<u16> {
        self.listener_targets()
            .filter_map(Target::inet_port)
            .collect()
    }

    /// Whether TCP listeners are dumped at all: no target names a port and some name a socket,
    /// or every port named is a server's.
    pub fn wants_tcp(&self) -> bool {
        self.families.tcp
            && (self.targets.is_empty() || self.listener_targets().any(|t| t.inet_port().is_some()))
    }

    /// Whether Unix listeners are dumped.
    pub fn wants_unix(&self) -> bool {
        self.families.unix
            && (self.targets.is_empty()
                || self.targets.iter().any(|t| matches!(t, Target::Unix(_))))
    }

    pub fn contains(&self, l: &Listener) -> bool {
        let family = if l.local.is_unix() {
            self.families.unix
        } else {
            self.families.tcp
        };
        family && (self.targets.is_empty() || self.listener_targets().any(|t| t.matches(l)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_target_names_no_listener_of_ours() {
        let mut scope = Scope::new(vec![Target::parse("10.200.0.1:9000").unwrap()]);
        assert_eq!(scope.ports(), vec![9000]);
        scope.servers = vec!["10.200.0.1:9000".parse().unwrap()];
        assert_eq!(scope.ports(), Vec::<u16>::new());
        assert!(!scope.wants_tcp(), "no listener named: none dumped");
        scope.targets.push(Target::port(80));
        assert_eq!(scope.ports(), vec![80]);
        assert!(scope.wants_tcp());
    }

    #[test]
    fn host_names_are_told_from_addresses_and_garbage() {
        assert_eq!(host_port("db.internal:5432"), Some(("db.internal", 5432)));
        assert_eq!(host_port("localhost:80"), Some(("localhost", 80)));
        for not in [
            "10.0.0.1:80",
            "1234:80",
            "db:0",
            "db:",
            "db",
            "foo_bar:80",
            "-x:80",
            ":80",
            "[::1]:80",
            "db:99999",
        ] {
            assert_eq!(host_port(not), None, "{not}");
        }
    }

    #[test]
    fn targets() {
        let ok = |s: &str| Target::parse(s).unwrap().to_string();
        assert_eq!(ok(":8100"), ":8100");
        assert_eq!(ok("8100"), ":8100");
        assert_eq!(ok("*:8100"), ":8100");
        assert_eq!(ok("127.0.0.1:8100"), "127.0.0.1:8100");
        assert_eq!(ok("[::1]:8100"), "[::1]:8100");
        assert_eq!(ok(" 0.0.0.0:80 "), "0.0.0.0:80");
        for bad in [
            "",
            ":",
            ":0",
            "70000",
            ":abc",
            "::1:80",
            "localhost:80",
            "1.2.3.4",
            "[::1]",
            "1.2.3:80",
            "-5",
            "@",
            "unix:",
        ] {
            let e = Target::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("malformed target"), "{bad:?} gave {e}");
        }
    }

    #[test]
    fn unix_targets() {
        let ok = |s: &str| Target::parse(s).unwrap().to_string();
        assert_eq!(ok("/run/php/php8.2-fpm.sock"), "/run/php/php8.2-fpm.sock");
        assert_eq!(ok("unix:/run/x.sock"), "/run/x.sock");
        assert_eq!(ok("unix:rel.sock"), "unix:rel.sock");
        assert_eq!(ok("./rel.sock"), "unix:./rel.sock");
        assert_eq!(ok("@appsock"), "@appsock");
        assert_eq!(ok("unix:@appsock"), "@appsock");
        // A round trip through the display form gives the same target.
        for s in ["/a.sock", "unix:rel.sock", "@x"] {
            assert_eq!(Target::parse(&ok(s)).unwrap(), Target::parse(s).unwrap());
        }
    }

    /// Found by fuzzing (fuzz/regressions/targets/): a name with a control character or a
    /// backslash was stored in its escaped display form, and read back as another name.
    #[test]
    fn targets_with_escaped_characters_are_stored_as_typed() {
        for typed in [
            "/run/php/php\u{18}.2-fpm.sock",
            "unix:a\\b.sock",
            "@x\ty",
            "/a\\x41",
        ] {
            let t = Target::parse(typed).unwrap();
            let stored = serde_json::to_string(&t).unwrap();
            assert_eq!(
                serde_json::from_str::<Target>(&stored).unwrap(),
                t,
                "{stored}"
            );
        }
        let t = Target::parse("/a\\b").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""/a\\b""#);
        assert_eq!(t.to_string(), "/a\\\\b", "the display form still escapes");
    }
}
