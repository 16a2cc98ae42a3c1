//! Scripted sources for tests: every loop of the crate runs on these without a kernel.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use super::{Header, Sources};
use crate::error::{Error, Result};
use crate::model::{Counters, Gap, Listener, Name, Netns, Owner, SocketFile};
use crate::source::client_trace::{Capture, Task};
use crate::source::diag;
use crate::source::netns::Which;
use crate::source::trace::TraceError;

/// One listener (inode 7, 127.0.0.1:8100, B=5) whose queue, SYN_RECV count, counters and
/// reset trace follow a script; what was asked is recorded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fake {
    /// Recv-Q of the listener at each dump, in order (the last repeats); empty: no listener.
    pub queues: Vec<u32>,
    /// TCPReqQFullDoCookies at each counter read (the last repeats); None = absent.
    pub cookies: Vec<Option<u64>>,
    /// SYN_RECV of the listener at each dump that counts them (the last repeats).
    pub syn: Vec<u32>,
    /// The processes holding sockets, by inode.
    pub holders: Vec<Owner>,
    /// The namespace the header reports.
    pub netns: Netns,
    /// Namespace entry: `slow` sleeps 2 s, `bad` fails, `ns:N` reports inode N.
    pub entered: Option<String>,
    pub dumps: usize,
    pub reads: usize,
    /// For each dump: whether it asked for request sockets.
    pub syn_asked: Vec<bool>,
    /// The inodes of each owner lookup, sorted.
    pub lookups: Vec<Vec<u64>>,
    /// What the reset trace's buffer holds when it stops; None: the host cannot trace.
    pub trace: Option<String>,
    /// Whether the trace runs. It must start before the first dump, as `--trace` promises.
    pub tracing: bool,
    /// The namespace's listening sockets.
    pub sockets: Vec<crate::source::trace::ListeningSocket>,
    /// The ESTABLISHED sockets every wait dump returns, and how many wait dumps were made
    /// (they are not `dumps`).
    pub conns: Vec<diag::Conn>,
    pub wait_dumps: usize,
    /// `Tcp:CurrEstab` in every counter read; None: absent.
    pub curr_estab: Option<u64>,
    /// `Tcp:ActiveOpens` in every counter read; None: absent.
    pub active_opens: Option<u64>,
    /// `TcpExt:TCPTimeouts` in every counter read; None: absent.
    pub timeouts: Option<u64>,
    /// Files as every process sees them, by path.
    pub files: BTreeMap<String, String>,
    /// Each file read, with the process it was read for.
    pub files_read: Vec<(u32, String)>,
    /// Every process's environment.
    pub env: BTreeMap<String, String>,
    /// The outgoing sockets every outgoing dump returns, and what each dump asked for
    /// (established, closing).
    pub outgoing: Vec<diag::OutSock>,
    pub outgoing_asked: Vec<(bool, bool)>,
    /// RetransSegs at each look (indexed like `cookies` by counter reads; the last repeats).
    pub retrans: Vec<u64>,
    /// PassiveOpens at each look (the last repeats); none: unreadable.
    pub passive_opens: Vec<u64>,
    /// How many times PassiveOpens was read.
    pub passive_reads: usize,
    pub time_wait: Option<u64>,
    /// The namespace's interface addresses.
    pub addresses: Vec<IpAddr>,
    /// What the client trace gathers, as tracefs prints it, and the namespace of each task
    /// in it; None: the host cannot trace.
    pub client_trace: Option<String>,
    pub task_netns: BTreeMap<u32, u64>,
    pub client_tracing: bool,
}

impl Fake {
    /// A listener whose queue follows `queues`, counters with no SYN queue ever full.
    pub(crate) fn queues(queues: &[u32]) -> Fake {
        Fake {
            queues: queues.to_vec(),
            cookies: vec![Some(0)],
            ..Fake::default()
        }
    }

    pub(crate) fn listener(recv_q: u32, syn_recv: Option<u32>) -> Listener {
        Listener {
            local: "127.0.0.1:8100".parse().expect("literal address"),
            inode: 7,
            uid: 0,
            recv_q,
            send_q: 5,
            drops: Some(0),
            syn_recv,
            v6only: None,
            wait: None,
        }
    }
}

impl Sources for Fake {
    fn enter(&mut self, ns: &Which) -> Result<()> {
        let Which::Named(name) = ns else {
            return Err(Error::BadInput("the fake enters by name".into()));
        };
        match name.as_str() {
            "slow" => std::thread::sleep(Duration::from_secs(2)),
            "bad" => return Err(Error::Vanished("vanished".into())),
            "panics" => panic!("the fake panics"),
            _ => {}
        }
        if let Some(inode) = name.strip_prefix("ns:").and_then(|n| n.parse().ok()) {
            self.netns.inode = Some(inode);
        }
        self.entered = Some(name.clone());
        Ok(())
    }

    fn header(&mut self) -> Header {
        Header {
            netns: self.netns.clone(),
            ..Header::default()
        }
    }

