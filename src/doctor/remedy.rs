//! Remedy plans: what to change, decided once per listener (or group of alike listeners) and
//! read by every finding about it, so one listener never gets two numbers for one knob.
//!
//! A plan chooses the target backlog N from the current backlog B, somaxconn, what the
//! application asked for (when that can be known), the runtime's default and the peak; then
//! lists typed steps in the order of docs/kernel.md §8. Every command that touches a
//! per-namespace sysctl goes through `Where::sysctl`, so it is scoped to the listener's network
//! namespace; where that namespace cannot be told, no command is given, and the step says why
//! (`NoCommand`), as it says whether its command names a PID of the recording's time.
//!
//! The plan is a fixpoint: once applied (somaxconn ≥ N, B = N, nothing overflowing), the next
//! diagnosis raises nothing again — historical drops alone only ask to check that the fix held.
//! `tests/remedy.rs` proves it over generated snapshots. Pure: no I/O; step texts are filled by
//! `words.rs`.

use std::net::SocketAddr;

use serde::Serialize;

use super::ListenerView;
use super::caps::Cap;
use super::runtime::{self, Relisten, Runtime};
use crate::catalogue::{IP_LOCAL_PORT_RANGE, NF_CONNTRACK_MAX, Sysctl};
pub use crate::model::Where;
use crate::model::{Local, Netns, NetnsLabel, Owner, ProcState, Setting, Sysctls};

/// The modern default of net.core.somaxconn (5.4 and later): the smallest backlog a plan
/// recommends.
pub const MODERN_SOMAXCONN: u32 = 4096;
/// Older kernels kept the backlog in 16 bits (docs/kernel.md §5); plans stay below.
pub const MAX_RECOMMENDED: u32 = 65535;
/// net.core.somaxconn is an int: the most a sysctl command may ask for.
const SOMAXCONN_MAX: u32 = i32::MAX as u32;

/// A per-namespace sysctl a step can set: the sysctls a plan may change, of `Sysctl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    Somaxconn,
    Syncookies,
    AbortOnOverflow,
}

impl Knob {
    pub(crate) fn sysctl(self) -> Sysctl {
        match self {
            Knob::Somaxconn => Sysctl::Somaxconn,
            Knob::Syncookies => Sysctl::TcpSyncookies,
            Knob::AbortOnOverflow => Sysctl::TcpAbortOnOverflow,
        }
    }

    /// The dotted name: `net.core.somaxconn`.
    pub(crate) fn key(self) -> &'static str {
        self.sysctl().name()
    }

    /// Kubernetes lets a pod set only "safe" sysctls without the kubelet's
    /// `--allowed-unsafe-sysctls`; of ours, tcp_syncookies is safe.
    pub fn k8s_safe(self) -> bool {
        matches!(self, Knob::Syncookies)
    }
}

/// In JSON, by its dotted name (`"knob": "net.core.somaxconn"`).
impl Serialize for Knob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.key())
    }
}

/// The commands of a step, run in the listener's network namespace and only there.
impl Where {
    /// The command that sets `knob` to `value` in this namespace, and only there. None when
    /// the namespace cannot be entered by a command (a host command would change the host's).
    pub fn sysctl(&self, knob: Knob, value: u32) -> Option<String> {
        self.sysctl_raw(knob.key(), &value.to_string())
    }

    /// The command that keeps the value across reboots, where one file does it (the host's
    /// /etc/sysctl.d). Containers and named namespaces are set up by something else.
    pub fn persist(&self, knob: Knob, value: u32) -> Option<String> {
        self.persist_raw(knob.key(), &value.to_string())
    }

    /// `sysctl -w NAME=VALUE` in this namespace (a `Knob`'s, or the connecting side's); VALUE
    /// as the shell needs it. None when it cannot be entered.
    pub fn sysctl_raw(&self, name: &str, value: &str) -> Option<String> {
        let set = format!("sysctl -w {name}={value}");
        Some(match self {
            Where::Host => set,
            Where::Named(n) => format!("ip netns exec {n} {set}"),
            Where::Path(p) => format!("nsenter --net={p} {set}"),
            Where::Pid { pid, .. } => format!("nsenter -t {pid} -n {set}"),
            Where::Unknown => return None,
        })
    }

