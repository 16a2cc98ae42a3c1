//! The catalogue: every counter, sysctl and column backlogctl talks about, once — its name and
//! aliases, what it means in our words (docs/kernel.md section named with each), and for the
//! counters exported to Prometheus their metric name and help. `explain`, `metrics`, `watch`,
//! `lab` and the rules all read it. Data only; looking values up is the caller's business
//! (`render::explain::now` for explain's "Now, in this network namespace").

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `/proc/net/netstat` or `/proc/net/snmp` counter, keyed `Section:Name`.
    Counter(&'static str),
    /// A sysctl, dotted name.
    Sysctl(&'static str),
    /// A column or field of `ss` / inet_diag.
    Field,
}

/// `net.ipv4.ip_local_port_range`: two numbers, read apart from the others.
pub const IP_LOCAL_PORT_RANGE: &str = "net.ipv4.ip_local_port_range";
/// Connection tracking's table size and use, present only where it is loaded.
pub const NF_CONNTRACK_MAX: &str = "net.netfilter.nf_conntrack_max";
pub const NF_CONNTRACK_COUNT: &str = "net.netfilter.nf_conntrack_count";

/// The listen-queue sysctls backlogctl reads, each once: its dotted name (as `sysctl` and the
/// reports spell it), its file under /proc/sys, and (`model::Sysctls::get`) the field that
/// holds its value in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Sysctl {
    Somaxconn,
    TcpMaxSynBacklog,
    TcpSyncookies,
    TcpAbortOnOverflow,
    TcpSynackRetries,
    TcpSynRetries,
    TcpSynLinearTimeouts,
    TcpTwReuse,
}

impl Sysctl {
    /// Every one, in the order snapshots and metrics list them.
    pub(crate) const ALL: [Sysctl; 8] = [
        Sysctl::Somaxconn,
        Sysctl::TcpMaxSynBacklog,
        Sysctl::TcpSyncookies,
        Sysctl::TcpAbortOnOverflow,
        Sysctl::TcpSynackRetries,
        Sysctl::TcpSynRetries,
        Sysctl::TcpSynLinearTimeouts,
        Sysctl::TcpTwReuse,
    ];

    /// `net.core.somaxconn`.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Sysctl::Somaxconn => "net.core.somaxconn",
            Sysctl::TcpMaxSynBacklog => "net.ipv4.tcp_max_syn_backlog",
            Sysctl::TcpSyncookies => "net.ipv4.tcp_syncookies",
            Sysctl::TcpAbortOnOverflow => "net.ipv4.tcp_abort_on_overflow",
            Sysctl::TcpSynackRetries => "net.ipv4.tcp_synack_retries",
            Sysctl::TcpSynRetries => "net.ipv4.tcp_syn_retries",
            Sysctl::TcpSynLinearTimeouts => "net.ipv4.tcp_syn_linear_timeouts",
            Sysctl::TcpTwReuse => "net.ipv4.tcp_tw_reuse",
        }
    }

    /// `/proc/sys/net/core/somaxconn`.
    pub(crate) fn path(self) -> String {
        sysctl_path(self.name())
    }
}

/// The file of a sysctl under /proc/sys, from its dotted name: `net.core.somaxconn` →
/// `/proc/sys/net/core/somaxconn`.
pub(crate) fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

pub struct Entry {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub kind: Kind,
    pub text: &'static str,
    pub reference: &'static str,
    /// Prometheus metric (`backlogctl_` + its section's prefix, `metric_prefix`, + this) and
    /// its help line, for exported counters.
    pub metric: Option<(&'static str, &'static str)>,
}

/// Keys of the counters the rules and commands name, `Section:Name` as in `/proc/net/netstat`.
pub const LISTEN_OVERFLOWS: &str = "TcpExt:ListenOverflows";
pub const LISTEN_DROPS: &str = "TcpExt:ListenDrops";
pub const REQQ_FULL_DROP: &str = "TcpExt:TCPReqQFullDrop";
pub const REQQ_FULL_DO_COOKIES: &str = "TcpExt:TCPReqQFullDoCookies";
pub const SYNCOOKIES_SENT: &str = "TcpExt:SyncookiesSent";
pub const SYNCOOKIES_RECV: &str = "TcpExt:SyncookiesRecv";
pub const EMBRYONIC_RSTS: &str = "TcpExt:EmbryonicRsts";
pub const OUT_RSTS: &str = "Tcp:OutRsts";
pub const ATTEMPT_FAILS: &str = "Tcp:AttemptFails";
pub const ESTAB_RESETS: &str = "Tcp:EstabResets";
pub const RETRANS_SEGS: &str = "Tcp:RetransSegs";
pub const SYN_RETRANS: &str = "TcpExt:TCPSynRetrans";
pub const TCP_TIMEOUTS: &str = "TcpExt:TCPTimeouts";
/// `/proc/net/stat/nf_conntrack`, summed over CPUs, under a `Conntrack:` section: new flows
/// dropped for a full table, entries evicted to make room, insertions that lost a race.
pub const CONNTRACK_DROP: &str = "Conntrack:drop";
pub const CONNTRACK_EARLY_DROP: &str = "Conntrack:early_drop";
pub const CONNTRACK_INSERT_FAILED: &str = "Conntrack:insert_failed";
/// The `Conntrack:` counters, in the order `source::netstat::parse_conntrack` takes them from
/// the file's columns (named after the part behind the colon).
pub const CONNTRACK: [&str; 3] = [
    CONNTRACK_DROP,
    CONNTRACK_EARLY_DROP,
    CONNTRACK_INSERT_FAILED,
];
/// connect()s that sent their first SYN: what TCPSynRetrans and AttemptFails are set against.
pub const ACTIVE_OPENS: &str = "Tcp:ActiveOpens";
pub const PASSIVE_OPENS: &str = "Tcp:PassiveOpens";

/// The counters the connecting side's findings read (docs/kernel.md, "The client's side").
pub const CLIENT: [&str; 8] = [
    SYN_RETRANS,
    ATTEMPT_FAILS,
    ESTAB_RESETS,
    RETRANS_SEGS,
    TCP_TIMEOUTS,
    CONNTRACK_DROP,
    CONNTRACK_EARLY_DROP,
    CONNTRACK_INSERT_FAILED,
];
pub const SYNCOOKIES_FAILED: &str = "TcpExt:SyncookiesFailed";
pub const DEFER_ACCEPT_DROP: &str = "TcpExt:TCPDeferAcceptDrop";
pub const ABORT_ON_CLOSE: &str = "TcpExt:TCPAbortOnClose";
pub const ABORT_ON_DATA: &str = "TcpExt:TCPAbortOnData";
pub const ABORT_ON_LINGER: &str = "TcpExt:TCPAbortOnLinger";
pub const ABORT_ON_TIMEOUT: &str = "TcpExt:TCPAbortOnTimeout";
pub const ABORT_ON_MEMORY: &str = "TcpExt:TCPAbortOnMemory";

