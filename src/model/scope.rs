//! What a command looks at: the targets a user names (`:8100`, `127.0.0.1:8100`, `[::1]:80`)
//! and the scope they make. Part of the model: snapshots store their targets typed, as the
//! strings a user types, so a schema-1 file reads back as it was written.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Listener;
use crate::error::{Error, Result};

/// A listener the user names: a port, optionally with the address clients connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub ip: Option<IpAddr>,
    pub port: u16,
}

impl Target {
    pub fn parse(s: &str) -> Result<Target> {
        let bad = |why: &str| {
            Error::BadInput(format!(
                "malformed target {s:?}: {why}; use :PORT, PORT, ADDR:PORT or [IPv6]:PORT, e.g. :8100 or [::1]:8100"
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
            return Ok(Target {
                ip: None,
                port: port_of(p)?,
            });
        }
        if let Some(p) = t.strip_prefix("*:") {
            return Ok(Target {
                ip: None,
                port: port_of(p)?,
            });
        }
        if t.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Target {
                ip: None,
                port: port_of(t)?,
            });
        }
        if let Ok(sa) = t.parse::<SocketAddr>() {
            return Ok(Target {
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
                Err(bad(
                    "the address must be numeric (host names are not resolved)",
                ))
            }
            None => Err(bad("no port")),
        }
    }

    /// Whether a listener bound to `local` serves this target.
    pub fn matches(&self, listener: &Listener) -> bool {
        listener.local.port() == self.port && self.ip.is_none_or(|ip| listener.serves(ip))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            None => write!(f, ":{}", self.port),
            Some(ip) => write!(f, "{}", SocketAddr::new(ip, self.port)),
        }
    }
}

impl FromStr for Target {
    type Err = Error;
    fn from_str(s: &str) -> Result<Target> {
        Target::parse(s)
    }
}

/// Stored as the user typed it (`:8100`, `127.0.0.1:8100`).
impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Target, D::Error> {
        let raw = String::deserialize(d)?;
        Target::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Every target in `raw`, or the first malformed one's error.
pub fn parse_targets(raw: &[String]) -> Result<Vec<Target>> {
    raw.iter().map(|s| Target::parse(s)).collect()
}

/// Which listeners a command looks at: those serving any target, or every one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub targets: Vec<Target>,
}

impl Scope {
    pub fn new(targets: Vec<Target>) -> Self {
        Scope { targets }
    }

    /// Ports for the kernel-side filter; empty = all.
    pub fn ports(&self) -> Vec<u16> {
        self.targets.iter().map(|t| t.port).collect()
    }

    pub fn contains(&self, l: &Listener) -> bool {
        self.targets.is_empty() || self.targets.iter().any(|t| t.matches(l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            let e = Target::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("malformed target"), "{bad:?} gave {e}");
        }
    }
}