    /// `persist` for `sysctl_raw`'s: the host's /etc/sysctl.d only.
    pub fn persist_raw(&self, name: &str, value: &str) -> Option<String> {
        let short = name.rsplit('.').next().unwrap_or(name);
        match self {
            Where::Host => Some(format!(
                "echo '{name} = {value}' > /etc/sysctl.d/90-backlogctl-{short}.conf"
            )),
            _ => None,
        }
    }

    /// `backlogctl ARGS` run against this namespace.
    pub fn backlogctl(&self, args: &str) -> Option<String> {
        Some(match self {
            Where::Host => format!("backlogctl {args}"),
            Where::Named(n) => format!("backlogctl --netns {n} {args}"),
            Where::Path(p) => format!("backlogctl --netns {p} {args}"),
            Where::Pid { pid, .. } => format!("backlogctl --pid {pid} {args}"),
            Where::Unknown => return None,
        })
    }

    /// Whether its commands name a process by PID (`nsenter -t PID`, `--pid PID`).
    pub(crate) fn names_pid(&self) -> bool {
        matches!(self, Where::Pid { .. })
    }

    pub fn container(&self) -> bool {
        matches!(
            self,
            Where::Pid {
                container: true,
                ..
            } | Where::Path(_)
        )
    }
}

/// What a step does, typed: what a consumer (or a test) needs to carry it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Action {
    /// Set a per-namespace sysctl.
    Sysctl { knob: Knob, value: u32 },
    /// Make the application ask listen() for `value`.
    AppBacklog {
        runtime: Option<&'static Runtime>,
        value: u32,
        /// The setting as the process runs with it, where it was read (its command line, a
        /// file): the change goes there, since on the command line it beats every file.
        #[serde(skip_serializing_if = "Option::is_none")]
        now: Option<Setting>,
    },
    /// Set the runtime's setting that sizes its backlog among other things
    /// (`Runtime::derived`: PostgreSQL's max_connections) to `value`.
    DerivedBacklog {
        runtime: &'static Runtime,
        setting: &'static str,
        value: u32,
        /// As `AppBacklog::now`.
        #[serde(skip_serializing_if = "Option::is_none")]
        now: Option<Setting>,
    },
    /// Make the socket call listen() again; `pid` gets the reload signal.
    Relisten {
        runtime: Option<&'static Runtime>,
        how: Relisten,
        #[serde(skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// The backlog's setting is on the command line: the restart must start the process
        /// with the changed one.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        new_command_line: bool,
    },
    /// Accept faster: the queue only absorbs bursts. `cap`: what the owner serves at once, as
    /// read from its settings (`doctor::caps`), when it was.
    AcceptFaster {
        #[serde(skip_serializing_if = "Option::is_none")]
        cap: Option<Cap>,
    },
    /// A pre-forked pool accepts only with a free worker: size the pool (php-fpm's
    /// `pm.max_children`, uWSGI's `--processes`), from `cap` when it was read.
    MoreWorkers {
        runtime: &'static Runtime,
        #[serde(skip_serializing_if = "Option::is_none")]
        cap: Option<Cap>,
    },
    /// The server accepts and holds requests it does not answer: its concurrency (workers,
    /// threads, a connection cap) is what the clients wait for.
    MoreConcurrency {
        runtime: Option<&'static Runtime>,
        /// Requests seen being worked on at once: the concurrency in use.
        in_progress: Option<u32>,
    },
    /// Drops never go down while the socket lives: check that they stop growing.
    CheckDropsHeld { listener: Local },
    /// The clients waited: check during the next burst that the oldest wait stays short.
    CheckWait { listener: Local },
    /// Find out why one socket of an SO_REUSEPORT group accepts slowly.
    BalanceReuseport,
    /// The process that serves a socket whose queue stands while the others of its group
    /// drain: resume it (stopped), restart it (in uninterruptible sleep, exited), or find out
    /// why it is slow (running, sleeping), by its state. `pid`: None when which of the
    /// socket's holders serves it is unknown.
    UnstickMember {
        #[serde(skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        state: Option<ProcState>,
    },
    /// Look for the listener that overflowed outside the view.
    FindOverflowingListener,
    /// Start the server, or point doctor at the address it listens on.
    StartServer,
    /// Start the server of a Unix socket, given what its path is now.
    StartUnixServer { path: super::PathState },
    /// Keep the current setting; only change it for a stated reason.
    KeepAbortOnOverflow,
    /// A full SYN queue with cookies on: raise the backlog only for a burst of real clients.
    RaiseIfRealClients,
    /// Resets from close() with unread data: read the whole request, or shut down, drain, close.
    ReadBeforeClose,
    /// Resets from SO_LINGER {1,0}: close normally.
    DropLingerZero,
    /// TCPAbortOnData counts two causes: trace the resets to tell which (`doctor --trace`).
    TraceResets,
    /// Resets from timers: keepalive and timeouts, and the peers' reachability.
    CheckTimeouts,
    /// Resets from TCP memory or orphan limits: tcp_mem, tcp_max_orphans.
    CheckTcpMemory,
    /// RSTs no cause explains: most often connects to a port nothing listens on.
    FindRefusedConnects,
    /// The connecting side: diagnose the server's listener on its own host, if it is yours.
    DiagnoseServer { server: SocketAddr },
    /// The connecting side: connect timeouts above the SYN retry steps, retries with jitter,
    /// bounded concurrency, a read timeout, on the namespace's SYN schedule.
    ClientTimeouts {
        #[serde(flatten)]
        schedule: super::client::SynSchedule,
    },
    /// The connecting side: reuse connections (a pool, keep-alive) instead of one per request.
    ReuseConnections,
    /// Widen `net.ipv4.ip_local_port_range` to these ports.
    WidenPortRange { low: u32, high: u32 },
    /// Let connect() reuse ports in TIME_WAIT (`net.ipv4.tcp_tw_reuse=1`).
    TwReuse,
    /// Raise the host's `net.netfilter.nf_conntrack_max` (writable only in the host's namespace).
    ConntrackMax { value: u32 },
}