/// The namespace counters `watch` shows as rates.
pub const WATCH_RATES: [&str; 4] = [
    LISTEN_OVERFLOWS,
    LISTEN_DROPS,
    REQQ_FULL_DROP,
    REQQ_FULL_DO_COOKIES,
];

/// The namespace's resets by cause (docs/kernel.md §10), which `watch` shows as rates beside
/// the listen counters: in JSON always, in text when they rose.
pub const RESET_RATES: [&str; 5] = [
    ABORT_ON_CLOSE,
    ABORT_ON_DATA,
    ABORT_ON_TIMEOUT,
    ABORT_ON_MEMORY,
    OUT_RSTS,
];

/// The connecting side's counters `watch` shows as rates beside the listen counters: in JSON
/// always, in text when they rose. EstabResets + AttemptFails is the resets/s of its outgoing
/// rows (both count the namespace's two ends when client and server share it).
pub const CLIENT_RATES: [&str; 3] = [SYN_RETRANS, ESTAB_RESETS, ATTEMPT_FAILS];

/// The counters whose rise `lab` reports.
pub const LAB: [&str; 10] = [
    LISTEN_OVERFLOWS,
    LISTEN_DROPS,
    REQQ_FULL_DROP,
    REQQ_FULL_DO_COOKIES,
    SYNCOOKIES_SENT,
    SYNCOOKIES_RECV,
    EMBRYONIC_RSTS,
    ABORT_ON_CLOSE,
    OUT_RSTS,
    ATTEMPT_FAILS,
];

/// The counters whose rise `lab --veth` reports for the clients' own namespace, beside what
/// the clients recorded of themselves.
pub const LAB_CLIENT: [&str; 6] = [
    ACTIVE_OPENS,
    SYN_RETRANS,
    RETRANS_SEGS,
    TCP_TIMEOUTS,
    ESTAB_RESETS,
    ATTEMPT_FAILS,
];

/// The counters whose rise shows that a SYN queue of the namespace has filled.
pub const SYN_QUEUE_USED: [&str; 3] = [REQQ_FULL_DO_COOKIES, REQQ_FULL_DROP, SYNCOOKIES_SENT];

/// `TcpExt:ListenOverflows` → `ListenOverflows`.
pub fn short(key: &str) -> &str {
    key.split_once(':').map(|(_, n)| n).unwrap_or(key)
}

/// The part of a counter's metric name its section gives: `tcp_` for the TcpExt and Tcp
/// counters, `conntrack_` for connection tracking's (`backlogctl_conntrack_drop_total`).
pub fn metric_prefix(key: &str) -> &'static str {
    match key.split_once(':') {
        Some(("Conntrack", _)) => "conntrack_",
        _ => "tcp_",
    }
}

/// Counters exported to Prometheus: (key, metric name after `backlogctl_`, help).
pub fn exported() -> impl Iterator<Item = (&'static str, String, &'static str)> {
    ENTRIES.iter().filter_map(|e| match (e.kind, e.metric) {
        (Kind::Counter(key), Some((name, help))) => {
            Some((key, format!("{}{name}", metric_prefix(key)), help))
        }
        _ => None,
    })
}

