//! Command-line surface: clap derive types and the syntax shared by every command (TARGET,
//! durations). Validation only, no system access; like ripgrep's low-level arguments, values
//! that need care stay strings here and are checked by `parse_targets`/`parse_duration` so the
//! user gets our one-line error rather than clap's paragraph.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, Result};

macro_rules! exit_codes {
    () => {
        "Exit codes:
  0  success (doctor: no problem found)
  1  doctor: warnings only
  2  doctor: a critical finding
  3  error: bad input, unreadable /proc file or snapshot, netlink failure, missing privilege"
    };
    (other) => {
        "Exit codes:
  0  success
  3  error: bad input, unreadable /proc file or snapshot, netlink failure, missing privilege"
    };
    (exporter) => {
        "Exit codes:
  0  stopped by SIGTERM or SIGINT
  3  error: bad input or --web.config.file, cannot listen, netlink failure, missing privilege"
    };
}

/// Examples, shared by `--help` and the man pages: one `$ command` line, then what it does.
macro_rules! examples {
    (doctor) => {
        "  backlogctl doctor :8100                 diagnose the listener on port 8100 over 1 s
  backlogctl doctor --window 10s --json   every listener, 10 s, as JSON
  backlogctl doctor --from snap.json      diagnose a recorded snapshot, no kernel access
  backlogctl --pid 4242 doctor            inside the network namespace of PID 4242 (a container)
  backlogctl doctor --all-netns           every network namespace on the host"
    };
    (watch) => {
        "  backlogctl watch :8100                  live view of one listener
  backlogctl watch --json -n 60 > w.jsonl one minute of JSON lines
  backlogctl watch -d 5m --record w.json  five minutes, then: doctor --from w.json"
    };
    (lab) => {
        "  backlogctl lab                          the seed: 1000 clients, 10 workers, backlog 50
  backlogctl lab --abort-on-overflow 1    the same, resetting overflowing handshakes
  backlogctl lab --backlog 4096           a backlog large enough for the burst
  backlogctl lab --veth                   the burst seen from a clients' namespace too"
    };
    (plot) => {
        "  backlogctl plot rec.json -o burst.svg   the recording's timeline as an SVG picture
  backlogctl plot rec.json :8080 > a.svg  one listener of it, SVG on stdout"
    };
    (snapshot) => {
        "  backlogctl snapshot :8100               one sample of port 8100, JSON on stdout
  backlogctl snapshot -w 1s -o snap.json  one second of samples, written atomically"
    };
    (explain) => {
        "  backlogctl explain ListenOverflows      what the counter means, and its value here
  backlogctl explain somaxconn"
    };
    (metrics) => {
        "  backlogctl metrics                      Prometheus text on stdout
  backlogctl metrics --all-netns -o /var/lib/prometheus/node-exporter/backlogctl.prom"
    };
    (exporter) => {
        "  backlogctl exporter --all-netns        every namespace's listeners on :9848/metrics
  backlogctl exporter --listen 127.0.0.1:9848 :8080   one port of this namespace, loopback only
  backlogctl exporter --pid 4242          the namespace of PID 4242 (a container)
  backlogctl exporter --web.config.file web.yml   HTTPS and basic auth, as node_exporter"
    };
    (completions) => {
        "  backlogctl completions bash > /etc/bash_completion.d/backlogctl
  backlogctl completions zsh > \"${fpath[1]}/_backlogctl\"
  backlogctl completions fish > ~/.config/fish/completions/backlogctl.fish"
    };
}

/// The exit codes a command can return: doctor (and the top level) maps its verdict onto 0-2;
/// the others only succeed (0) or fail (3).
pub fn exit_codes(command: &str) -> &'static str {
    match command {
        "" | "doctor" => exit_codes!(),
        "exporter" => exit_codes!(exporter),
        _ => exit_codes!(other),
    }
}

/// The examples of a subcommand, for the man pages.
pub fn examples(command: &str) -> &'static str {
    match command {
        "doctor" => examples!(doctor),
        "watch" => examples!(watch),
        "lab" => examples!(lab),
        "snapshot" => examples!(snapshot),
        "plot" => examples!(plot),
        "explain" => examples!(explain),
        "metrics" => examples!(metrics),
        "exporter" => examples!(exporter),
        "completions" => examples!(completions),
        _ => concat!(
            examples!(doctor),
            "\n",
            examples!(watch),
            "\n",
            examples!(snapshot)
        ),
    }
}