/// The kind of a step, as the issue tracker of an operator would sort it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    Sysctl,
    AppSetting,
    Relisten,
    CodeChange,
    Check,
    /// Act on one process: resume it, restart it.
    Process,
}

/// Why a step gives no command: decided where the step is made, so the words say it and
/// never work it out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoCommand {
    /// The step is carried out by hand: a setting, a code change, a restart, a look.
    ByHand,
    /// The listener's namespace cannot be entered by a command (and one run here would change
    /// another namespace's value).
    NamespaceUnknown,
    /// The sysctl's value now could not be read: `sysctl -w` could lower it.
    ValueUnread,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub kind: StepKind,
    /// For people; filled by `words.rs`.
    pub text: String,
    /// The exact command, scoped to the listener's namespace, when one exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// A command that keeps the change across reboots (host sysctls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persist: Option<String>,
    /// The network namespace the step applies to (`host`, a name, `pid N`, `unknown`).
    pub namespace: String,
    /// Only under the condition its text states (e.g. "unless clients retry elsewhere"): a
    /// consumer carrying out steps blindly must skip it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conditional: bool,
    pub action: Action,
    /// How that namespace is reached, for the words.
    #[serde(skip)]
    pub at: Where,
    /// Why `command` is None; None when there is one.
    #[serde(skip)]
    pub(crate) no_command: Option<NoCommand>,
    /// Its command names a process by PID (`nsenter -t PID`, `kill -HUP PID`, `--pid PID`): the
    /// process of the time the data was recorded.
    #[serde(skip)]
    pub(crate) names_pid: bool,
}

