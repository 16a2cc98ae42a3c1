//! `lab --veth`: the clients' side of the burst, as typed facts — what the lab's clients
//! recorded of themselves (their outcomes, their own sockets' TCP_INFO) beside what their
//! namespace's kernel showed (its counters' rise, the highest of its readings of their
//! connections to the server, `doctor::client::ServerView`), doctor's report there, and
//! whether it names the burst the server side's doctor names. The story and the
//! renderer say them; nothing here writes a word.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::Outcome;
use super::load::Attempt;
use crate::catalogue;
use crate::doctor::client::ServerView;
use crate::doctor::{Report, RuleId, Severity};
use crate::model::Snapshot;

/// The clients' side of a `--veth` run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClientSide {
    /// The server as the clients dialled it.
    pub server: SocketAddr,
    /// The clients' address, in their own namespace.
    pub address: IpAddr,
    pub recorded: Recorded,
    /// The rise of the clients' namespace's counters over the burst (`catalogue::LAB_CLIENT`);
    /// a counter this kernel lacks is absent.
    pub counters: BTreeMap<String, u64>,
    /// Their kernel's view of their connections to the server over the burst (its highest
    /// readings), as doctor there read it; None when no reading listed the server.
    pub seen: Option<ServerView>,
    /// doctor in the clients' namespace, on what was recorded there during the burst.
    pub doctor: Report,
    /// Whether that doctor and the server side's name the same burst.
    pub agreement: Agreement,
    /// That recording (`lab --plot` draws it; not in the JSON).
    #[serde(skip)]
    pub recording: Snapshot,
    /// Its clock minus the server recording's, µs: where its samples fall on the server's
    /// time axis.
    #[serde(skip)]
    pub offset_us: i64,
}

/// What the clients recorded of themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Recorded {
    /// Clients that called connect().
    pub connects: usize,
    /// Of them, those whose own socket had sent its SYN again when connect() completed or was
    /// given up: each waited at least one retransmission timeout (1 s at first).
    pub syn_resent: usize,
    /// SYNs sent again, summed over the clients.
    pub syns_resent: u64,
    /// The most SYNs one client sent again.
    pub syn_resent_max: u32,
    /// Clients that gave up waiting for the reply with nothing of their request acknowledged.
    pub gave_up_unacked: usize,
    /// Clients whose TCP_INFO could not be read: missing from the SYN counts above.
    pub unread: usize,
    /// Clients reset once connected: at connect, before or after a reply (ECONNRESET).
    pub resets: usize,
}

impl Recorded {
    pub(super) fn of(attempts: &[Attempt]) -> Recorded {
        let mut r = Recorded::default();
        for own in attempts.iter().filter_map(|a| a.own) {
            r.connects += 1;
            let Some(n) = own.syn_resent else {
                r.unread += 1;
                continue;
            };
            r.syn_resent += usize::from(n > 0);
            r.syns_resent += u64::from(n);
            r.syn_resent_max = r.syn_resent_max.max(n);
        }
        r.resets = attempts
            .iter()
            .filter(|a| a.own.is_some())
            .filter(|a| matches!(a.outcome, Outcome::Reset | Outcome::ResetAfterReply))
            .count();
        r.gave_up_unacked = attempts
            .iter()
            .filter(|a| a.outcome == Outcome::ReplyTimeout)
            .filter(|a| a.own.and_then(|o| o.request_unacked) == Some(true))
            .count();
        r
    }
}

/// One thing the clients counted of themselves, beside the counter their namespace's kernel
/// keeps for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub what: Counted,
    /// The clients' own count.
    pub own: u64,
    /// The counter (`catalogue`), and its rise over the burst; None when this kernel lacks it.
    pub counter: &'static str,
    pub kernel: Option<u64>,
}

impl Tally {
    /// Both counted the same.
    pub(crate) fn agrees(&self) -> bool {
        self.kernel == Some(self.own)
    }
}

/// What a `Tally` counts. Each is one event on the clients' side, counted once by their
/// kernel: a connect() sends one SYN (`tcp_connect`, ActiveOpens), each SYN sent again is one
/// TCPSynRetrans (`__tcp_retransmit_skb`), and each connection reset once established is one
/// EstabResets (`tcp_set_state` leaving ESTABLISHED for CLOSE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    Connects,
    SynsResent,
    Resets,
}

impl ClientSide {
    /// The clients' counts beside their kernel's, in the order a reader follows a connect.
    pub(crate) fn tallies(&self) -> [Tally; 3] {
        let r = &self.recorded;
        let t = |what, own: usize, counter: &'static str| Tally {
            what,
            own: own as u64,
            counter,
            kernel: self.counters.get(counter).copied(),
        };
        [
            t(Counted::Connects, r.connects, catalogue::ACTIVE_OPENS),
            Tally {
                own: r.syns_resent,
                ..t(Counted::SynsResent, 0, catalogue::SYN_RETRANS)
            },
            t(Counted::Resets, r.resets, catalogue::ESTAB_RESETS),
        ]
    }
}

/// Whether doctor on each side names the burst: on the server's side a full accept queue at
/// the lab's listener, on the clients' side connects unanswered, requests unacknowledged or
/// resets from that server. Problems only; the settings' findings (a small backlog,
/// tcp_abort_on_overflow) are not the burst.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Agreement {
    /// The server side's findings about the burst at the lab's listener.
    pub server: Vec<RuleId>,
    /// The clients' side's findings about the burst at the lab's server.
    pub clients: Vec<RuleId>,
    /// Both sides name it, or neither does.
    pub agree: bool,
}

