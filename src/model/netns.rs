//! A network namespace as pages name it and commands reach it, decided once: `Where::of` (by
//! its name, as the host's, or by the process or nsfs path it was entered by), `Where::label`
//! (every page's words for it), `Identity` (who it belongs to: container, pod), and `Scraped`,
//! the namespaces of one collection as `metrics` and the exporter write them (the collection
//! layer fills it; the metrics renderer reads nothing else). Pure: no I/O.

use std::time::Duration;

use super::{Netns, Snapshot};

/// The network namespace a command must run in, as far as it can be told. The commands
/// themselves (`sysctl`, `persist`, `backlogctl`) are the remedy's: `doctor/remedy.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    /// The host's initial namespace.
    Host,
    /// A namespace with a name under /run/netns (`ip netns add`).
    Named(String),
    /// An nsfs path, such as /proc/PID/ns/net or /var/run/docker/netns/ID.
    Path(String),
    /// The namespace of a process (a container's, when `container`).
    Pid { pid: u32, container: bool },
    /// Not the host's or not known to be, and no way to enter it was recorded.
    Unknown,
}

/// The two ways a page names a network namespace (`Where::label`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetnsLabel {
    /// What a sentence puts after "network namespace", by how it is reached: `host`, `bpy`,
    /// `pid 4242`, `/proc/4242/ns/net`, `unknown`.
    Short,
    /// A report's heading, which names a namespace with no name by its inode (this one):
    /// `host network namespace`, `network namespace bpy (4026532177)`, `network namespace
    /// 4026532177`, `network namespace unknown`.
    Heading(Option<u64>),
}

impl Where {
    /// Chooses how to reach the namespace of `netns`: by name, as the host, or by the PID or
    /// path it was entered by. `netns.pid` is also set by the recorder to a process checked to
    /// live in the namespace (holding a socket does not prove it: descriptors travel).
    pub fn of(netns: &Netns) -> Where {
        if let Some(name) = netns.names.first() {
            return Where::Named(name.clone());
        }
        if netns.initial == Some(true) {
            return Where::Host;
        }
        let container = netns.initial == Some(false);
        if let Some(pid) = netns.pid {
            return Where::Pid { pid, container };
        }
        match &netns.path {
            Some(path) => Where::Path(path.clone()),
            None => Where::Unknown,
        }
    }

    /// How every page names the namespace: by its name, as the host's, else as `form` says.
    pub fn label(&self, form: NetnsLabel) -> String {
        match (form, self) {
            (NetnsLabel::Short, Where::Host) => "host".into(),
            (NetnsLabel::Short, Where::Named(n) | Where::Path(n)) => n.clone(),
            (NetnsLabel::Short, Where::Pid { pid, .. }) => format!("pid {pid}"),
            (NetnsLabel::Short, Where::Unknown) => "unknown".into(),
            (NetnsLabel::Heading(_), Where::Host) => "host network namespace".into(),
            (NetnsLabel::Heading(inode), Where::Named(n)) => format!(
                "network namespace {n}{}",
                inode.map(|i| format!(" ({i})")).unwrap_or_default()
            ),
            (NetnsLabel::Heading(inode), Where::Path(_) | Where::Pid { .. } | Where::Unknown) => {
                match inode {
                    Some(i) => format!("network namespace {i}"),
                    None => "network namespace unknown".into(),
                }
            }
        }
    }
}

/// What a namespace is, for people: every field empty when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// `host` for the initial namespace, else its /run/netns names joined by `,`.
    pub name: String,
    /// The container holding the namespace (for a pod: its sandbox, whose process is the
    /// namespace's oldest).
    pub container_id: String,
    pub pod_namespace: String,
    pub pod: String,
    pub pod_uid: String,
}

/// What one scrape saw.
#[derive(Debug, Clone, Default)]
pub struct Scraped {
    /// Ordered by inode.
    pub namespaces: Vec<ScrapedNs>,
    /// How long collecting every namespace took.
    pub duration: Duration,
}

/// One namespace of a scrape.
#[derive(Debug, Clone)]
pub struct ScrapedNs {
    /// The namespace's inode: the `netns` label. None only when even that could not be read.
    pub inode: Option<u64>,
    pub identity: Identity,
    /// Its single sample, with owners; None when it failed, vanished or was late.
    pub snapshot: Option<Snapshot>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(initial: Option<bool>, names: &[&str], pid: Option<u32>, path: Option<&str>) -> Netns {
        Netns {
            inode: Some(4026532177),
            initial,
            names: names.iter().map(|s| s.to_string()).collect(),
            pid,
            path: path.map(String::from),
        }
    }

    #[test]
    fn one_label_a_short_form_and_a_heading() {
        let cases = [
            (
                ns(Some(true), &[], Some(1), None),
                "host",
                "host network namespace",
            ),
            (
                ns(Some(false), &["bpy"], Some(42), None),
                "bpy",
                "network namespace bpy (4026532177)",
            ),
            (
                ns(Some(false), &[], Some(42), None),
                "pid 42",
                "network namespace 4026532177",
            ),
            (
                ns(None, &[], None, Some("/proc/42/ns/net")),
                "/proc/42/ns/net",
                "network namespace 4026532177",
            ),
            (
                ns(Some(false), &[], None, None),
                "unknown",
                "network namespace 4026532177",
            ),
        ];
        for (netns, short, heading) in cases {
            let at = Where::of(&netns);
            assert_eq!(at.label(NetnsLabel::Short), short);
            assert_eq!(at.label(NetnsLabel::Heading(netns.inode)), heading);
        }
        let unnamed = Where::of(&Netns::default());
        assert_eq!(
            unnamed.label(NetnsLabel::Heading(None)),
            "network namespace unknown"
        );
        assert_eq!(
            Where::Named("bpy".into()).label(NetnsLabel::Heading(None)),
            "network namespace bpy"
        );
    }
}