/// The connecting side's commands: (command, persisting command, names a PID).
fn client_command(action: &Action, at: &Where) -> (Option<String>, Option<String>, bool) {
    match action {
        // Run on the server's own host, in its namespace: nothing here reaches it.
        Action::DiagnoseServer { server } => (
            Some(format!("backlogctl doctor --window 10s :{}", server.port())),
            None,
            false,
        ),
        Action::WidenPortRange { low, high } => (
            at.sysctl_raw(IP_LOCAL_PORT_RANGE, &format!("\"{low} {high}\"")),
            at.persist_raw(IP_LOCAL_PORT_RANGE, &format!("{low} {high}")),
            at.names_pid(),
        ),
        Action::TwReuse => (
            at.sysctl_raw(Sysctl::TcpTwReuse.name(), "1"),
            at.persist_raw(Sysctl::TcpTwReuse.name(), "1"),
            at.names_pid(),
        ),
        // The table is the host's: set there, whichever namespace is diagnosed.
        Action::ConntrackMax { value } => (
            Where::Host.sysctl_raw(NF_CONNTRACK_MAX, &value.to_string()),
            Where::Host.persist_raw(NF_CONNTRACK_MAX, &value.to_string()),
            false,
        ),
        _ => (None, None, false),
    }
}

/// The arguments of `Action::TraceResets`'s command, before the namespace is known.
pub(crate) const TRACE_RESETS: &str = "doctor --trace --window 10s";

impl Step {
    fn new(kind: StepKind, action: Action, at: &Where) -> Step {
        let (command, persist, names_pid) = match &action {
            Action::Sysctl { knob, value } => (
                at.sysctl(*knob, *value),
                at.persist(*knob, *value),
                at.names_pid(),
            ),
            // An unnamed Unix listener has no TARGET: watch them all.
            Action::CheckDropsHeld { listener } => (
                at.backlogctl(format!("watch {}", listener.as_target()).trim_end()),
                None,
                at.names_pid(),
            ),
            Action::FindOverflowingListener => {
                (at.backlogctl("doctor --window 10s"), None, at.names_pid())
            }
            Action::TraceResets => (at.backlogctl(TRACE_RESETS), None, at.names_pid()),
            Action::CheckWait { listener } => (
                at.backlogctl(&format!("doctor --window 5s {}", listener.as_target())),
                None,
                at.names_pid(),
            ),
            Action::Relisten {
                how: Relisten::Reload,
                pid: Some(pid),
                ..
            } => (Some(format!("kill -HUP {pid}")), None, true),
            // SIGCONT resumes a process stopped by a signal, not one a tracer holds (`t`).
            Action::UnstickMember {
                pid: Some(pid),
                state: Some(ProcState::Stopped),
            } => (Some(format!("kill -CONT {pid}")), None, true),
            _ => client_command(&action, at),
        };
        let no_command = match (&command, &action) {
            (Some(_), _) => None,
            (
                None,
                Action::Sysctl { .. }
                | Action::CheckDropsHeld { .. }
                | Action::CheckWait { .. }
                | Action::FindOverflowingListener
                | Action::TraceResets
                | Action::WidenPortRange { .. }
                | Action::TwReuse,
            ) => Some(NoCommand::NamespaceUnknown),
            (None, _) => Some(NoCommand::ByHand),
        };
        Step {
            kind,
            text: String::new(),
            command,
            persist,
            namespace: at.label(NetnsLabel::Short),
            conditional: matches!(
                action,
                Action::Sysctl {
                    knob: Knob::AbortOnOverflow,
                    ..
                } | Action::TwReuse
            ),
            action,
            at: at.clone(),
            no_command,
            names_pid,
        }
    }

    /// Gives no command (nor a persisting one), for this reason.
    fn withhold(&mut self, why: NoCommand) {
        self.command = None;
        self.persist = None;
        self.no_command = Some(why);
        self.names_pid = false;
    }