    fn listeners(&mut self, q: &diag::Query) -> Result<diag::Dump> {
        if !q.pending_of.is_empty() {
            self.wait_dumps += 1;
            return Ok(diag::Dump::default());
        }
        if let Some(o) = q.outgoing {
            self.outgoing_asked.push((o.established, o.closing));
            return Ok(diag::Dump {
                outgoing: self.outgoing.clone(),
                ..diag::Dump::default()
            });
        }
        if q.established {
            self.wait_dumps += 1;
            return Ok(diag::Dump {
                conns: self.conns.clone(),
                ..diag::Dump::default()
            });
        }
        // Its listener is TCP: a dump of the Unix ones alone has none.
        if !q.tcp && q.tcp_exact.is_empty() {
            return Ok(diag::Dump::default());
        }
        self.syn_asked.push(q.syn_recv);
        self.dumps += 1;
        let listeners = match self.queues.get(self.dumps - 1).or(self.queues.last()) {
            Some(&recv_q) => {
                let syn = self.syn.get(self.dumps - 1).or(self.syn.last());
                vec![Fake::listener(
                    recv_q,
                    q.syn_recv.then(|| syn.copied().unwrap_or(0)),
                )]
            }
            None => Vec::new(),
        };
        Ok(diag::Dump {
            listeners,
            requests: Vec::new(),
            drops_unknown: 0,
            unix_absent: false,
            conns: Vec::new(),
            pending: Vec::new(),
            outgoing: Vec::new(),
        })
    }

    fn counters(&mut self) -> Result<(Counters, Vec<String>)> {
        let mut c = BTreeMap::new();
        let v = self
            .cookies
            .get(self.reads)
            .or(self.cookies.last())
            .copied()
            .unwrap_or(Some(0));
        self.reads += 1;
        for k in crate::catalogue::SYN_QUEUE_USED {
            c.insert(k.to_string(), 0);
        }
        match v {
            Some(v) => c.insert(crate::catalogue::REQQ_FULL_DO_COOKIES.into(), v),
            None => c.remove(crate::catalogue::REQQ_FULL_DO_COOKIES),
        };
        if let Some(n) = self.curr_estab {
            c.insert(super::sampler::CURR_ESTAB.into(), n);
        }
        if let Some(n) = self.active_opens {
            c.insert(crate::catalogue::ACTIVE_OPENS.into(), n);
        }
        if let Some(n) = self.passive_opens.last() {
            c.insert(crate::catalogue::PASSIVE_OPENS.into(), *n);
        }
        if let Some(n) = self.timeouts {
            c.insert(crate::catalogue::TCP_TIMEOUTS.into(), n);
        }
        Ok((c, Vec::new()))
    }

    fn retrans_segs(&mut self) -> Option<u64> {
        self.retrans
            .get(self.reads)
            .or(self.retrans.last())
            .copied()
    }

    fn passive_opens(&mut self) -> Option<u64> {
        let v = self
            .passive_opens
            .get(self.passive_reads)
            .or(self.passive_opens.last());
        self.passive_reads += 1;
        v.copied()
    }

    fn time_wait_count(&mut self) -> Option<u64> {
        self.time_wait
    }

    fn local_addresses(&mut self) -> Option<Vec<IpAddr>> {
        Some(self.addresses.clone())
    }

    fn owners(&mut self, inodes: &HashSet<u64>) -> (Vec<Owner>, Option<Gap>) {
        let mut asked: Vec<u64> = inodes.iter().copied().collect();
        asked.sort_unstable();
        self.lookups.push(asked);
        let found = self
            .holders
            .iter()
            .filter(|o| inodes.contains(&o.inode))
            .cloned()
            .collect();
        (found, None)
    }

    fn alive(&mut self, pid: u32) -> bool {
        self.holders.iter().any(|o| o.pid == pid)
    }

    fn socket_file(&mut self, _: &Name) -> SocketFile {
        SocketFile::Missing
    }

    fn start_reset_trace(&mut self) -> std::result::Result<(), TraceError> {
        if self.trace.is_none() {
            return Err(TraceError::Unavailable {
                why: "the fake has no tracepoint",
            });
        }
        if self.dumps > 0 {
            return Err(TraceError::Unavailable {
                why: "the fake's trace started after the first sample",
            });
        }
        self.tracing = true;
        Ok(())
    }

    fn finish_reset_trace(&mut self) -> std::result::Result<String, TraceError> {
        if !std::mem::take(&mut self.tracing) {
            return Err(TraceError::NotStarted { trace: "reset" });
        }
        Ok(self.trace.clone().unwrap_or_default())
    }

    fn listening_sockets(&mut self) -> Vec<crate::source::trace::ListeningSocket> {
        self.sockets.clone()
    }

    fn start_client_trace(&mut self) -> std::result::Result<Vec<String>, TraceError> {
        if self.client_trace.is_none() {
            return Err(TraceError::Unavailable {
                why: "the fake has no tracepoints",
            });
        }
        if self.dumps > 0 {
            return Err(TraceError::Unavailable {
                why: "the fake's client trace started after the first sample",
            });
        }
        self.client_tracing = true;
        Ok(Vec::new())
    }

    fn finish_client_trace(&mut self) -> std::result::Result<Capture, TraceError> {
        if !std::mem::take(&mut self.client_tracing) {
            return Err(TraceError::NotStarted { trace: "client" });
        }
        let ns = &self.task_netns;
        Ok(Capture::of_text(
            self.client_trace.as_deref().unwrap_or_default(),
            |tid, tgid| Task {
                netns: ns.get(&tid).copied(),
                tgid,
            },
        ))
    }

    fn process_file(&mut self, pid: u32, path: &str) -> std::io::Result<String> {
        self.files_read.push((pid, path.to_string()));
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    fn process_dir(&mut self, _: u32, dir: &str) -> std::io::Result<Vec<String>> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let names: Vec<String> = self
            .files
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_string)
            .collect();
        if names.is_empty() {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        Ok(names)
    }

    fn process_env(&mut self, _: u32, var: &str) -> Option<String> {
        self.env.get(var).cloned()
    }

    fn netns_of(&mut self, pid: u32) -> Option<u64> {
        self.holders
            .iter()
            .any(|o| o.pid == pid)
            .then_some(self.netns.inode)
            .flatten()
    }
}
