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
    TcpTwReuse,
}

impl Sysctl {
    /// Every one, in the order snapshots and metrics list them.
    pub(crate) const ALL: [Sysctl; 7] = [
        Sysctl::Somaxconn,
        Sysctl::TcpMaxSynBacklog,
        Sysctl::TcpSyncookies,
        Sysctl::TcpAbortOnOverflow,
        Sysctl::TcpSynackRetries,
        Sysctl::TcpSynRetries,
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
            Sysctl::TcpTwReuse => "net.ipv4.tcp_tw_reuse",
        }
    }

    /// `somaxconn`: the last part of the name (a file name, a short label).
    pub(crate) fn short(self) -> &'static str {
        let name = self.name();
        name.rsplit('.').next().unwrap_or(name)
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
    /// Prometheus metric (`backlogctl_tcp_` + this) and its help line, for exported counters.
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
pub const ACTIVE_OPENS: &str = "Tcp:ActiveOpens";
/// `/proc/net/stat/nf_conntrack`, summed over CPUs, under a `Conntrack:` section: new flows
/// dropped for a full table, entries evicted to make room, insertions that lost a race.
pub const CONNTRACK_DROP: &str = "Conntrack:drop";
pub const CONNTRACK_EARLY_DROP: &str = "Conntrack:early_drop";
pub const CONNTRACK_INSERT_FAILED: &str = "Conntrack:insert_failed";

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

/// Counters exported to Prometheus: (key, metric name, help).
pub fn exported() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    ENTRIES.iter().filter_map(|e| match (e.kind, e.metric) {
        (Kind::Counter(key), Some((name, help))) => Some((key, name, help)),
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
               both ends count in it.",
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
        text: "A socket was aborted with RST by close() while data was still in flight, above all SO_LINGER \
               {on, 0} (tcp_close -> tcp_disconnect); not TCPAbortOnLinger, which only counts a negative \
               TCP_LINGER2 in FIN_WAIT2. The client reads what arrived, then gets ECONNRESET \"Connection reset \
               by peer\". Fix: drop SO_LINGER {1,0} and close normally. Per network namespace.",
        reference: "§10",
        metric: Some((
            "abort_on_data_total",
            "RST sent by an abortive close, SO_LINGER {1,0} (TcpExt TCPAbortOnData).",
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
        text: "Connections in ESTABLISHED or CLOSE_WAIT that went straight to CLOSED: a reset received or sent, \
               or a timeout. Counts both ends when client and server share the namespace, so it is not a count of \
               RSTs sent.",
        reference: "§10",
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
        text: "Connection attempts that failed: a socket in SYN_SENT or SYN_RECV went to CLOSED (a reset or an \
               expired handshake), on either side: a connect() refused by RST (ECONNREFUSED, nothing listening) counts \
               here on the client's side. lab reads it for its clients' failures.",
        reference: "§4",
        metric: None,
    },
    Entry {
        name: "ActiveOpens",
        aliases: &["Tcp:ActiveOpens"],
        kind: Kind::Counter(ACTIVE_OPENS),
        text: "connect() calls that sent a SYN (tcp_connect): one per connection this namespace opened as a client, \
               whether it then succeeded or not. `lab --veth` reads it in the clients' namespace, where it equals the \
               connects the clients made.",
        reference: "§4",
        metric: None,
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
        name: "tcp_syn_retries",
        aliases: &["net.ipv4.tcp_syn_retries"],
        kind: Kind::Sysctl("net.ipv4.tcp_syn_retries"),
        text: "Client side: how often connect() resends an unanswered SYN (default 6) before ETIMEDOUT, about \
               2 minutes.",
        reference: "§4",
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