pub const ENTRIES: &[Entry] = &[
    Entry {
        name: "ListenOverflows",
        aliases: &["TcpExt:ListenOverflows", "LINUX_MIB_LISTENOVERFLOWS"],
        kind: Kind::Counter("TcpExt:ListenOverflows"),
        text: "A segment arrived for a listener whose accept queue was full (more than B connections waiting \
               for accept()), and was dropped: a SYN (counted in tcp_conn_request) or the final ACK of a handshake \
               (counted in tcp_v4_syn_recv_sock). It counts segments, not clients: every SYN retransmit of the same \
               client counts again. It says nothing about the SYN queue. `netstat -s`: \"times the listen queue of \
               a socket overflowed\". Per network namespace.",
        reference: "§4, §3",
        metric: Some((
            "listen_overflows_total",
            "Segments dropped because a listener's accept queue was full (TcpExt ListenOverflows).",
        )),
    },
    Entry {
        name: "ListenDrops",
        aliases: &["TcpExt:ListenDrops"],
        kind: Kind::Counter("TcpExt:ListenDrops"),
        text: "Every segment a listener dropped (tcp_listendrop): accept-queue overflows plus SYN-queue drops and \
               other listener drops, so it is at least ListenOverflows. `netstat -s`: \"SYNs to LISTEN sockets \
               dropped\". Per network namespace.",
        reference: "§4",
        metric: Some((
            "listen_drops_total",
            "Segments dropped at listeners for any reason (TcpExt ListenDrops).",
        )),
    },
    Entry {
        name: "TCPReqQFullDrop",
        aliases: &["TcpExt:TCPReqQFullDrop"],
        kind: Kind::Counter("TcpExt:TCPReqQFullDrop"),
        text: "A SYN was dropped because the listener's SYN queue (half-open connections) was full and SYN cookies \
               were off (net.ipv4.tcp_syncookies=0). The SYN queue is full when it holds more than B requests. The \
               client retransmits its SYN: slow connects, then timeouts.",
        reference: "§1, §4",
        metric: Some((
            "reqq_full_drop_total",
            "SYNs dropped because a SYN queue was full without SYN cookies (TcpExt TCPReqQFullDrop).",
        )),
    },
    Entry {
        name: "TCPReqQFullDoCookies",
        aliases: &["TcpExt:TCPReqQFullDoCookies"],
        kind: Kind::Counter("TcpExt:TCPReqQFullDoCookies"),
        text: "The SYN queue was full and a SYN cookie was sent instead of keeping state: the connection still \
               completes. With net.ipv4.tcp_syncookies=2 it counts every SYN and means nothing.",
        reference: "§4",
        metric: Some((
            "reqq_full_do_cookies_total",
            "SYN cookies sent because a SYN queue was full (TcpExt TCPReqQFullDoCookies).",
        )),
    },
    Entry {
        name: "SyncookiesSent",
        aliases: &["TcpExt:SyncookiesSent"],
        kind: Kind::Counter("TcpExt:SyncookiesSent"),
        text: "SYN-ACKs sent with a SYN cookie (no request socket kept). A cookie handshake is never answered with \
               RST when its final ACK meets a full accept queue: it is dropped and the client hangs until room appears.",
        reference: "§3, §4",
        metric: Some((
            "syncookies_sent_total",
            "SYN-ACKs sent with a SYN cookie (TcpExt SyncookiesSent).",
        )),
    },
    Entry {
        name: "SyncookiesRecv",
        aliases: &["TcpExt:SyncookiesRecv"],
        kind: Kind::Counter("TcpExt:SyncookiesRecv"),
        text: "Valid SYN-cookie ACKs received (segments, retransmits included).",
        reference: "§4",
        metric: Some((
            "syncookies_recv_total",
            "Valid SYN-cookie ACKs received (TcpExt SyncookiesRecv).",
        )),
    },
    Entry {
        name: "SyncookiesFailed",
        aliases: &["TcpExt:SyncookiesFailed"],
        kind: Kind::Counter("TcpExt:SyncookiesFailed"),
        text: "ACKs that looked like SYN-cookie answers but did not validate: often the final ACK of a \
               handshake whose request was dropped or expired, answered with RST (OutRsts); the client sees \
               ECONNRESET after a connect() that had succeeded.",
        reference: "§4",
        metric: Some((
            "syncookies_failed_total",
            "Invalid SYN-cookie ACKs received (TcpExt SyncookiesFailed).",
        )),
    },
    Entry {
        name: "EmbryonicRsts",
        aliases: &["TcpExt:EmbryonicRsts"],
        kind: Kind::Counter("TcpExt:EmbryonicRsts"),
        text: "Resets of half-open connections (request sockets) in tcp_check_req, including the ones \
               net.ipv4.tcp_abort_on_overflow=1 sends when a final ACK meets a full accept queue: the clients see \
               \"Connection reset by peer\".",
        reference: "§3, §4",
        metric: Some((
            "embryonic_rsts_total",
            "Resets of half-open connections, incl. tcp_abort_on_overflow (TcpExt EmbryonicRsts).",
        )),
    },
    Entry {
        name: "OutRsts",
        aliases: &["Tcp:OutRsts"],
        kind: Kind::Counter("Tcp:OutRsts"),
        text: "Every RST this namespace sent: tcp_abort_on_overflow resets (EmbryonicRsts), close() with unread \
               data (TCPAbortOnClose), SO_LINGER {1,0} (TCPAbortOnData), keepalive expiry (TCPAbortOnTimeout), \
               memory (TCPAbortOnMemory), ACKs for dropped or expired requests (SyncookiesFailed), connections \
               still queued when a listener closed, and segments to a port nothing listens on (no counter of its \
               own: the client gets ECONNREFUSED \"Connection refused\"). doctor calls what the others leave \
               unexplained.",
        reference: "§4",
        metric: Some(("out_rsts_total", "RST segments sent (Tcp OutRsts).")),
    },
    Entry {
        name: "TCPAbortOnClose",
        aliases: &["TcpExt:TCPAbortOnClose", "LINUX_MIB_TCPABORTONCLOSE"],
        kind: Kind::Counter(ABORT_ON_CLOSE),
        text: "A socket was closed with data it had received but not read (tcp_close, data_was_unread): instead \
               of a FIN the kernel sends RST and counts it here (and in OutRsts). Typical of a server that reads \
               part of a request (one line, the first 64 bytes), replies and closes. The client reads the reply \
               already sent, then gets ECONNRESET \"Connection reset by peer\"; if it was still sending, EPIPE or \
               ECONNRESET on write. Fix in the application: read the whole request (HTTP: headers, then the body \
               per Content-Length) before closing, or shutdown(SHUT_WR), drain, then close. Per network namespace; \
               only the closing end counts it (the reset peer shows in EstabResets).",
        reference: "§10",
        metric: Some((
            "abort_on_close_total",
            "RST sent by close() with unread data (TcpExt TCPAbortOnClose): the client gets the reply, then ECONNRESET.",
        )),
    },
    Entry {
        name: "TCPAbortOnData",
        aliases: &["TcpExt:TCPAbortOnData", "LINUX_MIB_TCPABORTONDATA"],
        kind: Kind::Counter(ABORT_ON_DATA),
        text: "A socket was aborted with RST for one of two reasons: close() with SO_LINGER {on, 0} \
               (tcp_close -> tcp_disconnect; reset reason TCP_STATE), or data arriving on a socket already \
               closed whose FIN is not yet acknowledged (FIN_WAIT1, tcp_rcv_state_process; reason \
               TCP_ABORT_ON_DATA: the peer sent more of its request after the server closed). Later, once an \
               orphan is a TIME_WAIT socket, such data gets an RST counted in OutRsts alone. Not TCPAbortOnLinger, which only counts a negative \
               TCP_LINGER2 in FIN_WAIT2. The peer reads what arrived, then gets ECONNRESET \"Connection reset \
               by peer\". `doctor --trace` tells the two apart by the reason. Fix: drop SO_LINGER {1,0}; or read \
               the request whole (or shut down, drain, then close) before closing. Per network namespace. Also \
               counts this namespace's own outgoing connections.",
        reference: "§10",
        metric: Some((
            "abort_on_data_total",
            "RST sent by an abortive close (SO_LINGER {1,0}) or for data arriving after close (TcpExt TCPAbortOnData).",
        )),
    },
    Entry {
        name: "TCPAbortOnLinger",
        aliases: &["TcpExt:TCPAbortOnLinger", "LINUX_MIB_TCPABORTONLINGER"],
        kind: Kind::Counter(ABORT_ON_LINGER),
        text: "A closing socket was reset at once instead of waiting in FIN_WAIT2, because the application set \
               a negative TCP_LINGER2 (tcp_close, and tcp_rcv_state_process in FIN_WAIT1). Not SO_LINGER {1,0}: \
               that is TCPAbortOnData. The peer, which had already received all data and the FIN, gets \
               ECONNRESET if it still reads or writes. Rare; fix by not setting TCP_LINGER2 below 0. Per network \
               namespace.",
        reference: "§10",
        metric: None,
    },
    Entry {
        name: "TCPAbortOnTimeout",
        aliases: &["TcpExt:TCPAbortOnTimeout", "LINUX_MIB_TCPABORTONTIMEOUT"],
        kind: Kind::Counter(ABORT_ON_TIMEOUT),
        text: "A connection was given up on a timer: keepalive probes unanswered (tcp_keepalive_timer, which \
               sends RST: the peer sees ECONNRESET) or retransmissions exhausted (tcp_write_err: no RST, the local \
               side gets ETIMEDOUT; also counts in EstabResets). Look at the peer's reachability and at keepalive \
               and timeout settings. Per network namespace.",
        reference: "§10",
        metric: Some((
            "abort_on_timeout_total",
            "Connections given up on keepalive or retransmission timeouts (TcpExt TCPAbortOnTimeout).",
        )),
    },
    Entry {
        name: "TCPAbortOnMemory",
        aliases: &["TcpExt:TCPAbortOnMemory", "LINUX_MIB_TCPABORTONMEMORY"],
        kind: Kind::Counter(ABORT_ON_MEMORY),
        text: "A socket was reset because TCP memory (net.ipv4.tcp_mem) or the number of orphaned sockets \
               (net.ipv4.tcp_max_orphans) was exhausted (tcp_check_oom): the peer gets ECONNRESET. Look at \
               /proc/net/sockstat and raise tcp_mem / tcp_max_orphans, or close fewer sockets with data \
               pending. Per network namespace (the limits are partly machine-wide).",
        reference: "§10",
        metric: Some((
            "abort_on_memory_total",
            "RST sent for lack of TCP memory or orphan slots (TcpExt TCPAbortOnMemory).",
        )),
    },
    Entry {
        name: "EstabResets",
        aliases: &["Tcp:EstabResets"],
        kind: Kind::Counter(ESTAB_RESETS),
        text: "Connections that went from ESTABLISHED or CLOSE_WAIT straight to CLOSED (tcp_set_state): a reset \
               received (tcp_reset; the owner reads ECONNRESET, or EPIPE in CLOSE_WAIT), an abortive close of its \
               own (close() with unread data, SO_LINGER {1,0}), or a connection given up on retransmission or \
               keepalive timeouts (tcp_write_err). On a client: servers reset connections they had completed, \
               for example a full accept queue with net.ipv4.tcp_abort_on_overflow=1, where the client reads \
               ECONNRESET at connect() when the reset arrives before connect() returns, otherwise at its first \
               read or write. On a server: its own aborts and its clients' resets. It says neither who sent the \
               reset nor to which peer (doctor --trace names the peer from inet_sk_error_report, error 104), \
               and it counts both ends when client and server share the namespace, so it is not a count of \
               RSTs sent.",
        reference: "§10, §12",
        metric: Some((
            "estab_resets_total",
            "Established connections reset, sent or received, or timed out (Tcp EstabResets); both ends count in one namespace.",
        )),
    },
    Entry {
        name: "TCPBacklogDrop",
        aliases: &["TcpExt:TCPBacklogDrop"],
        kind: Kind::Counter("TcpExt:TCPBacklogDrop"),
        text: "Not a listen queue at all: a socket's *socket backlog* (packets queued while its owner held the socket \
               lock) overflowed (tcp_add_backlog). Unrelated to listen() backlogs, somaxconn or accept queues.",
        reference: "§4, §6.7",
        metric: None,
    },
    Entry {
        name: "TCPDeferAcceptDrop",
        aliases: &["TcpExt:TCPDeferAcceptDrop"],
        kind: Kind::Counter("TcpExt:TCPDeferAcceptDrop"),
        text: "Bare ACKs dropped at a TCP_DEFER_ACCEPT listener while it waits for data; they also count in the \
               listener's sk_drops (`d`), which is why drops alone are not proof of overflow. No reset: the client is accepted late, or its \
               request socket expires.",
        reference: "§4",
        metric: None,
    },
    Entry {
        name: "AttemptFails",
        aliases: &["Tcp:AttemptFails"],
        kind: Kind::Counter("Tcp:AttemptFails"),
        text: "connect()s that failed: a socket still in SYN_SENT was closed by tcp_done, because an RST \
               answered its SYN (tcp_reset: ECONNREFUSED \"Connection refused\", nothing listens on the port) or \
               its SYN retries ran out (tcp_write_err: ETIMEDOUT, about 2 minutes of TCPSynRetrans). Set against \
               ActiveOpens it is the share of connects that failed. It is a client's counter: a listener's \
               half-open connections are request sockets, which never pass through tcp_done (only a TCP Fast \
               Open child in SYN_RECV counts here), so an expired or reset handshake on a server is \
               EmbryonicRsts or nothing. It tells neither which server nor which of the two causes (a refusal \
               comes at once, a timeout after the retries), and a connect that failed before its first SYN, \
               such as EADDRNOTAVAIL for want of a local port, is not counted. lab reads it for its clients' \
               failures.",
        reference: "§10, §12",
        metric: Some((
            "attempt_fails_total",
            "Connects that failed: refused (ECONNREFUSED) or timed out after their SYN retries (Tcp AttemptFails).",
        )),
    },
    Entry {
        name: "ActiveOpens",
        aliases: &["Tcp:ActiveOpens", "TCP_MIB_ACTIVEOPENS"],
        kind: Kind::Counter(ACTIVE_OPENS),
        text: "connect()s that sent their first SYN (tcp_connect), one per attempt, not per resend. The rate of \
               new outgoing connections: TCPSynRetrans over it is the resends per connect, AttemptFails over it \
               the share that failed. Many per second to one server is also what fills the local port range \
               with TIME_WAIT (ip_local_port_range). A connect that failed before its SYN, such as \
               EADDRNOTAVAIL, is not counted. A server's accepted connections count in Tcp PassiveOpens, not \
               here. Per network namespace; it names no destination. doctor reads it beside the reset \
               counters: a namespace that opens connections of its own (a proxy to its upstreams) resets \
               them as well as its clients, and the counters count both.",
        reference: "§12",
        metric: None,
    },
    Entry {
        name: "PassiveOpens",
        aliases: &["Tcp:PassiveOpens", "TCP_MIB_PASSIVEOPENS"],
        kind: Kind::Counter(PASSIVE_OPENS),
        text: "connections a listener accepted into its queue: a handshake completed and a child socket made \
               (tcp_create_openreq_child), before accept() takes it. With ActiveOpens, the connections the \
               namespace handled in a window: doctor makes a reset finding only when the resets reach 10 and \
               1 in 100 of those, since a stray reset now and then (a client gone mid-request) is no \
               client's experience; fewer are a note in --verbose. Per network namespace; it names no \
               listener.",
        reference: "§10",
        metric: None,
    },
    Entry {
        name: "TCPSynRetrans",
        aliases: &["TcpExt:TCPSynRetrans", "LINUX_MIB_TCPSYNRETRANS"],
        kind: Kind::Counter(SYN_RETRANS),
        text: "SYNs and SYN-ACKs sent again: a connecting socket's SYN (__tcp_retransmit_skb) and a listener's \
               SYN-ACK (tcp_rtx_synack); both count in RetransSegs too. On a client, each rise is one more \
               resend of an unanswered SYN, on the schedule of net.ipv4.tcp_syn_retries (n): 1 s, 3 s, 7 s … \
               after the first SYN, connect() failing with ETIMEDOUT about 2^(n+1)-1 s after it, 127 s at the \
               default 6 (kernels with net.ipv4.tcp_syn_linear_timeouts: 1, 2, 3, 4, 5, 7 … s, about 131 s). So \
               a connect that timed out at the defaults added 6 (10 with linear timeouts), one answered on its \
               second SYN added 1; over ActiveOpens it is the resends per connect. A server whose accept queue is full \
               drops SYNs without a word, but so do a full SYN queue without cookies, a firewall, a full \
               conntrack table and a lossy path: the counter cannot tell them apart. Connects to the same \
               server that do complete after 1 s or 3 s point at its queue. On a server, each rise is a \
               SYN-ACK resent for a handshake whose final ACK did not arrive or was dropped, which a full accept \
               queue with tcp_abort_on_overflow=0 produces (resent at 1, 3, 7, 15, 31 s). In a namespace that \
               is both, the two mix. It names no destination: `ss -tn state syn-sent` (timer:(on,…,N)) or \
               doctor's connecting-side findings say which server.",
        reference: "§4.2, §12",
        metric: Some((
            "syn_retrans_total",
            "SYNs (and SYN-ACKs) sent again for want of an answer (TcpExt TCPSynRetrans): connects waiting for a server that does not answer.",
        )),
    },
    Entry {
        name: "RetransSegs",
        aliases: &["Tcp:RetransSegs", "TCP_MIB_RETRANSSEGS"],
        kind: Kind::Counter(RETRANS_SEGS),
        text: "Segments sent again, of every kind: data, SYNs (also TCPSynRetrans), SYN-ACKs, FINs \
               (__tcp_retransmit_skb, tcp_rtx_synack), after a timeout or by fast retransmit. On a client whose \
               server is slow to take connections from a full accept queue (tcp_abort_on_overflow=0), the \
               connection is ESTABLISHED for the client but not for the server, which dropped the final ACK: \
               the request is never acknowledged and goes out again on the timer (`ss -ti`: unacked:1, Send-Q \
               the request's size; TCPTimeouts rises with it). Without a target, doctor dumps \
               established connections only while this rises. On a server: SYN-ACKs resent, and ordinary loss. It names no connection and no peer, \
               and does not tell a lossy path from a peer that does not acknowledge.",
        reference: "§12",
        metric: Some((
            "retrans_segs_total",
            "Segments sent again: SYNs, SYN-ACKs and data (Tcp RetransSegs).",
        )),
    },
    Entry {
        name: "TCPTimeouts",
        aliases: &["TcpExt:TCPTimeouts", "LINUX_MIB_TCPTIMEOUTS"],
        kind: Kind::Counter(TCP_TIMEOUTS),
        text: "Retransmission timers that expired: each time a socket's RTO fires with a SYN, data or a FIN \
               unacknowledged (tcp_retransmit_timer), and each time a listener's half-open connection's \
               SYN-ACK timer fires (tcp_syn_ack_timeout). Unlike RetransSegs it leaves out fast retransmits: it \
               is the part where nothing came back for a whole timeout. On a client: SYNs unanswered (SYN_SENT) \
               and requests unacknowledged on connections a full server queue has not taken in (ESTABLISHED, \
               unacked); 300 clients against a listen(8) server accepting one connection per 200 ms raised it \
               by about 1900. On a server: SYN-ACK timers of handshakes not completed. It names no peer, and a \
               lossy path raises it too.",
        reference: "§12",
        metric: Some((
            "timeouts_total",
            "Retransmission timeouts, data or SYN unacknowledged (TcpExt TCPTimeouts).",
        )),
    },
    Entry {
        name: "Conntrack:drop",
        aliases: &["conntrack_drop", "nf_conntrack drop"],
        kind: Kind::Counter(CONNTRACK_DROP),
        text: "Packets connection tracking dropped (nf_conntrack_in), above all the first packet of a new \
               flow that found this namespace's table full, past net.netfilter.nf_conntrack_max, with no \
               half-open entry near it to evict (__nf_conntrack_alloc; the kernel logs \"nf_conntrack: table \
               full, dropping packet\"), but also packets the TCP tracker rejects and clashes on insertion \
               (insert_failed). From /proc/net/stat/nf_conntrack, one line per CPU, summed; absent where \
               conntrack is not loaded. On a client whose own namespace tracks connections (NAT, a stateful \
               firewall, service rules), a dropped SYN is resent like one the server ignored: TCPSynRetrans \
               rises, connects are slow or time out, and the server is fine. On a server: new clients turned \
               away before TCP sees them, with no listener counter moving. It counts packets, not flows, and \
               names neither.",
        reference: "§12",
        metric: Some((
            "drop_total",
            "New flows dropped because the connection tracking table was full (/proc/net/stat/nf_conntrack drop).",
        )),
    },
    Entry {
        name: "Conntrack:early_drop",
        aliases: &["early_drop", "conntrack_early_drop"],
        kind: Kind::Counter(CONNTRACK_EARLY_DROP),
        text: "Connection-tracking entries evicted to make room for a new flow when the table was full \
               (early_drop, from __nf_conntrack_alloc): only entries not yet assured (no answer seen, such as \
               a SYN never answered), from the buckets next to the new flow's. A rise means \
               net.netfilter.nf_conntrack_count reached nf_conntrack_max and new flows got in by pushing out \
               half-open ones; when none can be pushed out, the packet is dropped (Conntrack:drop). The same on \
               a client and a server. The flows evicted were mostly failing already, so it is a warning more \
               than a failure of its own.",
        reference: "§12",
        metric: Some((
            "early_drop_total",
            "Connection tracking entries evicted to make room in a full table (/proc/net/stat/nf_conntrack early_drop).",
        )),
    },
    Entry {
        name: "Conntrack:insert_failed",
        aliases: &["insert_failed", "conntrack_insert_failed"],
        kind: Kind::Counter(CONNTRACK_INSERT_FAILED),
        text: "New connection-tracking entries that could not be put in the table because one with the same \
               addresses and ports got there first (__nf_conntrack_confirm): two packets of one new flow \
               racing on two CPUs, or two flows that NAT mapped to one tuple. The packet may be dropped (then \
               Conntrack:drop rises too). Typical of parallel UDP queries over one socket (DNS) and of heavy \
               source NAT; for a TCP connect it costs one SYN, resent after 1 s. It does not mean the table \
               is full.",
        reference: "§12",
        metric: Some((
            "insert_failed_total",
            "Packets dropped because their connection tracking entry lost an insertion race (/proc/net/stat/nf_conntrack insert_failed).",
        )),
    },
    Entry {
        name: "somaxconn",
        aliases: &[Sysctl::Somaxconn.name(), "SOMAXCONN"],
        kind: Kind::Sysctl(Sysctl::Somaxconn.name()),
        text: "Caps the backlog an application passes to listen(): B = min(backlog, somaxconn), taken when listen() \
               is called. Raising it changes nothing for sockets already listening (restart or re-listen), and \
               nothing when the application asks for less. Per network namespace: a container has its own (default \
               4096 since Linux 5.4, 128 before), not the host's.",
        reference: "§1, §4, §5, §6.5-6",
        metric: None,
    },
    Entry {
        name: "tcp_max_syn_backlog",
        aliases: &[Sysctl::TcpMaxSynBacklog.name()],
        kind: Kind::Sysctl(Sysctl::TcpMaxSynBacklog.name()),
        text: "Matters only with net.ipv4.tcp_syncookies=0, where a SYN from an unproven peer is dropped once about \
               3/4 of it is used by half-open connections. It does not size the SYN queue (that limit is B) and \
               raising it never fixes an accept-queue overflow.",
        reference: "§1, §4, §6.3",
        metric: None,
    },
    Entry {
        name: "tcp_syncookies",
        aliases: &[Sysctl::TcpSyncookies.name()],
        kind: Kind::Sysctl(Sysctl::TcpSyncookies.name()),
        text: "0: never send SYN cookies (a full SYN queue drops SYNs); 1 (default): send them when the SYN queue is \
               full; 2: always. Keep 1: 0 turns SYN-queue overflow into timeouts, 2 makes TCPReqQFullDoCookies \
               meaningless.",
        reference: "§4, §8.5",
        metric: None,
    },
    Entry {
        name: "tcp_abort_on_overflow",
        aliases: &[Sysctl::TcpAbortOnOverflow.name()],
        kind: Kind::Sysctl(Sysctl::TcpAbortOnOverflow.name()),
        text: "0 (default): when a handshake's final ACK meets a full accept queue it is dropped and the handshake \
               retried (the client stalls, then completes). 1: answer with RST instead, so the client gets \
               \"Connection reset by peer\" at once. It never affects dropped SYNs or SYN-cookie handshakes. Use 1 \
               only to fail fast behind clients or balancers that retry elsewhere.",
        reference: "§3, §4, §8.4",
        metric: None,
    },
    Entry {
        name: "tcp_synack_retries",
        aliases: &[Sysctl::TcpSynackRetries.name()],
        kind: Kind::Sysctl(Sysctl::TcpSynackRetries.name()),
        text: "How often a SYN-ACK is retransmitted (default 5: after 1, 3, 7, 15, 31 s), hence how long a half-open \
               connection lives (about 63 s). When it expires, the client's next segment gets a late RST.",
        reference: "§3, §4",
        metric: None,
    },
    Entry {
        name: "tcp_syn_linear_timeouts",
        aliases: &[Sysctl::TcpSynLinearTimeouts.name()],
        kind: Kind::Sysctl(Sysctl::TcpSynLinearTimeouts.name()),
        text: "Client side, on kernels that have it (6.5 and later; default 4): how many of a connect's SYN \
               resends keep the initial timeout of 1 s before it starts doubling, and how many resends it adds \
               to net.ipv4.tcp_syn_retries (tcp_write_timeout, retransmits_timed_out). With 6 and 4 the SYN is \
               sent again 1, 2, 3, 4, 5, 7, 11, 19, 35 and 67 s after the first, and connect() fails with \
               ETIMEDOUT at about 131 s; with 0 (or on older kernels) at 1, 3, 7, 15, 31 and 63 s, giving up \
               at about 127 s. doctor's connecting-side words follow the value it read. Per network namespace.",
        reference: "§12",
        metric: None,
    },
    Entry {
        name: "tcp_syn_retries",
        aliases: &[Sysctl::TcpSynRetries.name()],
        kind: Kind::Sysctl(Sysctl::TcpSynRetries.name()),
        text: "Client side: how often connect() resends an unanswered SYN (default 6; a socket's TCP_SYNCNT \
               overrides it) before it fails with ETIMEDOUT (tcp_write_timeout). Call it n: the resends follow \
               the first SYN after 1 s, 3 s, 7 s … (each wait twice the last), and connect() gives up about \
               2^(n+1)-1 s after the first SYN, 127 s at 6. Kernels with net.ipv4.tcp_syn_linear_timeouts \
               (default 4) space the first four resends 1 s apart and allow n + 4 of them: 1, 2, 3, 4, 5, 7, 11, \
               19, 35, 67 s, giving up at about 131 s. Every resend is one TCPSynRetrans, so a connect that \
               timed out at the defaults added 6 (10 with linear timeouts), one answered on the second SYN \
               added 1. Per network namespace. It does not touch a server's SYN-ACKs (tcp_synack_retries).",
        reference: "§4.2, §5, §12",
        metric: None,
    },
    Entry {
        name: "tcp_tw_reuse",
        aliases: &[Sysctl::TcpTwReuse.name()],
        kind: Kind::Sysctl(Sysctl::TcpTwReuse.name()),
        text: "Whether connect() may take a local port still held by a TIME_WAIT connection to the same server \
               (tcp_twsk_unique, asked by __inet_check_established while __inet_hash_connect looks for a \
               port): 0 never, 1 yes, 2 only to or from a loopback address. Even then only when the old \
               connection used TCP timestamps and about a second has passed since its last segment. It is a client's knob: it \
               lets a client that closes first and connects to one server again and again reuse ports instead \
               of failing with EADDRNOTAVAIL. It does nothing for a server's queues, nor for ports held by \
               connections that are still open. Per network namespace.",
        reference: "§12",
        metric: None,
    },
    Entry {
        name: "ip_local_port_range",
        aliases: &[IP_LOCAL_PORT_RANGE, "ephemeral ports", "local ports"],
        kind: Kind::Sysctl(IP_LOCAL_PORT_RANGE),
        text: "The local ports connect() picks from for a socket not bound to one (__inet_hash_connect), \
               32768-60999 by default. A port can serve connections to different servers at once, so the limit \
               is per server (its address and port, from one local address): when every port of the range is \
               held by a connection to that server, TIME_WAIT ones included (the side that closes first keeps \
               each for 60 s), connect() fails at once with EADDRNOTAVAIL \"Cannot assign requested address\". No counter \
               counts that failure and ActiveOpens does not rise: the evidence is TIME_WAIT sockets to one server \
               about as many as the range, which doctor counts when the namespace's TIME_WAIT total reaches half \
               the range. Fixes on the client: reuse connections (pooling, keep-alive), fewer at once, a wider \
               range, net.ipv4.tcp_tw_reuse; or let the server close first. Per network namespace.",
        reference: "§12",
        metric: None,
    },
    Entry {
        name: "nf_conntrack_max",
        aliases: &[NF_CONNTRACK_MAX, "conntrack table"],
        kind: Kind::Sysctl(NF_CONNTRACK_MAX),
        text: "The most connection-tracking entries a network namespace may hold: a new flow that finds \
               nf_conntrack_count past it evicts a half-open entry (Conntrack:early_drop) or is dropped \
               (Conntrack:drop; \"nf_conntrack: table full, dropping packet\" in the kernel log) \
               (__nf_conntrack_alloc). A dropped SYN looks to the client like a server that does not answer: \
               SYN resends, slow connects, timeouts. One value for the whole machine: only the host's initial \
               namespace can change it, and it is read-only inside a container (nf_conntrack_standalone.c). \
               Present only where connection tracking is loaded. Fix: raise it on the host (with \
               net.netfilter.nf_conntrack_buckets), open fewer short connections, or exempt traffic that needs \
               no tracking.",
        reference: "§12",
        metric: None,
    },
    Entry {
        name: "nf_conntrack_count",
        aliases: &[NF_CONNTRACK_COUNT],
        kind: Kind::Sysctl(NF_CONNTRACK_COUNT),
        text: "Connection-tracking entries this network namespace holds now: a level, not a counter, which \
               falls as entries expire. Near net.netfilter.nf_conntrack_max new flows start to be evicted or \
               dropped (Conntrack:early_drop, Conntrack:drop). A finished TCP connection keeps its entry for a \
               while (nf_conntrack_tcp_timeout_time_wait, 120 s by default), so a client opening many short \
               connections fills the table faster than its open connections suggest. Present only where \
               connection tracking is loaded.",
        reference: "§12",
        metric: None,
    },
    Entry {
        name: "netdev_max_backlog",
        aliases: &["net.core.netdev_max_backlog"],
        kind: Kind::Sysctl("net.core.netdev_max_backlog"),
        text: "Not a listen queue: the per-CPU queue of received packets before protocol processing. Unrelated to \
               listen() backlogs and accept-queue overflow.",
        reference: "§6.7",
        metric: None,
    },
    Entry {
        name: "Recv-Q",
        aliases: &["recv_q", "rqueue", "idiag_rqueue"],
        kind: Kind::Field,
        text: "For a LISTEN socket (ss -ltn): connections that completed the handshake and wait for accept(), the \
               accept queue (sk_ack_backlog). It holds at most B+1; Recv-Q > Send-Q means full. Not the SYN queue.",
        reference: "§1, §2, §6.1",
        metric: None,
    },
    Entry {
        name: "Send-Q",
        aliases: &["send_q", "wqueue", "idiag_wqueue", "backlog"],
        kind: Kind::Field,
        text: "For a LISTEN socket: the effective backlog B = min(backlog passed to listen(), somaxconn at that \
               time) (sk_max_ack_backlog). /proc/net/tcp does not show it.",
        reference: "§1, §2",
        metric: None,
    },
    Entry {
        name: "drops",
        aliases: &["d", "sk_drops", "SK_MEMINFO_DROPS"],
        kind: Kind::Field,
        text: "`d` in `ss -m`: segments dropped at this listener (SYNs and their retransmits, final ACKs, which count \
               2, TCP_DEFER_ACCEPT's bare ACKs). Drops at this listener, not a count of clients or of overflows.",
        reference: "§2, §4",
        metric: None,
    },
    Entry {
        name: "SYN_RECV",
        aliases: &["syn_recv", "SYN-RECV", "request sockets", "SYN queue"],
        kind: Kind::Field,
        text: "Half-open connections (request sockets) waiting for the handshake's final ACK: the SYN queue. It is \
               full when it holds more than B. SYN-cookie handshakes leave no entry.",
        reference: "§1, §2",
        metric: None,
    },
    Entry {
        name: "wait",
        aliases: &[
            "oldest-wait",
            "oldest_wait",
            "waiting",
            "queued",
            "queued_oldest_ms",
            "lastsnd",
            "tcpi_last_data_sent",
            "backlogctl_listen_waiting",
            "backlogctl_listen_oldest_wait_seconds",
        ],
        kind: Kind::Field,
        text: "How many clients of a TCP listener wait and how long the oldest has waited so far, read at a \
               sample from the ESTABLISHED sockets of the listener's port (one inet_diag dump, filtered by port \
               in the kernel, with tcp_info). A connection whose handshake completed and that nobody has \
               accept()ed yet is a full socket with inode 0 (`ss -tnei state established` shows `ino:0`): it \
               waits in the accept queue (`queued`, about Recv-Q). Once accepted it has an inode; one whose \
               client sent a request and got nothing back waits inside the server (`unanswered`). Each one's \
               wait is tcpi_last_data_sent (ss `lastsnd`): ms since the server last sent data, which for these \
               is its SYN-ACK. A Unix listener's pending connections carry no timestamp: one seen pending \
               across readings has waited at least that long, a lower bound (`≥` in watch). What clients \
               see: connect() succeeds at once, then no reply for as long as they \
               wait; one whose timeout is shorter fails (a proxy in front logs `upstream timed out` and answers \
               504). No counter moves and a larger backlog only lets more of them wait. doctor: \
               accept-queue-standing from 1 s, critical from 5 s; watch: WAITING and WAIT; metrics (TCP): \
               backlogctl_listen_waiting and backlogctl_listen_oldest_wait_seconds, place=\"accept_queue\" or \
               \"after_accept\".",
        reference: "§11",
        metric: None,
    },
    Entry {
        name: "unanswered",
        aliases: &[
            "after-accept",
            "after_accept",
            "unanswered_oldest_ms",
            "unread",
        ],
        kind: Kind::Field,
        text: "Clients a TCP server has accept()ed that sent a request and got nothing back yet: sockets of the \
               listener's port with an inode, bytes received (tcpi_bytes_received above 0), nothing sent but \
               the SYN-ACK (tcpi_bytes_sent 0; before Linux 4.19 tcpi_data_segs_out 0), and either the request \
               still unread in the socket (its Recv-Q above 0: `unread`, queued in the server's own pool) or \
               the client quiet for 100 ms (read, being worked on). Their wait is tcpi_last_data_sent, ms since \
               the SYN-ACK. A server that accepts in one thread and hands sockets to a fixed pool keeps its \
               listener at Recv-Q 0 while they wait: only this shows it. What clients see: connect() and the \
               request succeed, then no reply; a timeout shorter than the wait fails them. The fix is more \
               requests served at once (workers, threads, a connection cap) or faster ones, never a backlog. \
               doctor: accepted-not-served; metrics: place=\"after_accept\".",
        reference: "§11",
        metric: None,
    },
];

