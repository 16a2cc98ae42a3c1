//! `lab --veth`: the clients' own network namespace, joined to the server's by a veth pair, so
//! that each side's kernel shows only its own half of the burst (docs/kernel.md §13). Both
//! namespaces are private: the server's is the one `setup::stage` moved the process into, the
//! clients' is made here by a thread (`unshare(CLONE_NEWNET)` is per thread) and held by a
//! descriptor; it disappears, with its end of the pair and so the whole pair, once that
//! descriptor is dropped and its last thread has ended. Nothing on the host is touched.
//!
//! The pair is made with one rtnetlink request (RTM_NEWLINK, kind `veth`, the peer placed into
//! the clients' namespace by IFLA_NET_NS_FD, as `ip link add … type veth peer … netns …`
//! does); addresses and IFF_UP are set with the classic interface ioctls, each from a thread in
//! the interface's namespace. Before the burst, the lab waits until both ends run (the kernel
//! drops what a device sends before its queue is activated, `linkwatch_do_dev`) and until the
//! clients' side has resolved the server's link-layer address: a burst of SYNs before that
//! would wait in the neighbour's small unresolved queue and lose some, which would read as
//! SYNs dropped by the server.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// The server's end and address (the namespace `setup::stage` made).
pub(super) const SERVER_IF: &str = "lab-server";
pub(super) const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// The clients' end and address, in their own namespace.
pub(super) const CLIENTS_IF: &str = "lab-clients";
pub(super) const CLIENTS_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
/// Both on a /24 of their own: the namespaces are private, so it collides with nothing.
const NETMASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);

/// The clients' namespace, held open, joined to the calling thread's by a running veth pair.
#[derive(Clone)]
pub(super) struct Clients {
    ns: Arc<OwnedFd>,
}

impl Clients {
    /// Makes the clients' namespace and the pair, from a thread in the server's namespace.
    pub(super) fn join() -> Result<Clients> {
        let ns = Arc::new(new_namespace()?);
        create_pair(&ns)?;
        configure(SERVER_IF, SERVER_IP)?;
        let clients = Clients { ns };
        clients.within(|| configure(CLIENTS_IF, CLIENTS_IP))??;
        wait_running(SERVER_IF)?;
        clients.within(|| {
            wait_running(CLIENTS_IF)?;
            resolve_server()
        })??;
        Ok(clients)
    }

    /// Moves the calling thread into the clients' namespace. First thing on a thread, before
    /// any socket: one stays in the namespace it was opened in.
    pub(super) fn enter(&self) -> Result<()> {
        nix::sched::setns(self.ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
            Error::Permission {
                what: "entering the lab's clients' namespace".into(),
                hint: format!("setns(CLONE_NEWNET) failed: {e}"),
            }
        })
    }

    /// Runs `f` on a new thread in the clients' namespace (threads it starts are there too)
    /// and waits for it.
    pub(super) fn within<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let me = self.clone();
        std::thread::Builder::new()
            .spawn(move || me.enter().map(|()| f()))
            .map_err(|source| Error::Io {
                what: "starting a thread in the lab's clients' namespace",
                source,
            })?
            .join()
            .map_err(|p| Error::panicked("a thread in the lab's clients' namespace", p))?
    }
}

/// A new network namespace with `lo` up, made by a thread of its own and returned as a
/// descriptor (`/proc/thread-self/ns/net`), which keeps it alive after the thread ends.
fn new_namespace() -> Result<OwnedFd> {
    let made = std::thread::Builder::new()
        .spawn(|| -> Result<OwnedFd> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                Error::Permission {
                    what: "creating the lab's clients' network namespace".into(),
                    hint: format!("unshare(CLONE_NEWNET) failed: {e}"),
                }
            })?;
            crate::source::netns::loopback_up().map_err(|e| Error::Permission {
                what: "bringing up lo in the lab's clients' namespace".into(),
                hint: e.to_string(),
            })?;
            let path = "/proc/thread-self/ns/net";
            Ok(std::fs::File::open(path)
                .map_err(|e| Error::read(path, e))?
                .into())
        })
        .map_err(|source| Error::Io {
            what: "starting the thread that makes the clients' namespace",
            source,
        })?;
    made.join()
        .map_err(|p| Error::panicked("the thread making the clients' namespace", p))?
}

// rtnetlink numbers (include/uapi/linux/rtnetlink.h, if_link.h, veth.h).
const RTM_NEWLINK: u16 = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
/// struct ifinfomsg: family, pad, type, index, flags, change — all zero here.
const IFINFOMSG_LEN: usize = 16;

