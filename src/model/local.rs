//! Where a listener listens: an IP address and port (TCP, from inet_diag) or a Unix-domain
//! name (from unix_diag). Everything that shows, groups or matches listeners goes through
//! `Local`, so a second socket family is one more variant here, not another code path.
//!
//! In a snapshot a TCP listener's `local` is a string in every schema (`"127.0.0.1:8100"`); a
//! Unix one is an object: `{"path": "/run/php/php8.2-fpm.sock", "type": "stream", "vfs":
//! {"ino": 1234, "dev": 24}}`, `{"abstract": "name", "type": "seqpacket"}`, or `{"type":
//! "stream"}` for an unnamed listener. A name that is not UTF-8 is an array of its bytes, so a
//! file carries the kernel's name exactly; text output escapes what is not printable.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Local {
    Inet(SocketAddr),
    Unix(UnixLocal),
}

/// A Unix-domain listener's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnixLocal {
    pub name: UnixName,
    pub kind: UnixKind,
    /// The socket file's inode and device (`UNIX_DIAG_VFS`) for a path: a file replaced or
    /// removed since bind() no longer leads to this listener.
    pub vfs: Option<Vfs>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnixName {
    /// A file system path (`/run/php/php8.2-fpm.sock`), as bound: it may be relative.
    Path(Name),
    /// An abstract name (a leading NUL in the kernel; `@name` as `ss` shows it). Per network
    /// namespace, unlike a path.
    Abstract(Name),
    /// Neither: a listener that never bound a name (rare; only a passed descriptor reaches it).
    Unnamed,
}

/// A name's bytes, exactly as the kernel gave them (no trailing NUL). Cheap to clone: listener
/// keys are copied at every sample.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<[u8]>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnixKind {
    Stream,
    Seqpacket,
}

/// `UNIX_DIAG_VFS`: the inode of the socket file, and its device in the kernel's own encoding
/// (`s_dev`: major << 20 | minor, not `st_dev`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Vfs {
    pub ino: u64,
    pub dev: u32,
}

impl Vfs {
    /// The kernel's encoding of a device from its major and minor numbers (`new_encode_dev`'s
    /// inverse, `MKDEV` in `include/linux/kdev_t.h`).
    pub fn kernel_dev(major: u32, minor: u32) -> u32 {
        (major << 20) | (minor & 0xf_ffff)
    }
}

impl Name {
    pub fn new(bytes: &[u8]) -> Name {
        Name(Arc::from(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Name {
    /// Valid UTF-8 as is, except a backslash (doubled) and control characters; those and
    /// invalid bytes as `\xNN`, so that every name prints on one line and reads back unambiguously.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    c if c.is_control() => {
                        for b in c.encode_utf8(&mut [0; 4]).bytes() {
                            write!(f, "\\x{b:02x}")?;
                        }
                    }
                    c => write!(f, "{c}")?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl Local {
    /// The TCP address, for what only TCP has (ports, SYN_RECV, SO_REUSEPORT groups).
    pub fn inet(&self) -> Option<SocketAddr> {
        match self {
            Local::Inet(a) => Some(*a),
            Local::Unix(_) => None,
        }
    }

    pub fn unix(&self) -> Option<&UnixLocal> {
        match self {
            Local::Inet(_) => None,
            Local::Unix(u) => Some(u),
        }
    }

    pub fn port(&self) -> Option<u16> {
        self.inet().map(|a| a.port())
    }

    pub fn ip(&self) -> Option<IpAddr> {
        self.inet().map(|a| a.ip())
    }

    pub fn is_unix(&self) -> bool {
        matches!(self, Local::Unix(_))
    }

    /// Whether the kernel counts this listener's refused connections. TCP does (`sk_drops`,
    /// ListenDrops); a full Unix listener refuses in `unix_stream_connect` (`net/unix/af_unix.c`)
    /// without touching any counter, so for it drops are not applicable, not zero.
    pub fn counts_drops(&self) -> bool {
        !self.is_unix()
    }

    /// The TARGET a command names this listener by, quoted for a shell when it must be:
    /// `127.0.0.1:8100`, `/run/php/php8.2-fpm.sock`, `unix:relative.sock`, `@name`.
    pub fn as_target(&self) -> String {
        let raw = match self {
            Local::Inet(a) => return a.to_string(),
            Local::Unix(u) if u.name == UnixName::Unnamed => return String::new(),
            Local::Unix(u) => u.name.target(),
        };
        let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@,=%".contains(c);
        if raw.chars().all(plain) {
            raw
        } else {
            format!("'{}'", raw.replace('\'', "'\\''"))
        }
    }
}

impl UnixName {
    /// How a TARGET spells it: `/run/php/php8.2-fpm.sock`, `unix:relative.sock`, `@name`;
    /// `unix:` for no name. Not shell-quoted (see `Local::as_target`).
    pub fn target(&self) -> String {
        match self {
            UnixName::Path(p) if !p.bytes().starts_with(b"/") => format!("unix:{p}"),
            UnixName::Unnamed => "unix:".to_string(),
            named => named.to_string(),
        }
    }
}

impl fmt::Display for UnixName {
    /// As `ss -x` shows it: `/run/php/php8.2-fpm.sock`, `@name`, nothing for no name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixName::Path(p) => write!(f, "{p}"),
            UnixName::Abstract(n) => write!(f, "@{n}"),
            UnixName::Unnamed => Ok(()),
        }
    }
}

impl fmt::Display for Local {
    /// `127.0.0.1:8100`, `[::]:80`; `/run/php/php8.2-fpm.sock`, `@name`, `(unnamed)`, as `ss -x`
    /// shows them (a seqpacket listener says so).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Local::Inet(a) => write!(f, "{a}"),
            Local::Unix(u) => {
                match &u.name {
                    UnixName::Unnamed => f.write_str("(unnamed)")?,
                    named => write!(f, "{named}")?,
                }
                match u.kind {
                    UnixKind::Stream => Ok(()),
                    UnixKind::Seqpacket => f.write_str(" (seqpacket)"),
                }
            }
        }
    }
}