/// The entry for `name` (case-insensitive; `TcpExt:`/`net.` prefixes and aliases accepted).
pub fn find(name: &str) -> Option<&'static Entry> {
    let key = name.trim().to_ascii_lowercase();
    ENTRIES.iter().find(|e| {
        e.name.to_ascii_lowercase() == key
            || e.aliases.iter().any(|a| a.to_ascii_lowercase() == key)
    })
}

/// The known name closest to `name` (edit distance), for "did you mean".
pub fn closest(name: &str) -> &'static str {
    let key = name.trim().to_ascii_lowercase();
    let key = key.rsplit([':', '.']).next().unwrap_or(&key).to_string();
    ENTRIES
        .iter()
        .flat_map(|e| {
            std::iter::once(e.name)
                .chain(e.aliases.iter().copied())
                .map(move |n| (e.name, n))
        })
        .min_by_key(|(_, n)| {
            let n = n.to_ascii_lowercase();
            let short = n.rsplit([':', '.']).next().unwrap_or(&n).to_string();
            strsim::levenshtein(&key, &short)
        })
        .map(|(name, _)| name)
        .unwrap_or("ListenOverflows")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_suggestions() {
        assert_eq!(find("listenoverflows").unwrap().name, "ListenOverflows");
        assert_eq!(find("TcpExt:ListenDrops").unwrap().name, "ListenDrops");
        assert_eq!(find("net.core.somaxconn").unwrap().name, "somaxconn");
        assert_eq!(find("d").unwrap().name, "drops");
        assert!(find("ListenOverflow").is_none());
        assert_eq!(closest("ListenOverflow"), "ListenOverflows");
        assert_eq!(closest("somaxcon"), "somaxconn");
        assert_eq!(
            closest("net.ipv4.tcp_abort_overflow"),
            "tcp_abort_on_overflow"
        );
        assert_eq!(closest("TCPReqQFullDrops"), "TCPReqQFullDrop");
        assert_eq!(find("oldest-wait").unwrap().name, "wait");
        assert_eq!(find("backlogctl_listen_waiting").unwrap().name, "wait");
        assert_eq!(find("after_accept").unwrap().name, "unanswered");
        assert_eq!(closest("oldest-waits"), "wait");
        assert_eq!(find("TCPSynRetrans").unwrap().name, "TCPSynRetrans");
        assert_eq!(closest("TCPSynRetran"), "TCPSynRetrans");
        assert_eq!(closest("tcp_syn_retry"), "tcp_syn_retries");
        assert_eq!(find("early_drop").unwrap().name, "Conntrack:early_drop");
        assert_eq!(
            find("net.ipv4.ip_local_port_range").unwrap().name,
            "ip_local_port_range"
        );
    }

    /// Every `pub const NAME: &str = "…";` of this file: the counter keys and sysctl names the
    /// collectors and rules are given, whether or not one of the lists holds them.
    fn declared() -> Vec<&'static str> {
        include_str!("catalogue.rs")
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("pub const ")?
                    .split_once(": &str = \"")?
                    .1
                    .strip_suffix("\";")
            })
            .collect()
    }

    /// The entry of a counter key or sysctl name: one whose kind carries it, that `find` gives
    /// for the full name, and that the short name (`TCPSynRetrans`, `tcp_syn_retries`) gives
    /// too or, when it names nothing (`drop`), at least does not give another entry for.
    fn explained(full: &str, kind: Kind) -> Result<(), String> {
        let Some(e) = ENTRIES.iter().find(|e| e.kind == kind) else {
            return Err(format!("{full}: no explain entry of kind {kind:?}"));
        };
        if find(full).map(|f| f.name) != Some(e.name) {
            return Err(format!("explain {full} does not find {}", e.name));
        }
        let short = full.rsplit([':', '.']).next().unwrap_or(full);
        match find(short) {
            Some(f) if f.name != e.name => Err(format!("explain {short} finds {}", f.name)),
            _ => Ok(()),
        }
    }

    /// `explain` knows every counter and sysctl backlogctl reads: the keys come from the lists
    /// and consts the collectors and rules read them by (so one added without an entry fails
    /// here), and from the conntrack parser's own output.
    #[test]
    fn every_counter_and_sysctl_read_has_an_entry() {
        let lists = [
            &CLIENT[..],
            &WATCH_RATES,
            &RESET_RATES,
            &LAB,
            &SYN_QUEUE_USED,
            &CONNTRACK,
        ];
        let mut counters: Vec<&str> = lists.concat();
        let mut sysctls: Vec<&str> = Sysctl::ALL.iter().map(|s| s.name()).collect();
        sysctls.extend([IP_LOCAL_PORT_RANGE, NF_CONNTRACK_MAX, NF_CONNTRACK_COUNT]);
        let consts = declared();
        assert!(consts.len() > 20, "the scan of this file broke: {consts:?}");
        for key in consts {
            match key.split_once(':') {
                Some(_) => counters.push(key),
                None if key.starts_with("net.") => sysctls.push(key),
                None => panic!("{key}: neither a counter key nor a sysctl"),
            }
        }
        // What the conntrack parser produces from a file with every column it knows.
        let header: Vec<&str> = CONNTRACK.iter().map(|k| short(k)).collect();
        let text = format!("entries {}\n0 {}\n", header.join(" "), ["1"; 3].join(" "));
        let mut parsed = crate::model::Counters::new();
        crate::source::netstat::parse_conntrack(&text, &mut parsed);
        let parsed: Vec<&str> = parsed.keys().map(String::as_str).collect();
        let mut wanted = CONNTRACK.to_vec();
        wanted.sort();
        assert_eq!(
            parsed, wanted,
            "the parser's keys are the catalogue's, checked below"
        );
        let mut missing: Vec<String> = Vec::new();
        for key in counters {
            missing.extend(explained(key, Kind::Counter(key)).err());
        }
        for name in sysctls {
            missing.extend(explained(name, Kind::Sysctl(name)).err());
        }
        missing.sort();
        missing.dedup();
        assert!(missing.is_empty(), "{missing:#?}");
    }

    /// Each entry's reference names sections docs/kernel.md has (`§4.2` is in `## 4.`).
    #[test]
    fn references_are_sections_of_the_kernel_page() {
        let page = include_str!("../docs/kernel.md");
        for e in ENTRIES {
            for r in e.reference.split(", ") {
                let top = r
                    .trim_start_matches('§')
                    .split(['.', '-'])
                    .next()
                    .unwrap_or("");
                assert!(
                    !top.is_empty() && page.contains(&format!("\n## {top}. ")),
                    "{}: {r} is no section of docs/kernel.md",
                    e.name
                );
            }
        }
    }

    /// The wait's entries say the thresholds the code uses.
    #[test]
    fn the_wait_entries_say_the_code_s_numbers() {
        use crate::doctor::wait::{WAIT_CRITICAL_MS, WAIT_WARNING_MS};
        let wait = find("wait").unwrap().text;
        let (warn, crit) = (WAIT_WARNING_MS / 1000, WAIT_CRITICAL_MS / 1000);
        assert!(
            wait.contains(&format!("from {warn} s, critical from {crit} s")),
            "{wait}"
        );
        let unanswered = find("unanswered").unwrap().text;
        let quiet = crate::source::diag::QUIET_MS;
        assert!(
            unanswered.contains(&format!("quiet for {quiet} ms")),
            "{unanswered}"
        );
    }
}