/// Appends one attribute (length, type, payload, padded to 4 bytes).
fn attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// A NUL-terminated interface name.
fn name(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// RTM_NEWLINK for the pair `SERVER_IF` (here) ↔ `CLIENTS_IF` (in the namespace `peer_ns`).
fn new_link_request(seq: u32, peer_ns: u32) -> Vec<u8> {
    let mut peer = vec![0u8; IFINFOMSG_LEN];
    attr(&mut peer, IFLA_IFNAME, &name(CLIENTS_IF));
    attr(&mut peer, IFLA_NET_NS_FD, &peer_ns.to_ne_bytes());
    let mut data = Vec::new();
    attr(&mut data, VETH_INFO_PEER, &peer);
    let mut info = Vec::new();
    attr(&mut info, IFLA_INFO_KIND, b"veth");
    attr(&mut info, IFLA_INFO_DATA, &data);
    let mut body = vec![0u8; IFINFOMSG_LEN];
    attr(&mut body, IFLA_IFNAME, &name(SERVER_IF));
    attr(&mut body, IFLA_LINKINFO, &info);
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}

/// The kernel's answer to a request with NLM_F_ACK: Ok for an ack (error 0), the errno
/// otherwise; None when `reply` is not an NLMSG_ERROR for `seq`.
fn ack_of(reply: &[u8], seq: u32) -> Option<std::result::Result<(), i32>> {
    let (head, rest) = reply.split_at_checked(16)?;
    let kind = u16::from_ne_bytes(head[4..6].try_into().ok()?);
    let got = u32::from_ne_bytes(head[8..12].try_into().ok()?);
    if kind != NLMSG_ERROR || got != seq {
        return None;
    }
    let error = i32::from_ne_bytes(rest.get(..4)?.try_into().ok()?);
    Some(if error == 0 { Ok(()) } else { Err(-error) })
}

fn create_pair(peer_ns: &OwnedFd) -> Result<()> {
    use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
    let fail = |op, source| Error::Netlink { op, source };
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| fail("socket(NETLINK_ROUTE)", e))?;
    socket.bind_auto().map_err(|e| fail("bind", e))?;
    let seq = 1;
    let request = new_link_request(seq, peer_ns.as_raw_fd() as u32);
    socket
        .send(&request, 0)
        .map_err(|e| fail("send RTM_NEWLINK", e))?;
    let mut buf = vec![0u8; 8192];
    loop {
        let mut chunk = &mut buf[..];
        let n = socket
            .recv(&mut chunk, 0)
            .map_err(|e| fail("recv RTM_NEWLINK's answer", e))?;
        match ack_of(&buf[..n.min(buf.len())], seq) {
            Some(Ok(())) => return Ok(()),
            Some(Err(errno)) => {
                return Err(Error::Permission {
                    what: format!("creating the veth pair {SERVER_IF} ↔ {CLIENTS_IF}"),
                    hint: format!(
                        "RTM_NEWLINK failed: {} (needs CAP_NET_ADMIN in the lab's namespace and \
                         a kernel with CONFIG_VETH)",
                        std::io::Error::from_raw_os_error(errno)
                    ),
                });
            }
            None => continue,
        }
    }
}

/// An AF_INET datagram socket for interface ioctls, in the calling thread's namespace.
fn ioctl_socket() -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(std::io::Error::from)
}

fn ifreq(ifname: &str) -> nix::libc::ifreq {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: nix::libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(ifname.bytes()) {
        *dst = src as nix::libc::c_char;
    }
    ifr
}