    /// Whether carrying it out raises a backlog or somaxconn.
    pub fn raises(&self) -> bool {
        matches!(
            self.action,
            Action::Sysctl {
                knob: Knob::Somaxconn,
                ..
            } | Action::AppBacklog { .. }
                | Action::DerivedBacklog { .. }
        )
    }
}

/// What the application asked listen() for, as far as the kernel's numbers tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Asked {
    /// B < somaxconn: B is the request (unless somaxconn was raised after listen()).
    Exactly(u32),
    /// B == somaxconn (or above it, somaxconn lowered since): the request was at least B.
    AtLeast(u32),
    /// somaxconn unknown.
    Unknown,
}

/// How the target backlog was chosen, with the numbers it was chosen from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backlog {
    /// Send-Q: the effective backlog now.
    pub current: u32,
    pub somaxconn: Option<u32>,
    pub asked: Asked,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_default: Option<u32>,
    /// Highest Recv-Q seen.
    pub peak: u32,
    /// The backlog to reach; None when nothing needs raising.
    pub target: Option<u32>,
    /// somaxconn needed for it, or to keep a backlog above today's somaxconn at the next
    /// restart; None when somaxconn is already enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub somaxconn_target: Option<u32>,
}

/// Why a listener needs a plan: the classification's verdicts that decide the steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Overflowing (in the window or now), nearly full, a small or capped backlog, a full SYN
    /// queue: the backlog must grow.
    pub raise: bool,
    /// Overflowing: accept() does not keep up.
    pub accept_faster: bool,
    /// Its backlog is above today's somaxconn: a restart would cut it.
    pub keep_above_somaxconn: bool,
    /// It has dropped: the count stays, so say how to see that it stopped growing.
    pub dropped: bool,
    /// Its clients waited in the accept queue: accept() is too slow, whatever the backlog.
    pub accept_queue_wait: bool,
    /// Its clients waited after accept(): the server's concurrency is too small.
    pub serve_faster: bool,
    /// A socket of it stood while the others of its SO_REUSEPORT group drained: the process
    /// behind it comes first, before any backlog.
    pub unstick: Option<Unstick>,
}

/// The process behind a socket whose queue stood while its group drained (`Action::UnstickMember`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unstick {
    pub pid: Option<u32>,
    pub state: Option<ProcState>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub id: usize,
    /// The listeners it is for (`local`), the example first.
    pub listeners: Vec<String>,
    /// Their socket inodes, in the same order (SO_REUSEPORT sockets share an address).
    pub inodes: Vec<u64>,
    pub runtime: Option<&'static Runtime>,
    pub backlog: Backlog,
    pub steps: Vec<Step>,
}

/// What the owner of a group's first listener runs with, as read from it (`doctor::caps`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Running {
    /// Its concurrency cap, when it rests on settings that were read.
    pub cap: Option<Cap>,
    /// Its backlog setting (or the setting it derives from), when the command line or a file
    /// set it.
    pub backlog: Option<Setting>,
}