/// A TCP address (`127.0.0.1:8100`), as tests and fixtures write them.
impl std::str::FromStr for Local {
    type Err = std::net::AddrParseError;
    fn from_str(s: &str) -> Result<Local, Self::Err> {
        s.parse().map(Local::Inet)
    }
}

impl From<SocketAddr> for Local {
    fn from(a: SocketAddr) -> Local {
        Local::Inet(a)
    }
}

/// A name in JSON: a string when it is UTF-8, else the array of its bytes.
impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => self.0.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Bytes(Vec<u8>),
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Text(t) => Name::new(t.as_bytes()),
            Repr::Bytes(b) => Name::new(&b),
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnixRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<Name>,
    #[serde(default, rename = "abstract", skip_serializing_if = "Option::is_none")]
    abstract_name: Option<Name>,
    #[serde(rename = "type")]
    kind: UnixKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vfs: Option<Vfs>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum LocalRepr {
    Inet(SocketAddr),
    Unix(UnixRepr),
}

/// `n`'s decimal digits, in `digits[at..]`: for writers that skip `core::fmt`.
pub(crate) fn decimal(n: u64) -> ([u8; 20], usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut v = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    (digits, at)
}

/// `a.b.c.d:port` exactly as `SocketAddrV4`'s `Display` writes it (and serde, through it), with
/// the digits written here: over 10,000 listeners, formatting them through `core::fmt` was 4%
/// of a whole `snapshot -t`. 21 bytes hold the longest, `255.255.255.255:65535`.
fn v4_text(a: std::net::SocketAddrV4, buf: &mut [u8; 21]) -> &str {
    fn put(buf: &mut [u8; 21], at: &mut usize, v: u16) {
        let (digits, i) = decimal(u64::from(v));
        let d = &digits[i..];
        buf[*at..*at + d.len()].copy_from_slice(d);
        *at += d.len();
    }
    let mut at = 0;
    for (k, octet) in a.ip().octets().into_iter().enumerate() {
        if k > 0 {
            buf[at] = b'.';
            at += 1;
        }
        put(buf, &mut at, u16::from(octet));
    }
    buf[at] = b':';
    at += 1;
    put(buf, &mut at, a.port());
    // Digits, dots and a colon: always UTF-8.
    std::str::from_utf8(&buf[..at]).unwrap_or_default()
}