const TARGET_HELP: &str = "Listener(s) in scope: :8100, 8100, 127.0.0.1:8100, [::1]:8100; a \
Unix socket by path (/run/php/php8.2-fpm.sock, unix:relative.sock) or abstract name (@name) \
(default: every TCP and Unix listener in the network namespace)";

/// Which socket families, as `ss` spells it.
#[derive(Debug, Args, Default, Clone, Copy)]
pub struct FamilyArgs {
    /// TCP listeners only (with -x: both)
    #[arg(long, short = 't')]
    pub tcp: bool,
    /// Unix-domain listeners only (with -t: both)
    #[arg(long, short = 'x')]
    pub unix: bool,
}

#[derive(Debug, Parser)]
#[command(
    name = "backlogctl",
    version,
    about = "Why do clients of this TCP server get resets or timeouts under bursts, and what to change",
    after_help = concat!("Examples:\n", examples!(doctor), "\n\n", exit_codes!()),
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Before the command: the namespace every command that reads one works in. The commands
    /// that read a namespace take the same options after their name too; lab and completions
    /// do not offer them (lab makes its own namespace).
    #[command(flatten)]
    pub ns: NsArgs,
    /// Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb), always or never
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto",
          value_parser = ["auto", "always", "never"])]
    pub color: String,
}

/// Which network namespace to work in.
#[derive(Debug, Args, Default, Clone)]
pub struct NsArgs {
    /// Work inside this network namespace: a name from `ip netns list`, or an nsfs path such as
    /// /proc/PID/ns/net (needs CAP_SYS_ADMIN)
    #[arg(long, value_name = "NAME|PATH", conflicts_with = "pid")]
    pub netns: Option<String>,
    /// Work inside the network namespace of this process, e.g. a container's main process
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diagnose listen-queue overflow: cause, evidence, what clients see, the exact fix
    #[command(after_help = concat!("Examples:\n", examples!(doctor), "\n\n", exit_codes!()))]
    Doctor(DoctorArgs),
    /// Live view of the listeners: queue peaks between refreshes, drops/s, SYN_RECV
    #[command(after_help = concat!("Examples:\n", examples!(watch), "\n\n", exit_codes!(other)))]
    Watch(WatchArgs),
    /// Reproduce a connection burst against a small backlog in a private namespace, safely
    #[command(after_help = concat!("Examples:\n", examples!(lab), "\n\n", exit_codes!(other)))]
    Lab(LabArgs),
    /// Record listeners, queue lengths, counters and sysctls as a JSON snapshot
    #[command(after_help = concat!("Examples:\n", examples!(snapshot), "\n\n", exit_codes!(other)))]
    Snapshot(SnapshotArgs),
    /// A recorded snapshot's timeline as an SVG picture: queue against B+1, drops, counters
    #[command(after_help = concat!("Examples:\n", examples!(plot), "\n\n", exit_codes!(other)))]
    Plot(PlotArgs),
    /// What a counter, sysctl or column means, and its value in this namespace
    #[command(after_help = concat!("Examples:\n", examples!(explain), "\n\n", exit_codes!(other)))]
    Explain(ExplainArgs),
    /// Listener state, listen counters and sysctls in Prometheus text format
    #[command(after_help = concat!("Examples:\n", examples!(metrics), "\n\n", exit_codes!(other)))]
    Metrics(MetricsArgs),
    /// Serve the metrics over HTTP for Prometheus, collected at each scrape
    #[command(after_help = concat!("Examples:\n", examples!(exporter), "\n\n", exit_codes!(exporter)))]
    Exporter(ExporterArgs),
    /// Shell completion script for bash, zsh or fish, on stdout
    #[command(after_help = concat!("Examples:\n", examples!(completions), "\n\n", exit_codes!(other)))]
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub ns: NsArgs,
    /// A counter (ListenOverflows, TcpExt:ListenDrops), a sysctl (somaxconn,
    /// net.ipv4.tcp_abort_on_overflow) or a column (Recv-Q, Send-Q, drops, SYN_RECV)
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    pub ns: NsArgs,
    #[arg(value_name = "TARGET", help = TARGET_HELP)]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub families: FamilyArgs,
    /// Write to FILE atomically (for node_exporter's textfile collector) instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Every network namespace on the host, each labelled with its pod or container
    #[arg(long)]
    pub all_netns: bool,
}