/// The plan for a group of alike listeners (same backlog and processes), from its first: the
/// steps in the order of docs/kernel.md §8.
pub(crate) fn plan(
    id: usize,
    group: &[&ListenerView],
    needs: Needs,
    sysctls: &Sysctls,
    netns: &Netns,
    running: &Running,
) -> Plan {
    let v = group[0];
    let rt = runtime::runtime_of(&v.owners);
    let at = Where::of(netns);
    let b = v.send_q;
    let somaxconn = sysctls.somaxconn;
    let asked = match somaxconn {
        Some(s) if b < s => Asked::Exactly(b),
        Some(_) => Asked::AtLeast(b),
        None => Asked::Unknown,
    };
    let ceiling = rt.and_then(|r| r.max_backlog).unwrap_or(MAX_RECOMMENDED);
    let target = needs.raise.then(|| target_backlog(b, ceiling)).flatten();
    let keep = needs
        .keep_above_somaxconn
        .then(|| b.clamp(MODERN_SOMAXCONN, SOMAXCONN_MAX));
    let wanted_somaxconn = target.max(keep);
    let somaxconn_target = wanted_somaxconn.filter(|n| somaxconn.is_none_or(|s| s < *n));

    let mut steps = Vec::new();
    // A stuck process is the cause: a bigger backlog only makes its clients wait longer.
    if let Some(u) = needs.unstick {
        steps.push(unstick_step(u, &at));
    }
    if let Some(n) = somaxconn_target {
        steps.push(set_sysctl(Knob::Somaxconn, n, somaxconn, &at));
    }
    // A pool's size is a setting the same restart applies: it goes before the restart.
    let (pool, faster) = accept_steps(rt, needs, running, &at);
    if let Some(n) = target {
        steps.push(backlog_step(rt, n, running.backlog.clone(), &at));
    }
    steps.extend(pool);
    if target.is_some() {
        steps.push(relisten_step(rt, asked, &v.owners, running, &at));
    }
    steps.extend(faster);
    steps.extend(wait_steps(v, rt, needs, &at));
    if needs.dropped || needs.accept_faster {
        steps.push(Step::new(
            StepKind::Check,
            Action::CheckDropsHeld {
                listener: v.local.clone(),
            },
            &at,
        ));
    }
    Plan {
        id,
        listeners: group.iter().map(|v| v.local.to_string()).collect(),
        inodes: group.iter().map(|v| v.inode).collect(),
        runtime: rt,
        backlog: Backlog {
            current: b,
            somaxconn,
            asked,
            runtime_default: rt.and_then(|r| r.fixed_default()),
            peak: v.recv_q_peak,
            target,
            somaxconn_target,
        },
        steps,
    }
}

/// The clients waited: after accept(), serve more at once; either way check the wait again.
fn wait_steps(
    v: &ListenerView,
    rt: Option<&'static Runtime>,
    needs: Needs,
    at: &Where,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if needs.serve_faster {
        steps.push(Step::new(
            if rt.is_some_and(|r| {
                r.concurrency
                    .as_ref()
                    .is_some_and(|k| k.set != runtime::SetIn::Code)
            }) {
                StepKind::AppSetting
            } else {
                StepKind::CodeChange
            },
            Action::MoreConcurrency {
                runtime: rt,
                in_progress: v.wait.in_progress(),
            },
            at,
        ));
    }
    if needs.accept_queue_wait || needs.serve_faster {
        steps.push(Step::new(
            StepKind::Check,
            Action::CheckWait {
                listener: v.local.clone(),
            },
            at,
        ));
    }
    steps
}

/// Resume, restart or look at the process behind a stuck socket, by its state.
pub(crate) fn unstick_step(u: Unstick, at: &Where) -> Step {
    let kind = match u.state {
        Some(s) if s.halted() => StepKind::Process,
        _ => StepKind::Check,
    };
    Step::new(
        kind,
        Action::UnstickMember {
            pid: u.pid,
            state: u.state,
        },
        at,
    )
}

/// Set `knob` to `value` in the namespace `at`, from its value `now`: unread, it may already be
/// beyond (somaxconn higher, tcp_syncookies 2), and `sysctl -w` could lower it, so no command.
fn set_sysctl(knob: Knob, value: u32, now: Option<u32>, at: &Where) -> Step {
    let mut step = Step::new(StepKind::Sysctl, Action::Sysctl { knob, value }, at);
    if now.is_none() {
        step.withhold(NoCommand::ValueUnread);
    }
    step
}

/// A step that sets one of the namespace's own sysctls (`set_sysctl`).
pub(crate) fn sysctl_step(knob: Knob, value: u32, sysctls: &Sysctls, netns: &Netns) -> Step {
    set_sysctl(knob, value, sysctls.get(knob.sysctl()), &Where::of(netns))
}