impl Serialize for Local {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let (Local::Inet(SocketAddr::V4(a)), true) = (self, s.is_human_readable()) {
            return s.serialize_str(v4_text(*a, &mut [0; 21]));
        }
        let repr = match self {
            Local::Inet(a) => LocalRepr::Inet(*a),
            Local::Unix(u) => {
                let (path, abstract_name) = match &u.name {
                    UnixName::Path(p) => (Some(p.clone()), None),
                    UnixName::Abstract(n) => (None, Some(n.clone())),
                    UnixName::Unnamed => (None, None),
                };
                LocalRepr::Unix(UnixRepr {
                    path,
                    abstract_name,
                    kind: u.kind,
                    vfs: u.vfs,
                })
            }
        };
        repr.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Local {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Local, D::Error> {
        match LocalRepr::deserialize(d)? {
            LocalRepr::Inet(a) => Ok(Local::Inet(a)),
            LocalRepr::Unix(u) => {
                let name = match (u.path, u.abstract_name) {
                    (Some(p), None) => UnixName::Path(p),
                    (None, Some(n)) => UnixName::Abstract(n),
                    (None, None) => UnixName::Unnamed,
                    (Some(_), Some(_)) => {
                        return Err(serde::de::Error::custom(
                            "a Unix listener has a path or an abstract name, not both",
                        ));
                    }
                };
                Ok(Local::Unix(UnixLocal {
                    name,
                    kind: u.kind,
                    vfs: u.vfs,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(name: UnixName, kind: UnixKind) -> Local {
        Local::Unix(UnixLocal {
            name,
            kind,
            vfs: Some(Vfs { ino: 7, dev: 24 }),
        })
    }

    #[test]
    fn an_ipv4_listener_is_written_as_display_writes_it() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut addrs: Vec<std::net::SocketAddrV4> = ["0.0.0.0:0", "255.255.255.255:65535"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        for _ in 0..2000 {
            // xorshift: every octet and port length, reproducibly.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let b = seed.to_le_bytes();
            let ip = std::net::Ipv4Addr::new(b[0] >> (b[4] % 8), b[1], b[2] % 10, b[3]);
            addrs.push(std::net::SocketAddrV4::new(
                ip,
                u16::from_le_bytes([b[5], b[6]]) >> (b[7] % 16),
            ));
        }
        for a in addrs {
            let json = serde_json::to_string(&Local::Inet(SocketAddr::V4(a))).unwrap();
            assert_eq!(json, format!("\"{a}\""));
            let back: Local = serde_json::from_str(&json).unwrap();
            assert_eq!(back, Local::Inet(SocketAddr::V4(a)));
        }
        let v6: SocketAddr = "[::1]:8100".parse().unwrap();
        assert_eq!(
            serde_json::to_string(&Local::Inet(v6)).unwrap(),
            "\"[::1]:8100\""
        );
    }

    #[test]
    fn locals_round_trip_and_tcp_keeps_its_schema_1_form() {
        let cases = [
            Local::Inet("127.0.0.1:8100".parse().unwrap()),
            Local::Inet("[::]:80".parse().unwrap()),
            unix(
                UnixName::Path(Name::new(b"/run/php.sock")),
                UnixKind::Stream,
            ),
            unix(UnixName::Abstract(Name::new(b"a\0b")), UnixKind::Seqpacket),
            unix(
                UnixName::Path(Name::new(b"/tmp/\xff\xfe.sock")),
                UnixKind::Stream,
            ),
            unix(UnixName::Unnamed, UnixKind::Stream),
        ];
        for l in cases {
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(serde_json::from_str::<Local>(&json).unwrap(), l, "{json}");
        }
        let tcp = serde_json::to_string(&Local::Inet("127.0.0.1:8100".parse().unwrap()));
        assert_eq!(tcp.unwrap(), "\"127.0.0.1:8100\"");
        let both = r#"{"path": "/a", "abstract": "b", "type": "stream"}"#;
        assert!(serde_json::from_str::<Local>(both).is_err());
    }

    #[test]
    fn names_are_escaped_in_text_and_exact_in_json() {
        let odd = unix(
            UnixName::Path(Name::new(b"/tmp/a\nb\xff")),
            UnixKind::Stream,
        );
        assert_eq!(odd.to_string(), "/tmp/a\\x0ab\\xff");
        let json = serde_json::to_string(&odd).unwrap();
        assert!(json.contains("[47,116,109,112,47,97,10,98,255]"), "{json}");
        let abs = unix(
            UnixName::Abstract(Name::new(b"appsock")),
            UnixKind::Seqpacket,
        );
        assert_eq!(abs.to_string(), "@appsock (seqpacket)");
        assert_eq!(Vfs::kernel_dev(8, 1), 8 << 20 | 1);
    }
}
