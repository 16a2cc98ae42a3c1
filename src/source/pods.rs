//! Which Kubernetes pod or container a network namespace belongs to, from what any node has:
//! the cgroup paths of the namespace's processes and kubelet's pod log directories. No API
//! server, no CRI socket. Pure parsing, plus one directory listing.
//!
//! kubelet names a pod's cgroup after its UID: `kubepods-burstable-pod<UID with _>.slice` with
//! the systemd driver, `/kubepods/<qos>/pod<UID>/` with the cgroupfs driver; containers are
//! `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope` or `/<id>` below it. The
//! path is relative to the reader's cgroup namespace, so it may begin with `/../..`: only its
//! components are looked at. Pod logs live in `/var/log/pods/<namespace>_<name>_<UID>`
//! (names and namespaces are DNS labels: no `_`).

use std::collections::HashMap;
use std::path::Path;

use crate::model::Identity;
use crate::source::netns::Member;

/// Where kubelet keeps pod logs.
pub const POD_LOGS: &str = "/var/log/pods";

/// A pod UID in a cgroup path, in its usual dashed form.
pub fn pod_uid(cgroup: &str) -> Option<String> {
    cgroup.split('/').find_map(|part| {
        // systemd driver: kubepods-besteffort-pod1b6e..._..._.slice; cgroupfs: pod1b6e...-...
        let part = part.strip_suffix(".slice").unwrap_or(part);
        let uid = part.rsplit_once("-pod").map_or_else(
            || part.strip_prefix("pod"),
            |(prefix, uid)| prefix.starts_with("kubepods").then_some(uid),
        )?;
        let uid = uid.replace('_', "-");
        looks_like_uid(&uid).then_some(uid)
    })
}

/// 8-4-4-4-12 hex digits.
fn looks_like_uid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Pod UID → (namespace, name), from the pod log directories under `dir`. Empty when the
/// directory is absent (not a Kubernetes node, or not mounted into our container).
pub fn pods_by_uid(dir: &Path) -> HashMap<String, (String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let mut parts = name.splitn(3, '_');
            let (ns, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
            looks_like_uid(uid).then(|| (uid.to_string(), (ns.to_string(), pod.to_string())))
        })
        .collect()
}

/// The identity of a namespace from its processes. The initial namespace is `host` and no
/// pod's: host-network pods share it. A namespace whose processes name two different pods is
/// no pod's either.
pub fn identity(
    initial: bool,
    names: &[String],
    members: &[Member],
    pods: &HashMap<String, (String, String)>,
) -> Identity {
    let name = if initial {
        "host".to_string()
    } else {
        names.join(",")
    };
    if initial {
        return Identity {
            name,
            ..Identity::default()
        };
    }
    let mut by_pid: Vec<&Member> = members.iter().collect();
    by_pid.sort_by_key(|m| m.pid);
    let container_id = by_pid
        .iter()
        .find_map(|m| m.container.clone())
        .unwrap_or_default();
    let mut uids = by_pid
        .iter()
        .filter_map(|m| m.cgroup.as_deref().and_then(pod_uid));
    let pod_uid = match uids.next() {
        Some(first) if uids.all(|u| u == first) => first,
        _ => String::new(),
    };
    let (pod_namespace, pod) = pods.get(&pod_uid).cloned().unwrap_or_default();
    Identity {
        name,
        container_id,
        pod_namespace,
        pod,
        pod_uid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::netns::container_id;

    /// A member with this cgroup, its container id read from it.
    fn member(pid: u32, cgroup: &str) -> Member {
        Member {
            pid,
            comm: None,
            cgroup: Some(cgroup.to_string()),
            container: container_id(cgroup),
        }
    }

    const UID: &str = "1b6e2f3a-4c5d-4e6f-8a9b-0c1d2e3f4a5b";

    fn id(n: char) -> String {
        std::iter::repeat_n(n, 64).collect()
    }

    #[test]
    fn pod_uids_from_both_cgroup_drivers_and_foreign_cgroup_namespaces() {
        let systemd = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{}.scope",
            UID.replace('-', "_"),
            id('a')
        );
        let guaranteed = format!(
            "/kubepods.slice/kubepods-pod{}.slice/crio-{}.scope",
            UID.replace('-', "_"),
            id('b')
        );
        let cgroupfs = format!("/kubepods/besteffort/pod{UID}/{}", id('c'));
        let foreign = format!(
            "/../../kubepods-besteffort-pod{}.slice/cri-containerd-{}.scope",
            UID.replace('-', "_"),
            id('d')
        );
        for path in [&systemd, &guaranteed, &cgroupfs, &foreign] {
            assert_eq!(pod_uid(path).as_deref(), Some(UID), "{path}");
        }
        for path in [
            "/system.slice/docker-0123.scope",
            "/user.slice/user-1000.slice/session-2.scope",
            "/kubepods.slice/kubepods-burstable.slice",
            "/podman-pod-1.slice",
        ] {
            assert_eq!(pod_uid(path), None, "{path}");
        }
    }

    #[test]
    fn a_pods_namespace_gets_its_pod_and_sandbox_and_the_host_none() {
        let sandbox = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{}.scope",
            UID.replace('-', "_"),
            id('a')
        );
        let app = sandbox.replace(&id('a'), &id('e'));
        let pods = HashMap::from([(UID.to_string(), ("shop".to_string(), "web-7d9".to_string()))]);
        let members = [member(4200, &app), member(4100, &sandbox)];
        let got = identity(false, &[], &members, &pods);
        assert_eq!(
            got,
            Identity {
                name: String::new(),
                container_id: id('a'),
                pod_namespace: "shop".into(),
                pod: "web-7d9".into(),
                pod_uid: UID.into(),
            }
        );
        // Without the log directory, the UID alone.
        let bare = identity(false, &[], &members, &HashMap::new());
        assert_eq!((bare.pod_uid.as_str(), bare.pod.as_str()), (UID, ""));
        // Host-network pods live in the host namespace: it is nobody's pod.
        let host = identity(true, &[], &members, &pods);
        assert_eq!(host.name, "host");
        assert_eq!((host.pod.as_str(), host.container_id.as_str()), ("", ""));
        // Two pods in one namespace: no pod is claimed.
        let two = format!(
            "/kubepods/pod{}/{}",
            "0a0a0a0a-0a0a-0a0a-0a0a-0a0a0a0a0a0a",
            id('f')
        );
        let mixed = [member(1, &sandbox), member(2, &two)];
        assert_eq!(identity(false, &[], &mixed, &pods).pod_uid, "");
        // A named namespace keeps its names.
        let named = identity(false, &["blue".into(), "green".into()], &[], &pods);
        assert_eq!(named.name, "blue,green");
    }

    #[test]
    fn pod_log_directories_give_namespace_and_name() {
        let dir = std::env::temp_dir().join(format!("blt-pods-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(format!("kube-system_coredns-5d78c_{UID}"))).unwrap();
        std::fs::create_dir_all(dir.join("not-a-pod")).unwrap();
        std::fs::create_dir_all(dir.join("a_b_not-a-uid")).unwrap();
        let pods = pods_by_uid(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(pods.len(), 1);
        assert_eq!(
            pods.get(UID),
            Some(&("kube-system".to_string(), "coredns-5d78c".to_string()))
        );
        assert!(pods_by_uid(Path::new("/nonexistent/pods")).is_empty());
    }
}