/// When accept() does not keep up: size the pool of a runtime whose workers are one (the first),
/// else accept faster (the second); either names the cap read from the owner's settings.
fn accept_steps(
    rt: Option<&'static Runtime>,
    needs: Needs,
    running: &Running,
    at: &Where,
) -> (Option<Step>, Option<Step>) {
    if !(needs.accept_faster || needs.accept_queue_wait) {
        return (None, None);
    }
    let cap = running.cap.clone();
    match rt.filter(|r| r.worker_pool()) {
        Some(runtime) => (
            Some(Step::new(
                StepKind::AppSetting,
                Action::MoreWorkers { runtime, cap },
                at,
            )),
            None,
        ),
        None => (
            None,
            Some(Step::new(
                StepKind::CodeChange,
                Action::AcceptFaster { cap },
                at,
            )),
        ),
    }
}

/// Make the application ask listen() for `n`, by its runtime's setting or in its code, where
/// the running value `now` comes from when it is known.
fn backlog_step(rt: Option<&'static Runtime>, n: u32, now: Option<Setting>, at: &Where) -> Step {
    match rt.and_then(|r| r.derived.as_ref().map(|d| (r, d))) {
        Some((runtime, derived)) => Step::new(
            StepKind::AppSetting,
            Action::DerivedBacklog {
                runtime,
                setting: derived.setting,
                value: (derived.value_for)(n),
                now,
            },
            at,
        ),
        // Even a runtime that asks for somaxconn by default (Envoy, Netty, Go) may have been
        // told otherwise: the setting is named so that the result does not depend on it.
        _ => Step::new(
            if rt.is_some_and(|r| r.set_in_code()) {
                StepKind::CodeChange
            } else {
                StepKind::AppSetting
            },
            Action::AppBacklog {
                runtime: rt,
                value: n,
                now,
            },
            at,
        ),
    }
}

/// Have the socket call listen() again: a reload where the runtime takes the new backlog so,
/// else a restart.
fn relisten_step(
    rt: Option<&'static Runtime>,
    asked: Asked,
    owners: &[Owner],
    running: &Running,
    at: &Where,
) -> Step {
    let new_command_line = running
        .backlog
        .as_ref()
        .is_some_and(Setting::on_command_line);
    let how = match rt.map(|r| r.relisten) {
        // A reload re-listens only when the backlog value in the configuration changed: when
        // B is capped the configuration may already say N, and only a restart calls listen()
        // again.
        Some(Relisten::Reload) if matches!(asked, Asked::Exactly(_)) => Relisten::Reload,
        _ => Relisten::Restart,
    };
    Step::new(
        StepKind::Relisten,
        Action::Relisten {
            runtime: rt,
            how,
            pid: rt
                .filter(|_| how == Relisten::Reload)
                .and_then(|r| r.reload_pid(owners)),
            new_command_line,
        },
        at,
    )
}

/// somaxconn is one value per namespace: when plans of several listeners raise it, all say
/// the highest, so that carrying out one plan after another never lowers it again.
pub fn unify_somaxconn(plans: &mut [Plan]) {
    let is_somaxconn = |s: &Step| {
        matches!(
            s.action,
            Action::Sysctl {
                knob: Knob::Somaxconn,
                ..
            }
        )
    };
    let Some(max) = plans
        .iter()
        .flat_map(|p| &p.steps)
        .filter_map(|s| match s.action {
            Action::Sysctl {
                knob: Knob::Somaxconn,
                value,
            } => Some(value),
            _ => None,
        })
        .max()
    else {
        return;
    };
    for plan in plans.iter_mut() {
        for step in plan.steps.iter_mut().filter(|s| is_somaxconn(s)) {
            let withheld = step.no_command;
            *step = Step::new(
                step.kind,
                Action::Sysctl {
                    knob: Knob::Somaxconn,
                    value: max,
                },
                &step.at,
            );
            if let Some(why) = withheld {
                step.withhold(why);
            }
            plan.backlog.somaxconn_target = Some(max);
        }
    }
}

