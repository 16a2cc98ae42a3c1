//! Resets traced one by one (`doctor --trace`, `source::trace`): what a snapshot keeps of them.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The RSTs of one namespace over the window, by source address and reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traced {
    pub resets: Vec<TracedResets>,
    /// Events of other namespaces, or that could not be tied to one (sent from a softirq in
    /// another task's context, by a task gone before it could be looked up).
    pub elsewhere: u64,
    /// Of the kept events, those tied by address alone: their task had exited, and they came
    /// from the address and port of one of the namespace's listeners.
    #[serde(default)]
    pub by_address: u64,
    /// Events the trace buffer lost: the counts are lower bounds.
    pub lost: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedResets {
    /// The RST's source: a listener's address, or one nothing listens on (NO_SOCKET); for
    /// resets on the namespace's own connections (`remote`), the local address with port 0,
    /// standing for the ports connect() chose.
    pub local: SocketAddr,
    /// Resets on this namespace's own outgoing connections (sent from a port of
    /// `ip_local_port_range` that no listener takes): the server they went to. None: sent by a
    /// listener's port to its clients, or from a port nothing listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<SocketAddr>,
    /// The kernel's `sk_rst_reason`, e.g. TCP_ABORT_ON_CLOSE, NO_SOCKET.
    pub reason: String,
    pub count: u64,
    /// The processes in whose context they were sent, by name.
    pub tasks: Vec<String>,
}