impl Agreement {
    /// `server` diagnosed at its `listener`, `clients` diagnosed dialling it at `remote` (the
    /// same address in the lab).
    pub(super) fn of(
        server: &Report,
        listener: SocketAddr,
        clients: &Report,
        remote: SocketAddr,
    ) -> Agreement {
        let (listener, remote) = (listener.to_string(), remote.to_string());
        let server: Vec<RuleId> = server
            .findings
            .iter()
            .filter(|f| f.severity > Severity::Ok)
            .filter(|f| f.listeners.contains(&listener) || f.listener.as_ref() == Some(&listener))
            .filter(|f| SERVER_BURST.contains(&f.id))
            .map(|f| f.id)
            .collect();
        let clients: Vec<RuleId> = clients
            .findings
            .iter()
            .filter(|f| f.severity > Severity::Ok)
            // Resets are counted for the namespace, naming no server: the lab's clients dial
            // only this one.
            .filter(|f| f.remote.is_none() || f.remote.as_ref() == Some(&remote))
            .filter(|f| CLIENT_BURST.contains(&f.id))
            .map(|f| f.id)
            .collect();
        let agree = server.is_empty() == clients.is_empty();
        Agreement {
            server,
            clients,
            agree,
        }
    }
}

/// A burst at the listener, from the server's side.
const SERVER_BURST: [RuleId; 2] = [RuleId::AcceptQueueOverflow, RuleId::AcceptQueueDropped];
/// The same burst from the clients' side.
const CLIENT_BURST: [RuleId; 3] = [
    RuleId::ConnectsUnanswered,
    RuleId::RequestsUnacknowledged,
    RuleId::ResetsFromServer,
];

#[cfg(test)]
mod tests {
    use super::super::load::Own;
    use super::*;

    fn attempt(outcome: Outcome, syn: Option<u32>, unacked: Option<bool>) -> Attempt {
        Attempt {
            outcome,
            connect: None,
            replied: None,
            own: Some(Own {
                syn_resent: syn,
                request_unacked: unacked,
            }),
        }
    }

    #[test]
    fn the_clients_counts_add_up_their_own_sockets() {
        let mut a = vec![
            attempt(Outcome::Served, Some(0), None),
            attempt(Outcome::Served, Some(1), None),
            attempt(Outcome::ConnectTimeout, Some(2), None),
            attempt(Outcome::ReplyTimeout, Some(0), Some(true)),
            attempt(Outcome::ReplyTimeout, Some(1), Some(false)),
            attempt(Outcome::Served, None, None),
        ];
        // A Unix client, or one whose socket() failed: no connect().
        a.push(Attempt {
            own: None,
            ..attempt(Outcome::Failed, None, None)
        });
        let r = Recorded::of(&a);
        assert_eq!(
            r,
            Recorded {
                connects: 6,
                syn_resent: 3,
                syns_resent: 4,
                syn_resent_max: 2,
                gave_up_unacked: 1,
                unread: 1,
                resets: 0,
            }
        );
    }

    /// Server-side and client-side recordings of 6.18 (fixtures/snapshots): a slow acceptor's
    /// burst on 127.0.0.1:8090, clients of a slow server on 10.200.0.1:9000, quiet clients,
    /// an idle server on 127.0.0.1:8100.
    fn report(name: &str) -> Report {
        let path = format!(
            "{}/fixtures/snapshots/6.18-{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let snap = crate::store::load(std::path::Path::new(&path)).expect("fixture loads");
        crate::doctor::diagnose(&snap)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn both_doctors_agree_when_both_or_neither_name_the_burst() {
        let burst = report("slow-acceptor-backlog16-burst150");
        let idle = report("healthy-backlog511-idle");
        let slow = report("client-slow-abort1-target");
        let quiet = report("client-quiet-target");
        let (at, server) = (addr("127.0.0.1:8090"), addr("10.200.0.1:9000"));
        let both = Agreement::of(&burst, at, &slow, server);
        assert!(
            both.server.contains(&RuleId::AcceptQueueOverflow),
            "{both:?}"
        );
        assert!(
            both.clients.contains(&RuleId::ConnectsUnanswered)
                || both.clients.contains(&RuleId::RequestsUnacknowledged),
            "{both:?}"
        );
        assert!(both.agree);
        let only_server = Agreement::of(&burst, at, &quiet, server);
        assert!(
            only_server.clients.is_empty() && !only_server.agree,
            "{only_server:?}"
        );
        let only_clients = Agreement::of(&idle, addr("127.0.0.1:8100"), &slow, server);
        assert!(only_clients.server.is_empty() && !only_clients.agree);
        let neither = Agreement::of(&idle, addr("127.0.0.1:8100"), &quiet, server);
        assert!(neither.agree && neither.server.is_empty() && neither.clients.is_empty());
        // Another listener's overflow, another server's trouble: not this burst.
        let elsewhere = Agreement::of(&burst, addr("127.0.0.1:1"), &slow, addr("10.0.0.9:1"));
        assert!(elsewhere.server.is_empty(), "{elsewhere:?}");
        assert!(
            elsewhere
                .clients
                .iter()
                .all(|i| *i == RuleId::ResetsFromServer),
            "only the namespace-wide resets remain: {elsewhere:?}"
        );
    }
}