/// The backlog to recommend for one at `b` that must grow: the modern somaxconn default
/// (4096) when below it, else double, never above what the runtime or old kernels can take.
/// None when `b` is already at that ceiling: only accepting faster helps then.
pub fn target_backlog(b: u32, ceiling: u32) -> Option<u32> {
    let n = if b < MODERN_SOMAXCONN {
        MODERN_SOMAXCONN
    } else {
        b.saturating_mul(2)
    };
    let n = n.min(ceiling);
    (n > b).then_some(n)
}

/// A step for the whole namespace that sets no listen-queue sysctl (a look for a hidden
/// listener, the connecting side's steps, ...).
pub fn namespace_step(action: Action, netns: &Netns) -> Step {
    let kind = match action {
        Action::Sysctl { .. }
        | Action::WidenPortRange { .. }
        | Action::TwReuse
        | Action::ConntrackMax { .. } => StepKind::Sysctl,
        Action::BalanceReuseport
        | Action::ReadBeforeClose
        | Action::DropLingerZero
        | Action::TraceResets
        | Action::ClientTimeouts { .. }
        | Action::ReuseConnections => StepKind::CodeChange,
        _ => StepKind::Check,
    };
    let mut step = Step::new(kind, action, &Where::of(netns));
    // Run where the server is, not here.
    if matches!(step.action, Action::DiagnoseServer { .. }) {
        step.namespace = "the server's".into();
    }
    if matches!(step.action, Action::ConntrackMax { .. }) {
        step.namespace = "host".into();
    }
    step
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(initial: Option<bool>, names: &[&str], pid: Option<u32>) -> Netns {
        Netns {
            inode: Some(4026532000),
            initial,
            names: names.iter().map(|s| s.to_string()).collect(),
            pid,
            path: None,
        }
    }

    #[test]
    fn commands_stay_in_the_listeners_namespace() {
        let k = Knob::AbortOnOverflow;
        let host = Where::of(&ns(Some(true), &[], None));
        assert_eq!(
            host.sysctl(k, 0).as_deref(),
            Some("sysctl -w net.ipv4.tcp_abort_on_overflow=0")
        );
        assert!(host.persist(k, 0).unwrap().contains("/etc/sysctl.d/"));
        let named = Where::of(&ns(Some(false), &["bpy"], None));
        assert_eq!(
            named.sysctl(k, 0).as_deref(),
            Some("ip netns exec bpy sysctl -w net.ipv4.tcp_abort_on_overflow=0")
        );
        assert_eq!(named.persist(k, 0), None);
        let entered = Where::of(&ns(Some(false), &[], Some(42)));
        assert_eq!(
            entered.sysctl(Knob::Somaxconn, 4096).as_deref(),
            Some("nsenter -t 42 -n sysctl -w net.core.somaxconn=4096")
        );
        let held = Where::of(&ns(None, &[], Some(7)));
        assert_eq!(
            held.sysctl(Knob::Syncookies, 1).as_deref(),
            Some("nsenter -t 7 -n sysctl -w net.ipv4.tcp_syncookies=1")
        );
        // Not known to be the host's and no way in: no command at all, whoever holds sockets.
        let unknown = Where::of(&ns(Some(false), &[], None));
        assert_eq!(unknown.sysctl(Knob::Somaxconn, 4096), None);
        assert_eq!(unknown.backlogctl("watch :80"), None);
    }

    #[test]
    fn target_is_chosen_once_and_bounded() {
        assert_eq!(target_backlog(5, MAX_RECOMMENDED), Some(4096));
        assert_eq!(target_backlog(4096, MAX_RECOMMENDED), Some(8192));
        assert_eq!(target_backlog(60000, MAX_RECOMMENDED), Some(65535));
        assert_eq!(target_backlog(65535, MAX_RECOMMENDED), None);
        assert_eq!(target_backlog(u32::MAX, MAX_RECOMMENDED), None);
        assert_eq!(target_backlog(244, 10_000), Some(4096));
        assert_eq!(target_backlog(9000, 10_000), Some(10_000));
        assert_eq!(target_backlog(10_000, 10_000), None);
    }
}