fn sockaddr(ip: Ipv4Addr) -> nix::libc::sockaddr {
    let sin = nix::libc::sockaddr_in {
        sin_family: nix::libc::AF_INET as nix::libc::sa_family_t,
        sin_port: 0,
        sin_addr: nix::libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; the kernel reads it as sockaddr_in.
    unsafe { std::mem::transmute::<nix::libc::sockaddr_in, nix::libc::sockaddr>(sin) }
}

/// One interface ioctl on `ifr`.
fn ioctl(
    fd: &OwnedFd,
    request: nix::libc::Ioctl,
    ifr: &mut nix::libc::ifreq,
) -> std::io::Result<()> {
    // SAFETY: `ifr` is a valid ifreq we own, for the duration of the call.
    match unsafe { nix::libc::ioctl(fd.as_raw_fd(), request, ifr as *mut nix::libc::ifreq) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Gives `ifname` (in the calling thread's namespace) the address `ip`/24 and brings it up.
fn configure(ifname: &str, ip: Ipv4Addr) -> Result<()> {
    let step = |what: &str, e: std::io::Error| Error::Permission {
        what: format!("{what} {ifname} in the lab's namespaces"),
        hint: e.to_string(),
    };
    let fd = ioctl_socket().map_err(|e| step("configuring", e))?;
    let mut ifr = ifreq(ifname);
    ifr.ifr_ifru.ifru_addr = sockaddr(ip);
    ioctl(&fd, nix::libc::SIOCSIFADDR as _, &mut ifr).map_err(|e| step("addressing", e))?;
    let mut ifr = ifreq(ifname);
    ifr.ifr_ifru.ifru_netmask = sockaddr(NETMASK);
    ioctl(&fd, nix::libc::SIOCSIFNETMASK as _, &mut ifr).map_err(|e| step("addressing", e))?;
    let mut ifr = ifreq(ifname);
    ioctl(&fd, nix::libc::SIOCGIFFLAGS as _, &mut ifr).map_err(|e| step("reading", e))?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { ifr.ifr_ifru.ifru_flags |= nix::libc::IFF_UP as nix::libc::c_short };
    ioctl(&fd, nix::libc::SIOCSIFFLAGS as _, &mut ifr).map_err(|e| step("bringing up", e))
}

/// Polls until `ifname` runs (IFF_RUNNING: operationally up, its queue activated), a bounded
/// number of times.
fn wait_running(ifname: &str) -> Result<()> {
    let fd = ioctl_socket().map_err(|e| Error::Io {
        what: "checking the lab's veth",
        source: e,
    })?;
    for _ in 0..2000 {
        let mut ifr = ifreq(ifname);
        if ioctl(&fd, nix::libc::SIOCGIFFLAGS as _, &mut ifr).is_ok() {
            // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
            let flags = unsafe { ifr.ifr_ifru.ifru_flags };
            if flags & nix::libc::IFF_RUNNING as nix::libc::c_short != 0 {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(Error::Deadline(format!(
        "the lab's veth end {ifname} did not come up within 2 s"
    )))
}

/// From the clients' side: one UDP datagram to a port nothing listens on at the server's
/// address, until the server's ICMP "port unreachable" comes back as ECONNREFUSED — a round
/// trip that leaves each side knowing the other's link-layer address. UDP and ICMP move no
/// TCP counter.
fn resolve_server() -> Result<()> {
    let fail = |source| Error::Io {
        what: "reaching the lab's server over the veth",
        source,
    };
    let socket = UdpSocket::bind((CLIENTS_IP, 0)).map_err(fail)?;
    socket
        .connect(SocketAddr::from((SERVER_IP, 9)))
        .map_err(fail)?;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(fail)?;
    let mut buf = [0u8; 8];
    for _ in 0..20 {
        let _ = socket.send(b"lab");
        match socket.recv(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(()),
            _ => continue,
        }
    }
    Err(Error::Deadline(
        "the lab's server address did not answer over the veth within 4 s".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_link_request_on_the_wire() {
        let msg = new_link_request(7, 5);
        let u16_at = |i: usize| u16::from_ne_bytes([msg[i], msg[i + 1]]);
        let u32_at = |i: usize| u32::from_ne_bytes(msg[i..i + 4].try_into().unwrap());
        // nlmsghdr: length, RTM_NEWLINK, REQUEST|ACK|EXCL|CREATE, seq 7, port 0.
        assert_eq!(u32_at(0) as usize, msg.len());
        assert_eq!(
            (u16_at(4), u16_at(6), u32_at(8), u32_at(12)),
            (16, 0x605, 7, 0)
        );
        // ifinfomsg: all zero.
        assert!(msg[16..32].iter().all(|b| *b == 0));
        // IFLA_IFNAME "lab-server\0": 4 + 11 bytes, padded to 16.
        assert_eq!((u16_at(32), u16_at(34)), (15, IFLA_IFNAME));
        assert_eq!(&msg[36..47], b"lab-server\0");
        // IFLA_LINKINFO { IFLA_INFO_KIND "veth", IFLA_INFO_DATA { VETH_INFO_PEER {
        //   ifinfomsg, IFLA_IFNAME "lab-clients\0", IFLA_NET_NS_FD 5 } } }.
        assert_eq!(u16_at(50), IFLA_LINKINFO);
        assert_eq!(u16_at(48) as usize, msg.len() - 48);
        assert_eq!((u16_at(52), u16_at(54)), (8, IFLA_INFO_KIND));
        assert_eq!(&msg[56..60], b"veth");
        assert_eq!(u16_at(62), IFLA_INFO_DATA);
        assert_eq!(u16_at(66), VETH_INFO_PEER);
        assert!(msg[68..84].iter().all(|b| *b == 0));
        assert_eq!((u16_at(84), u16_at(86)), (16, IFLA_IFNAME));
        assert_eq!(&msg[88..100], b"lab-clients\0");
        assert_eq!((u16_at(100), u16_at(102)), (8, IFLA_NET_NS_FD));
        assert_eq!(u32_at(104), 5);
        assert_eq!(msg.len(), 108);
    }

    #[test]
    fn acks_and_errors() {
        let reply = |kind: u16, seq: u32, error: i32| {
            let mut m = Vec::new();
            m.extend_from_slice(&36u32.to_ne_bytes());
            m.extend_from_slice(&kind.to_ne_bytes());
            m.extend_from_slice(&0u16.to_ne_bytes());
            m.extend_from_slice(&seq.to_ne_bytes());
            m.extend_from_slice(&0u32.to_ne_bytes());
            m.extend_from_slice(&error.to_ne_bytes());
            m.extend_from_slice(&[0; 16]);
            m
        };
        assert_eq!(ack_of(&reply(NLMSG_ERROR, 1, 0), 1), Some(Ok(())));
        assert_eq!(ack_of(&reply(NLMSG_ERROR, 1, -17), 1), Some(Err(17)));
        assert_eq!(ack_of(&reply(NLMSG_ERROR, 2, 0), 1), None);
        assert_eq!(ack_of(&reply(RTM_NEWLINK, 1, 0), 1), None);
        assert_eq!(ack_of(&[0; 10], 1), None);
    }
}