#[derive(Debug, Args)]
pub struct ExporterArgs {
    #[command(flatten)]
    pub ns: NsArgs,
    #[arg(value_name = "TARGET", help = TARGET_HELP)]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub families: FamilyArgs,
    /// Address and port to serve on
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:9848")]
    pub listen: String,
    /// Every network namespace on the host, each labelled with its pod or container
    #[arg(long)]
    pub all_netns: bool,
    /// A scrape reports namespaces not read by then as failed; keep it below Prometheus's
    /// scrape_timeout (10s by default)
    #[arg(long, value_name = "DUR", default_value = "8s")]
    pub timeout: String,
    /// Connections served at once; more are answered 503
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_connections: usize,
    /// TLS, basic auth and response headers from FILE, in prometheus/exporter-toolkit's format
    /// (node_exporter's --web.config.file); checked at start, exit 3 if unusable
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for: bash, zsh or fish
    #[arg(value_name = "SHELL", value_parser = ["bash", "zsh", "fish"])]
    pub shell: String,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A snapshot recorded with `snapshot --window` or `watch --record`
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: PathBuf,
    /// Listener(s) to draw: :8100, 127.0.0.1:8100, [::1]:8100 (default: the most troubled of
    /// the snapshot, three at most)
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Write the SVG to FILE (atomically) instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub ns: NsArgs,
    #[arg(value_name = "TARGET", help = TARGET_HELP)]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub families: FamilyArgs,
    /// Observe for this long (e.g. 1s, 500ms); 0 takes a single sample
    #[arg(long, short = 'w', value_name = "DUR", default_value = "0")]
    pub window: String,
    /// Time between samples within the window; short enough to see millisecond bursts
    #[arg(long, value_name = "DUR", default_value = "10ms")]
    pub sample_interval: String,
    /// Write the snapshot to FILE (atomically) instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// One line of JSON instead of indented
    #[arg(long)]
    pub compact: bool,
    /// Count SYN_RECV even if no SYN queue here has ever filled (walks every established socket)
    #[arg(long)]
    pub syn_recv: bool,
    /// Do not name the processes holding the listeners (skips reading /proc/*/fd, like `ss`
    /// without -p)
    #[arg(long)]
    pub no_processes: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub ns: NsArgs,
    #[arg(value_name = "TARGET", help = TARGET_HELP)]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub families: FamilyArgs,
    /// Observe for this long to catch bursts and count drops (0 = one sample, no deltas)
    #[arg(long, short = 'w', value_name = "DUR", default_value = "1s")]
    pub window: String,
    /// Time between samples within the window
    #[arg(long, value_name = "DUR", default_value = "10ms")]
    pub sample_interval: String,
    /// Diagnose a recorded snapshot instead of the live kernel
    #[arg(long, value_name = "SNAPSHOT", conflicts_with_all = ["window", "sample_interval"])]
    pub from: Option<PathBuf>,
    /// Print the report as JSON (verdict, findings, listeners)
    #[arg(long)]
    pub json: bool,
    /// Count SYN_RECV even if no SYN queue here has ever filled (walks every established socket)
    #[arg(long)]
    pub syn_recv: bool,
    /// Do not name the processes holding the listeners (skips reading /proc/*/fd, like `ss`
    /// without -p)
    #[arg(long)]
    pub no_processes: bool,
    /// Also say what could not be observed when it cannot change the verdict (SYN_RECV not
    /// counted, processes not named)
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Diagnose every network namespace on the host (named ones and those of processes)
    #[arg(long, conflicts_with_all = ["from", "netns", "pid"])]
    pub all_netns: bool,
    /// Also trace every RST sent during the window (the kernel's tcp:tcp_send_reset
    /// tracepoint, in a private tracefs instance removed on exit): each reset's listener and
    /// reason, e.g. TCP_ABORT_ON_CLOSE on 127.0.0.1:8080, or NO_SOCKET on the port clients
    /// were refused on. Root, tracefs and Linux 6.10+; otherwise the counters alone are used.
    /// The namespace's own connections are traced too: per server the errnos its sockets got,
    /// SYNs sent again, resets received and connect latency, and connect() calls refused with
    /// EAGAIN (a full Unix listener) or EADDRNOTAVAIL, per process
    #[arg(long, conflicts_with_all = ["from", "all_netns"])]
    pub trace: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub ns: NsArgs,
    #[arg(value_name = "TARGET", help = TARGET_HELP)]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub families: FamilyArgs,
    /// Time between refreshes of the display
    #[arg(long, short = 'i', value_name = "DUR", default_value = "1s")]
    pub interval: String,
    /// Time between samples of the hot listeners (a queue or drops in the last 5 s, or the
    /// targets'), each asked for alone; bursts shorter than a refresh still show as peaks. The
    /// whole scope is dumped as often as 1-2.2% of a core allows, wake-ups counted (its TCP
    /// listeners between refreshes only once a connection was made: Tcp PassiveOpens)
    #[arg(long, value_name = "DUR", default_value = "10ms")]
    pub sample_interval: String,
    /// Stop after N refreshes
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this long
    #[arg(long, short = 'd', value_name = "DUR")]
    pub duration: Option<String>,
    /// One JSON object per refresh (JSON lines), then a summary object
    #[arg(long)]
    pub json: bool,
    /// Also write the samples as a snapshot that `doctor --from` can diagnose
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LabArgs {
    /// net.core.somaxconn inside the lab namespace
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub somaxconn: u32,
    /// Backlog the server passes to listen() (50 = Java's ServerSocket default)
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub backlog: i32,
    /// Server threads, each accepting and serving one connection at a time
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub workers: usize,
    /// Time a worker spends per request
    #[arg(long, value_name = "DUR", default_value = "100ms")]
    pub work: String,
    /// Concurrent clients
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub clients: usize,
    /// net.ipv4.tcp_abort_on_overflow inside the lab namespace
    #[arg(long, value_name = "0|1", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1))]
    pub abort_on_overflow: u32,
    /// net.ipv4.tcp_syncookies inside the lab namespace
    #[arg(long, value_name = "0|1|2", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=2))]
    pub syncookies: u32,
    /// Give up on connect() after this long
    #[arg(long, value_name = "DUR", default_value = "5s")]
    pub connect_timeout: String,
    /// Give up waiting for the reply after this long
    #[arg(long, value_name = "DUR", default_value = "5s")]
    pub reply_timeout: String,
    /// Clients hold back the handshake's final ACK this long (sent with the request), like a
    /// network round trip; 0 = loopback speed. At most 200ms (the kernel's delayed-ACK limit)
    #[arg(long, value_name = "DUR", default_value = "20ms")]
    pub ack_delay: String,
    /// Start the clients evenly over this long instead of all at once
    #[arg(long, value_name = "DUR", default_value = "0")]
    pub ramp: String,
    /// Burst a Unix-domain listener (an abstract name in the lab's namespace) instead of TCP:
    /// three clients in four connect non-blocking (EAGAIN at once when the queue is full),
    /// the fourth blocks for up to --connect-timeout
    #[arg(long)]
    pub unix: bool,
    /// The server reads only the first 64 bytes of each request, replies and closes, and the
    /// clients send 16 KB requests: each client gets its reply, then "Connection reset by
    /// peer" (close() with unread data sends RST, TCPAbortOnClose). Combines with the
    /// backlog settings, so both failures show side by side
    #[arg(long, conflicts_with = "unix")]
    pub unread_close: bool,
    /// Put the clients in a second private network namespace, joined to the server's by a
    /// veth pair (server 10.200.0.1, clients 10.200.0.2), and record the burst in both: the
    /// report adds the clients' side (their own counts beside their kernel's: connects, SYNs
    /// resent, resets; their connections to the server at the worst reading), doctor's
    /// findings in their namespace and whether they name the burst the server side names;
    /// --plot draws those connections on the server's time axis
    #[arg(long, conflicts_with = "unix")]
    pub veth: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Also draw the burst as an SVG picture in FILE: the clients' outcomes and connect
    /// latencies, and the server's accept queue, drops and counters over time
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

/// `0`, `250us`, `10ms`, `1s`, `1.5s`, `2m`. A bare number other than 0 is refused: seconds or
/// milliseconds would both be plausible readings.
pub fn parse_duration(what: &str, s: &str) -> Result<Duration> {
    let bad = || {
        Error::BadInput(format!(
            "malformed duration {s:?} for {what}: use a number with a unit, e.g. 500ms, 1s, 2m"
        ))
    };
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 86_400.0 * 7.0 {
        return Err(Error::BadInput(format!(
            "duration {s:?} for {what} is too long (at most 7 days)"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s: &str| parse_duration("--window", s).unwrap();
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(d("10ms"), Duration::from_millis(10));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("2m"), Duration::from_secs(120));
        assert_eq!(d("250us"), Duration::from_micros(250));
        for bad in ["", "5", "1x", "ms", "1.2.3s", "-1s", "99999h"] {
            assert!(parse_duration("--window", bad).is_err(), "{bad:?} accepted");
        }
    }
}
