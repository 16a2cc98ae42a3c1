//! `watch` into a writer: a table redrawn in place on a terminal, one line per listener per
//! refresh otherwise, or JSON lines; then the summary.

use std::io::Write;

use super::wait_short;
use crate::catalogue::{CLIENT_RATES, RESET_RATES, WATCH_RATES, short};
use crate::doctor::wait::{WAIT_CRITICAL_MS, WAIT_WARNING_MS};
use crate::model::{QueuePeak, Wait};
use crate::watch::{
    HistoryShape, ListenerSummary, MIN_SLOTS, OutgoingRows, Point, Refresh, RemoteRow, Row,
    Summary, View,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An in-place table redrawn every refresh, with a sparkline of each listener's recent
    /// peaks when `history` keeps any.
    Tty {
        color: bool,
        rows: usize,
        width: usize,
        /// The locale's character set is UTF-8: block characters; otherwise ASCII.
        utf8: bool,
        history: HistoryShape,
        /// The scope takes TCP listeners, whose clients' wait is read: the WAITING and WAIT
        /// columns, where the width has room for them (`WAIT_MIN_WIDTH`).
        wait: bool,
    },
    /// One line per listener per refresh.
    Lines,
    /// One JSON object per refresh.
    Json,
}

impl Format {
    /// The history the tracker must keep for this format: sparklines on a terminal only.
    pub(crate) fn history(self) -> Option<HistoryShape> {
        match self {
            Format::Tty { history, .. } => Some(history),
            _ => None,
        }
    }
}

/// `watch`'s view into a writer.
pub(crate) struct Printer<'a> {
    pub(crate) out: &'a mut dyn Write,
    pub(crate) format: Format,
    /// The JSON line being written, kept from one refresh to the next (`json_line`).
    pub(crate) line: Vec<u8>,
}

impl View for Printer<'_> {
    fn begin(&mut self) -> std::io::Result<()> {
        match self.format {
            Format::Tty { .. } => write!(self.out, "\x1b[?25l"), // hide the cursor while redrawing
            _ => Ok(()),
        }
    }

    fn refresh(&mut self, r: &Refresh) -> std::io::Result<()> {
        match self.format {
            Format::Json => json_line(self.out, r, &mut self.line),
            format => refresh(self.out, r, format),
        }
    }

    fn end(&mut self) -> std::io::Result<()> {
        match self.format {
            Format::Tty { .. } => write!(self.out, "\x1b[?25h"),
            _ => Ok(()),
        }
    }

    fn summary(&mut self, s: &Summary) -> std::io::Result<()> {
        summary(self.out, s, self.format)?;
        self.out.flush()
    }
}

pub(crate) fn refresh(out: &mut dyn Write, r: &Refresh, format: Format) -> std::io::Result<()> {
    match format {
        Format::Json => json_line(out, r, &mut Vec::new()),
        Format::Lines => lines(out, r),
        Format::Tty {
            color,
            rows,
            width,
            utf8,
            history,
            wait,
        } => {
            let table = Table {
                color,
                utf8,
                history,
                lay: Layout::new(width, history, wait),
            };
            table.draw(out, r, rows, width)
        }
    }
}

/// One refresh as a JSON line, made in `line` (emptied first) and written at once. Into a
/// `Vec` the serializer's many small writes are plain copies; through `&mut dyn Write` each
/// was a call into the writer (a 2,000-row refresh is about 400 KB of them).
fn json_line(out: &mut dyn Write, r: &Refresh, line: &mut Vec<u8>) -> std::io::Result<()> {
    line.clear();
    serde_json::to_writer(&mut *line, r)?;
    line.push(b'\n');
    out.write_all(line)?;
    out.flush()
}

/// The oldest wait in the WAIT column: `≥` before a lower bound (a Unix listener's pending
/// connections carry no timestamp), five characters up to 99 hours.
fn wait_cell(w: &Wait) -> String {
    let bound = if w.at_least { "≥" } else { "" };
    format!("{bound}{}", wait_short(w.oldest_ms()))
}

/// A count, or `-` when unknown.
fn opt(v: Option<u32>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// Drops a second, whole, or `-` when unknown.
fn dps(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into())
}

/// A row's drops a second: `n/a` for a listener whose refusals no counter counts (Unix), else
/// whole, or `-` when unknown.
fn drops_cell(l: &Row) -> String {
    if l.local.counts_drops() {
        dps(l.drops_per_s)
    } else {
        NOT_COUNTED.into()
    }
}

/// What a drops column says for a Unix listener: no counter exists, so neither a number nor
/// "unknown".
const NOT_COUNTED: &str = "n/a";

/// `Format::Lines`: the namespace's rates, then one line per listener.
fn lines(out: &mut dyn Write, r: &Refresh) -> std::io::Result<()> {
    writeln!(out, "{} namespace {}", r.time, namespace_rates(r, "="))?;
    for l in &r.listeners {
        writeln!(
            out,
            "{} {} recv_q={} peak={} send_q={} fill={}% drops/s={} syn_recv={}{}{}{}",
            r.time,
            l.local,
            l.recv_q,
            l.peak,
            l.send_q,
            l.fill_pct,
            drops_cell(l),
            opt(l.syn_recv),
            // Only where it was read: absent is unknown, not nobody.
            l.wait
                .map(|w| format!(
                    " waiting={} after_accept={} wait{}={}",
                    w.waiting(),
                    w.unanswered,
                    if w.at_least { "_at_least" } else { "" },
                    wait_short(w.oldest_ms())
                ))
                .unwrap_or_default(),
            l.process
                .as_ref()
                // Quoted: the label has spaces ("nginx, pids 12-15").
                .map(|p| format!(" process={p:?}"))
                .unwrap_or_default(),
            l.event.map(|e| format!(" {e}")).unwrap_or_default(),
        )?;
    }
    if let Some(o) = &r.outgoing {
        outgoing_lines(out, &r.time, o)?;
    }
    out.flush()
}

/// `Format::Lines`: the connecting side, a line for the namespace (its resets a second, which
/// no counter names a server for), then one per server. A count not read at this refresh is
/// left out: absent is unknown, not none.
fn outgoing_lines(out: &mut dyn Write, time: &str, o: &OutgoingRows) -> std::io::Result<()> {
    writeln!(
        out,
        "{time} outgoing servers={}{} resets/s={}",
        o.remotes.len(),
        if o.more > 0 {
            format!(" more={}", o.more)
        } else {
            String::new()
        },
        dps(o.resets_per_s)
    )?;
    for s in &o.remotes {
        let mut read = String::new();
        if let (Some(e), Some(u)) = (s.established, s.unacked) {
            read.push_str(&format!(" established={e} unacked={u}"));
            if let Some(m) = s.unacked_retrans_max.filter(|m| *m > 0) {
                read.push_str(&format!(" unacked_retrans_max={m}"));
            }
        }
        if let Some(n) = s.never_acked {
            read.push_str(&format!(" never_acked={n}"));
        }
        if let Some(n) = s.time_wait {
            read.push_str(&format!(" time_wait={n}"));
        }
        writeln!(
            out,
            "{time} remote {} syn_sent={} peak={} retried={} retrans_max={}{read}",
            s.remote, s.syn_sent, s.syn_sent_peak, s.syn_retried, s.syn_retrans_max
        )?;
    }
    Ok(())
}

/// `Format::Tty`: the table redrawn in place.
struct Table {
    color: bool,
    utf8: bool,
    history: HistoryShape,
    lay: Layout,
}

impl Table {
    /// The whole screen: title and rates, column headers, then as many listeners as `rows`
    /// leaves room for.
    fn draw(
        &self,
        out: &mut dyn Write,
        r: &Refresh,
        rows: usize,
        width: usize,
    ) -> std::io::Result<()> {
        // Home, clear: redraw in place.
        write!(out, "\x1b[H\x1b[2J")?;
        let header_lines = title(out, r, width)?;
        self.header(out)?;
        let remotes = r.outgoing.as_ref().map_or(0, |o| o.remotes.len());
        let (room, remote_room) = split_room(
            rows.saturating_sub(3 + header_lines).max(1),
            r.listeners.len(),
            remotes,
        );
        for l in r.listeners.iter().take(room) {
            self.row(out, l)?;
        }
        if r.listeners.len() > room {
            writeln!(
                out,
                "... {} more listener(s) not shown (quieter ones)",
                r.listeners.len() - room
            )?;
        }
        if let Some(o) = &r.outgoing {
            self.remotes(out, o, remote_room, width)?;
        }
        out.flush()
    }

    /// The connecting side under the listeners: the servers in trouble (or named), most
    /// troubled first, `room` of them; red when connects or data were sent again.
    fn remotes(
        &self,
        out: &mut dyn Write,
        o: &OutgoingRows,
        room: usize,
        width: usize,
    ) -> std::io::Result<()> {
        let (rw, wide) = remote_width(width);
        let tail = |estab: &str, tw: &str| match wide {
            true => format!(" {estab:>6} {tw:>9}"),
            false => String::new(),
        };
        writeln!(
            out,
            "{:<rw$} {:>8} {:>5} {:>7} {:>7}{}",
            "REMOTE",
            "SYN_SENT",
            "PEAK",
            "RETRIED",
            "UNACKED",
            tail("ESTAB", "TIME_WAIT")
        )?;
        for s in o.remotes.iter().take(room) {
            let line = format!(
                "{:<rw$} {:>8} {:>5} {:>7} {:>7}{}",
                fit(&s.remote.to_string(), rw),
                s.syn_sent,
                s.syn_sent_peak,
                s.syn_retried,
                opt(s.unacked),
                tail(&opt(s.established), &opt(s.time_wait)),
            );
            if self.color && remote_troubled(s) {
                writeln!(out, "\x1b[1;31m{line}\x1b[0m")?;
            } else {
                writeln!(out, "{line}")?;
            }
        }
        let hidden = o.remotes.len().saturating_sub(room) + o.more as usize;
        if hidden > 0 {
            writeln!(
                out,
                "... {hidden} more server(s) not shown (less troubled ones)"
            )?;
        }
        Ok(())
    }

    /// The column headers, with the span of the sparkline when there is one.
    fn header(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let lw = self.lay.listener;
        let last = if self.lay.slots == 0 {
            String::new()
        } else {
            let span = self.history.slot_time.saturating_mul(self.lay.slots as u32);
            format!(" LAST {}", span_label(span))
        };
        let wait = match self.lay.wait {
            true => format!(" {:>7} {:>5}", "WAITING", "WAIT"),
            false => String::new(),
        };
        writeln!(
            out,
            "{:<lw$}{} {:>7} {:>7} {:>7} {:>6} {:>8} {:>8}{wait}{last}",
            "LISTENER",
            self.process("PROCESS"),
            "RECV-Q",
            "PEAK",
            "SEND-Q",
            "FILL",
            "DROPS/s",
            "SYN_RECV"
        )
    }

    /// One listener's row: red when it drops or is full, yellow when nearly full, then its
    /// event and sparkline.
    fn row(&self, out: &mut dyn Write, l: &Row) -> std::io::Result<()> {
        let lw = self.lay.listener;
        let wait = match (self.lay.wait, l.wait) {
            (false, _) => String::new(),
            (true, Some(w)) => format!(" {:>7} {:>5}", w.waiting(), wait_cell(&w)),
            (true, None) => format!(" {:>7} {:>5}", "-", "-"),
        };
        let line = format!(
            "{:<lw$}{} {:>7} {:>7} {:>7} {:>5}% {:>8} {:>8}{wait}",
            fit(&l.local.to_string(), lw),
            self.process(l.process.as_deref().unwrap_or("?")),
            l.recv_q,
            l.peak,
            l.send_q,
            l.fill_pct,
            drops_cell(l),
            opt(l.syn_recv),
        );
        let q = QueuePeak {
            peak: l.peak,
            backlog: l.send_q,
        };
        // doctor's thresholds: a wait clients notice, and one past common client timeouts.
        let oldest = l.wait.map_or(0, |w| w.oldest_ms());
        let hot = l.drops_per_s.is_some_and(|d| d > 0.0) || q.full() || oldest >= WAIT_CRITICAL_MS;
        if self.color && hot {
            write!(out, "\x1b[1;31m{line}\x1b[0m")?;
        } else if self.color && (q.nearly_full() || oldest >= WAIT_WARNING_MS) {
            write!(out, "\x1b[33m{line}\x1b[0m")?;
        } else {
            write!(out, "{line}")?;
        }
        let trail = self.lay.trail(l, self.utf8, self.color);
        if trail.is_empty() {
            writeln!(out)
        } else {
            writeln!(out, " {trail}")
        }
    }

    /// The process column, with the space before it; empty when there is none.
    fn process(&self, p: &str) -> String {
        let pw = self.lay.process;
        if pw == 0 {
            String::new()
        } else {
            format!(" {:<pw$}", fit(p, pw))
        }
    }
}

/// The title line, with the namespace rates after it or, when both do not fit in `width`,
/// below it. Returns how many lines it took.
fn title(out: &mut dyn Write, r: &Refresh, width: usize) -> std::io::Result<usize> {
    let title = format!("backlogctl watch {}", r.time.get(11..19).unwrap_or(&r.time));
    let rates = namespace_rates(r, " ");
    if title.len() + 2 + rates.len() <= width {
        writeln!(out, "{title}  {rates}")?;
        Ok(1)
    } else {
        writeln!(out, "{title}")?;
        let mut lines = Vec::new();
        super::wrap_block(&mut lines, width, &rates, "", "")?;
        out.write_all(&lines)?;
        Ok(1 + lines.iter().filter(|b| **b == b'\n').count())
    }
}

/// Screen rows for listeners and for servers out of `room`: with servers to show, their
/// header and "more" line take two rows and they get a third of the room (all of it in a
/// namespace without listeners), at least one row each.
fn split_room(room: usize, listeners: usize, remotes: usize) -> (usize, usize) {
    if remotes == 0 {
        return (room, 0);
    }
    let share = if listeners == 0 { room } else { room / 3 };
    let k = remotes.min(share.saturating_sub(2)).max(1);
    (room.saturating_sub(k + 2).max(1), k)
}

/// Columns of a server row's numbers, spaces before them included: SYN_SENT, its peak,
/// retried, unacknowledged; then established and TIME_WAIT, where there is room.
const REMOTE_NUMBERS: usize = 9 + 6 + 8 + 8;
const REMOTE_MORE: usize = 7 + 10;

/// The longest IPv4 server with its port, `255.255.255.255:65535`: always whole.
const REMOTE_MIN: usize = 21;

/// The server column (what the numbers leave, up to a bracketed IPv6 address with its port)
/// and whether ESTAB and TIME_WAIT fit beside a whole IPv4 server.
fn remote_width(width: usize) -> (usize, bool) {
    let wide = width >= REMOTE_NUMBERS + REMOTE_MORE + REMOTE_MIN;
    let numbers = REMOTE_NUMBERS + if wide { REMOTE_MORE } else { 0 };
    (width.saturating_sub(numbers).min(47), wide)
}

/// A server whose connects or data were sent again: the row is red.
fn remote_troubled(s: &RemoteRow) -> bool {
    s.syn_retried > 0 || s.unacked.is_some_and(|u| u > 0)
}

/// `s` in at most `w` columns, cut with "…" when longer.
fn fit(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        let cut: String = s.chars().take(w.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Columns taken by the numbers of a watch row: Recv-Q, peak, Send-Q, fill, drops/s and
/// SYN_RECV with the spaces before them.
const NUMBERS: usize = 7 + 7 + 7 + 6 + 8 + 8 + 6;

/// The listener column keeps this much before the sparkline takes any: `127.0.0.1:8100` and
/// most addresses with their port, whole.
const LISTENER_MIN: usize = 16;

/// The last column holds the sparkline, or at least an event: `new`, `gone`.
const EVENT: usize = 4;

/// Columns of the clients' wait, spaces before them included: how many wait (accept queue
/// and after accept) and the oldest wait (`wait_short`, at most 4 characters).
const WAIT: usize = 8 + 6;

/// The wait columns are shown on a row at least this wide: the numbers, the wait, a listener
/// column of LISTENER_MIN and the shortest sparkline. Narrower, the table is as it was before
/// the wait was read (the lines and JSON always carry it).
const WAIT_MIN_WIDTH: usize = NUMBERS + WAIT + 1 + LISTENER_MIN + MIN_SLOTS;

/// Whether a row `width` wide shows the wait columns, for a scope whose wait is read.
fn wait_shown(width: usize, wait: bool) -> bool {
    wait && width >= WAIT_MIN_WIDTH
}

/// Columns the sparkline may take on a row `width` wide: what the numbers, the wait columns
/// when shown and a listener column of LISTENER_MIN leave. The options shape the history with
/// it.
pub(crate) fn history_room(width: usize, wait: bool) -> usize {
    let wait = if wait_shown(width, wait) { WAIT } else { 0 };
    width.saturating_sub(NUMBERS + wait + 1 + LISTENER_MIN)
}

/// How a terminal row `width` wide is shared. The numbers keep their columns, and the wait's
/// from WAIT_MIN_WIDTH on; then the listener gets LISTENER_MIN, the sparkline what it needs of
/// the rest, and the listener
/// (up to 22) and process (6 to 18, else none) columns what is left, an address cut with "…"
/// rather than pushing the row past the width. A row never exceeds `width` (at least 60, the
/// CLI's narrowest): a terminal would wrap it and the redraw would scroll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    listener: usize,
    /// 0: no process column.
    process: usize,
    /// History slots shown; 0: no sparkline (narrow terminal, or no history kept).
    slots: usize,
    /// Width of the last column: sparkline or event.
    last: usize,
    /// The wait columns are shown.
    wait: bool,
}

impl Layout {
    fn new(width: usize, history: HistoryShape, wait: bool) -> Layout {
        let wait = wait_shown(width, wait);
        let slots = history.slots.min(history_room(width, wait));
        let slots = if slots < MIN_SLOTS { 0 } else { slots };
        let last = slots.max(EVENT);
        let avail = width.saturating_sub(NUMBERS + if wait { WAIT } else { 0 } + 1 + last);
        let listener = if avail >= 30 {
            22.min(avail - 12)
        } else {
            avail.min(24)
        };
        let process = avail.saturating_sub(listener + 1).min(18);
        Layout {
            listener,
            process: if process < 6 { 0 } else { process },
            slots,
            last,
            wait,
        }
    }

    /// The last column of a row: its event (`new`, `gone`) on the left, the newest history
    /// slots on the right, so that a column is one time on every row. Empty when neither.
    fn trail(&self, l: &Row, utf8: bool, color: bool) -> String {
        let event = l.event.unwrap_or("");
        let fits = self.slots.min(
            self.last
                .saturating_sub(event.len() + usize::from(!event.is_empty())),
        );
        let points = &l.history[l.history.len().saturating_sub(fits)..];
        if points.is_empty() {
            return event.to_string();
        }
        let pad = self.last - event.len() - points.len();
        let mut s = format!("{event}{:pad$}", "");
        s.push_str(&sparkline(points, utf8, color));
        s
    }
}

/// Eight levels, lowest to full; `!` marks a slot with drops when there is no colour to.
const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const ASCII: [char; 8] = ['_', '.', ':', '-', '=', '+', '*', '#'];
const DROPPED: char = '!';

/// A slot's glyph. The scale is absolute, B+1: the lowest glyph for an empty queue (observed
/// empty, unlike the blank before a listener's history starts), the highest only for a full
/// queue (peak > B, `QueuePeak::full`), the six between in proportion of B+1, so that any
/// queued connection shows and a glyph means the same fill on every row and refresh.
pub(crate) fn glyph(fill: QueuePeak, utf8: bool) -> char {
    let level = if fill.peak == 0 {
        0
    } else if fill.full() {
        7
    } else {
        // peak < B+1 here, so 1..=6.
        1 + (u64::from(fill.peak) * 6 / fill.capacity()) as usize
    };
    if utf8 { BLOCKS[level] } else { ASCII[level] }
}

/// The glyphs of `points`, a slot with drops in red, or `!` without colour.
pub(crate) fn sparkline(points: &[Point], utf8: bool, color: bool) -> String {
    let mut s = String::new();
    for p in points {
        match (p.dropped, color) {
            (false, _) => s.push(glyph(p.fill, utf8)),
            (true, true) => {
                s.push_str("\x1b[1;31m");
                s.push(glyph(p.fill, utf8));
                s.push_str("\x1b[0m");
            }
            (true, false) => s.push(DROPPED),
        }
    }
    s
}

/// `45s`, `10m`, `2h`: the span of the sparkline in its header.
fn span_label(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else {
        format!("{}h", s / 3600)
    }
}

/// `ListenOverflows=3/s ListenDrops=3/s ... sampling=10ms`, with `sep` between name and value.
fn namespace_rates(r: &Refresh, sep: &str) -> String {
    let mut parts: Vec<String> = WATCH_RATES
        .iter()
        .map(|k| {
            let name = short(k);
            let v = r
                .rates
                .get(name)
                .map(|v| format!("{v:.0}/s"))
                .unwrap_or_else(|| "-".into());
            format!("{name}{sep}{v}")
        })
        .collect();
    // Resets by cause only when they rose: a quiet namespace keeps its one-line header.
    parts.extend(RESET_RATES.iter().chain(&CLIENT_RATES).filter_map(|k| {
        let name = short(k);
        let v = r.rates.get(name).filter(|v| **v >= 0.5)?;
        Some(format!("{name}{sep}{v:.0}/s"))
    }));
    parts.push(format!("sampling{sep}{}", period(r.sample_interval_us)));
    if r.hot > 0 {
        parts.push(format!("hot{sep}{}/{}", r.hot, period(r.hot_interval_us)));
    }
    parts.join(if sep == "=" { " " } else { "  " })
}

fn period(us: u64) -> String {
    if us >= 1000 {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

pub(crate) fn summary(out: &mut dyn Write, s: &Summary, format: Format) -> std::io::Result<()> {
    if format == Format::Json {
        serde_json::to_writer(&mut *out, &serde_json::json!({ "summary": s }))?;
        return writeln!(out);
    }
    writeln!(out)?;
    writeln!(
        out,
        "Summary: {} refresh(es), {} samples over {:.1} s",
        s.refreshes,
        s.samples,
        s.elapsed_ms as f64 / 1000.0
    )?;
    // Listeners that never queued or dropped anything are counted, not listed.
    let busy: Vec<&ListenerSummary> = s
        .listeners
        .iter()
        .filter(|l| {
            l.peak > 0 || l.drops.is_some_and(|d| d > 0) || l.longest_wait_ms.is_some_and(|w| w > 0)
        })
        .collect();
    for l in &busy {
        writeln!(
            out,
            "  {} (inode {}): peak Recv-Q {} of {} at {}, drops {}{}",
            l.local,
            l.inode,
            l.peak,
            l.send_q.saturating_add(1),
            l.peak_time,
            match (l.local.counts_drops(), l.drops) {
                (false, _) => format!("{NOT_COUNTED} (no counter for Unix listeners)"),
                (true, Some(d)) => d.to_string(),
                (true, None) => "unknown".into(),
            },
            match l.longest_wait_ms {
                Some(ms) if ms > 0 => format!(
                    ", longest wait {}{}",
                    if l.longest_wait_at_least {
                        "at least "
                    } else {
                        ""
                    },
                    wait_short(ms)
                ),
                _ => String::new(),
            }
        )?;
    }
    if busy.len() < s.listeners.len() {
        writeln!(
            out,
            "  {} listener(s) stayed empty",
            s.listeners.len() - busy.len()
        )?;
    }
    // The listen counters always; resets by cause only when they rose (the JSON has all).
    let resets: Vec<&str> = RESET_RATES
        .iter()
        .chain(&CLIENT_RATES)
        .map(|k| short(k))
        .collect();
    let t: Vec<String> = s
        .totals
        .iter()
        .filter(|(k, v)| !resets.contains(&k.as_str()) || **v > 0)
        .map(|(k, v)| format!("{k} +{v}"))
        .collect();
    if !t.is_empty() {
        writeln!(out, "  namespace: {}", t.join(", "))?;
    }
    match &s.worst {
        Some(w) => writeln!(out, "  worst moment: {}: {}", w.time, w.what)?,
        None => writeln!(
            out,
            "  worst moment: none, no listener filled up or dropped"
        )?,
    }
    remotes_summary(out, s)
}

/// The summary's servers seen in trouble, one line each.
fn remotes_summary(out: &mut dyn Write, s: &Summary) -> std::io::Result<()> {
    for r in &s.remotes {
        writeln!(
            out,
            "  server {}: peak SYN_SENT {}, a SYN sent again up to {} time(s), peak unacknowledged {}",
            r.remote, r.syn_sent_peak, r.syn_retrans_max, r.unacked_peak
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::model::Wait;

    fn q(peak: u32, backlog: u32) -> QueuePeak {
        QueuePeak { peak, backlog }
    }

    #[test]
    fn resets_show_in_the_header_only_when_they_rose() {
        let mut r = Refresh {
            time: "2026-11-30T12:00:00.000Z".into(),
            elapsed_ms: 0,
            sample_interval_us: 10_000,
            hot: 0,
            hot_interval_us: 0,
            refresh_cpu_us: 0,
            rates: [("ListenDrops", 0.0), ("TCPAbortOnClose", 0.0)]
                .map(|(k, v)| (k.to_string(), v))
                .into(),
            listeners: Vec::new(),
            outgoing: None,
        };
        assert!(!namespace_rates(&r, "=").contains("TCPAbortOnClose"));
        r.rates.insert("TCPAbortOnClose".into(), 12.0);
        let line = namespace_rates(&r, "=");
        assert!(
            line.contains("TCPReqQFullDoCookies=- TCPAbortOnClose=12/s"),
            "{line}"
        );
        assert!(!line.contains("OutRsts"), "absent, not 0: {line}");
    }

    #[test]
    fn full_is_the_top_glyph_only_at_b_plus_1() {
        // B = 100: B+1 = 101 queued is full (sk_acceptq_is_full), 100 is not.
        assert_eq!(glyph(q(101, 100), true), '█');
        assert_eq!(glyph(q(100, 100), true), '▇');
        assert_eq!(glyph(q(105, 100), true), '█', "overshoot");
        assert_eq!(glyph(q(0, 100), true), '▁', "empty, observed");
        assert_eq!(glyph(q(1, 100), true), '▂', "one queued shows");
        assert_eq!(glyph(q(50, 100), true), '▄');
        // B = 0: one queued is full.
        assert_eq!(glyph(q(1, 0), true), '█');
        assert_eq!(glyph(q(0, 0), true), '▁');
        // ASCII: the same levels.
        let ascii: String = [0, 1, 20, 40, 60, 80, 100, 101]
            .map(|p| glyph(q(p, 100), false))
            .iter()
            .collect();
        assert_eq!(ascii, "_.:-=+*#");
        let utf8: String = [0, 1, 20, 40, 60, 80, 100, 101]
            .map(|p| glyph(q(p, 100), true))
            .iter()
            .collect();
        assert_eq!(utf8, "▁▂▃▄▅▆▇█");
    }

    #[test]
    fn drops_are_red_or_a_bang() {
        let p = |peak, dropped| Point {
            fill: q(peak, 4),
            dropped,
        };
        let pts = [p(0, false), p(5, true), p(2, false)];
        assert_eq!(sparkline(&pts, true, false), "▁!▄");
        assert_eq!(sparkline(&pts, false, false), "_!-");
        assert_eq!(sparkline(&pts, true, true), "▁\x1b[1;31m█\x1b[0m▄");
    }

    fn rows() -> Vec<Row> {
        let full: Vec<Point> = (0..60)
            .map(|i| Point {
                fill: q(i % 9, 7),
                dropped: i % 7 == 0,
            })
            .collect();
        let row = |local: &str, process: Option<&str>, event, history: &[Point]| Row {
            local: local.parse::<SocketAddr>().unwrap().into(),
            inode: 1,
            process: process.map(str::to_string),
            recv_q: 1_000_000,
            peak: 4_000_000,
            samples: 100,
            send_q: 4_096,
            fill_pct: 97_000,
            drops_per_s: Some(1_234_567.0),
            drops_delta: Some(1),
            syn_recv: Some(99_999_999),
            wait: None,
            event,
            history: history.to_vec(),
        };
        vec![
            row("127.0.0.1:8100", Some("nginx, pid 12"), None, &full),
            row(
                "[2001:db8:ffff:ffff:ffff:ffff:ffff:1]:65535",
                Some("a-very-long-process-name: master 1, workers 2-99"),
                None,
                &full[..7],
            ),
            row("10.0.0.1:443", None, Some("new"), &full[..1]),
            row("10.0.0.2:443", Some("x"), Some("gone"), &[]),
            Row {
                local: unix_local(),
                drops_per_s: None,
                drops_delta: None,
                syn_recv: None,
                ..row("10.0.0.3:1", Some("php-fpm, pid 7"), None, &full)
            },
        ]
    }

    /// A Unix listener with a long path: the table cuts it, the drops columns say n/a.
    fn unix_local() -> crate::model::Local {
        use crate::model::{Local, Name, UnixKind, UnixLocal, UnixName};
        Local::Unix(UnixLocal {
            name: UnixName::Path(Name::new(b"/run/php/php8.2-fpm-a-long-pool-name.sock")),
            kind: UnixKind::Seqpacket,
            vfs: None,
        })
    }

    #[test]
    fn a_unix_row_says_drops_are_not_counted() {
        let table = render(120, true, false);
        let row = table.lines().find(|l| l.starts_with("/run/php")).unwrap();
        assert!(row.contains(" n/a "), "{table}");
        let r = Refresh {
            time: "2026-11-30T12:00:00.000Z".into(),
            elapsed_ms: 0,
            sample_interval_us: 10_000,
            hot: 0,
            hot_interval_us: 0,
            refresh_cpu_us: 0,
            rates: Default::default(),
            listeners: rows()[4..].to_vec(),
            outgoing: None,
        };
        let mut out = Vec::new();
        refresh(&mut out, &r, Format::Lines).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains(" /run/php/php8.2-fpm-a-long-pool-name.sock (seqpacket) recv_q=")
                && out.contains(" drops/s=n/a syn_recv=-"),
            "{out}"
        );
        let mut json = Vec::new();
        refresh(&mut json, &r, Format::Json).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert!(json["listeners"][0]["drops_per_s"].is_null(), "{json}");
    }

    fn render(width: usize, utf8: bool, color: bool) -> String {
        render_rows(width, utf8, color, false, rows())
    }

    /// The table of `listeners` on a terminal `width` wide, for a scope whose wait is read
    /// (`wait`) or not.
    fn render_rows(
        width: usize,
        utf8: bool,
        color: bool,
        wait: bool,
        listeners: Vec<Row>,
    ) -> String {
        let r = Refresh {
            time: "2026-11-30T12:00:00.000Z".into(),
            elapsed_ms: 0,
            sample_interval_us: 10_000,
            hot: 0,
            hot_interval_us: 0,
            refresh_cpu_us: 0,
            rates: WATCH_RATES
                .iter()
                .map(|k| (short(k).to_string(), 123_456.0))
                .collect(),
            listeners,
            outgoing: None,
        };
        let history = HistoryShape::minute(Duration::from_secs(1), history_room(width, wait));
        let format = Format::Tty {
            color,
            rows: 40,
            width,
            utf8,
            history,
            wait,
        };
        let mut out = Vec::new();
        refresh(&mut out, &r, format).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_never_exceed_the_width() {
        for width in [60, 70, 80, 89, 90, 100, 120, 160, 200] {
            let cases = [(true, true), (true, false), (false, true), (false, false)];
            for ((utf8, color), wait) in cases.into_iter().flat_map(|c| [(c, false), (c, true)]) {
                let out = render_rows(width, utf8, color, wait, waiting_rows());
                for line in out.lines() {
                    let line = line.trim_start_matches("\x1b[H\x1b[2J");
                    assert!(
                        super::super::visible_len(line) <= width,
                        "width {width}, utf8 {utf8}, color {color}, wait {wait}: {} columns\n{line}\n{out}",
                        super::super::visible_len(line)
                    );
                }
            }
        }
    }

    #[test]
    fn the_sparkline_shrinks_with_the_width_then_goes() {
        let last_minute = |width| {
            let out = render(width, true, false);
            let mut lines = out.lines().skip_while(|l| !l.starts_with("LISTENER"));
            let (header, row) = (lines.next().unwrap(), lines.next().unwrap());
            assert!(row.starts_with("127.0"), "{out}");
            // The sparkline, or the SYN_RECV column without one.
            let last = row.rsplit(' ').next().unwrap();
            let spark = if last == "99999999" {
                0
            } else {
                last.chars().count()
            };
            (header.ends_with(" LAST 60s"), spark)
        };
        // A refresh a glyph when there is room; at 120 two a glyph; at 80 five; at 60 none.
        assert_eq!(last_minute(200), (true, 60));
        assert_eq!(last_minute(120), (true, 30));
        assert_eq!(last_minute(80), (true, 12));
        assert_eq!(last_minute(60), (false, 0));
        // Events keep a place at every width; a new listener's one point is on the right.
        for width in [60, 80, 120] {
            let out = render(width, false, false);
            let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("10.0.")).collect();
            assert!(rows[0].contains(" new"), "{width}: {out}");
            assert!(rows[1].ends_with(" gone"), "{width}: {out}");
        }
        let new = render(120, false, false);
        let new = new.lines().find(|l| l.contains("10.0.0.1")).unwrap();
        assert!(new.ends_with(" new                          !"), "{new:?}");
        // No history kept (or a pipe's format): the table as before.
        let r = Refresh {
            time: "2026-11-30T12:00:00.000Z".into(),
            elapsed_ms: 0,
            sample_interval_us: 10_000,
            hot: 0,
            hot_interval_us: 0,
            refresh_cpu_us: 0,
            rates: Default::default(),
            listeners: rows()[..1].to_vec(),
            outgoing: None,
        };
        let mut out = Vec::new();
        let format = Format::Tty {
            color: false,
            rows: 40,
            width: 120,
            utf8: true,
            history: HistoryShape::default(),
            wait: false,
        };
        refresh(&mut out, &r, format).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("LAST") && !out.contains('▁'), "{out}");
    }

    /// `rows()` with waits: the widest counts and waits, one read with nobody waiting, and
    /// the Unix one and the gone one without.
    fn waiting_rows() -> Vec<Row> {
        let mut rows = rows();
        rows[0].wait = Some(Wait {
            queued: 9_999_999,
            queued_oldest_ms: u32::MAX,
            ..Wait::default()
        });
        rows[1].wait = Some(Wait {
            queued: 3,
            queued_oldest_ms: 400,
            unanswered: 20,
            unanswered_oldest_ms: 2_950,
            unread: 10,
            ..Wait::default()
        });
        rows[2].wait = Some(Wait::default());
        // The Unix listener: pending connections seen across readings, a lower bound.
        rows[4].wait = Some(Wait {
            queued: 5,
            queued_oldest_ms: 1_250,
            at_least: true,
            ..Wait::default()
        });
        rows
    }

    #[test]
    fn the_wait_has_two_columns_from_90_wide_on() {
        let listeners = waiting_rows()[1..].to_vec();
        let table = render_rows(120, true, false, true, listeners.clone());
        let header = table.lines().find(|l| l.starts_with("LISTENER")).unwrap();
        assert!(
            header.contains(" SYN_RECV WAITING  WAIT LAST 60s"),
            "{table}"
        );
        let row = |t: &str, at: &str| t.lines().find(|l| l.starts_with(at)).unwrap().to_string();
        // 3 in the accept queue and 20 after accept; the oldest of them 2.95 s, cut to 2.9s.
        assert!(
            row(&table, "[2001").contains(" 99999999      23  2.9s "),
            "{table}"
        );
        assert!(
            row(&table, "10.0.0.1").contains(" 99999999       0    0s "),
            "{table}"
        );
        // A Unix listener's is a lower bound; not read (a gone listener): unknown, not zero.
        assert!(
            row(&table, "/run/php").contains(" n/a        -       5 ≥1.2s "),
            "{table}"
        );
        assert!(
            row(&table, "10.0.0.2").contains(" 99999999       -     - gone"),
            "{table}"
        );
        // One column short of the wait and the shortest sparkline: the table as it was.
        let narrow = render_rows(89, true, false, true, listeners.clone());
        assert_eq!(
            narrow,
            render_rows(89, true, false, false, listeners.clone())
        );
        assert!(!narrow.contains("WAITING"), "{narrow}");
        assert!(render_rows(90, true, false, true, listeners.clone()).contains("WAITING"));
        // A scope without TCP listeners has no wait columns, however wide.
        assert!(!render_rows(200, true, false, false, listeners).contains("WAITING"));
    }

    #[test]
    fn the_wait_columns_take_their_room_from_the_sparkline() {
        let spark = |width| {
            let out = render_rows(width, true, false, true, rows());
            let row = out
                .lines()
                .find(|l| l.starts_with("127.0"))
                .unwrap()
                .to_string();
            row.rsplit(' ').next().unwrap().chars().count()
        };
        // 200 and 120 keep theirs; 100 has 20 (was 30), 90 the shortest, 10.
        assert_eq!(
            [spark(200), spark(120), spark(100), spark(90)],
            [60, 30, 20, 10]
        );
    }

    #[test]
    fn a_wait_clients_notice_is_yellow_and_one_past_timeouts_red() {
        let colour = |ms: u32| {
            let mut row = rows()[2].clone();
            (row.peak, row.fill_pct, row.drops_per_s) = (0, 0, Some(0.0));
            row.wait = Some(Wait {
                unanswered: 1,
                unanswered_oldest_ms: ms,
                ..Wait::default()
            });
            let out = render_rows(120, true, true, true, vec![row]);
            let row = out
                .lines()
                .find(|l| l.contains("10.0.0.1"))
                .unwrap()
                .to_string();
            row.get(..7).unwrap_or_default().to_string()
        };
        assert!(!colour(999).starts_with("\x1b["), "{:?}", colour(999));
        assert!(colour(1_000).starts_with("\x1b[33m"));
        assert!(colour(5_000).starts_with("\x1b[1;31m"));
    }

    #[test]
    fn lines_and_json_carry_the_wait_where_it_was_read() {
        let r = Refresh {
            time: "2026-11-30T12:00:00.000Z".into(),
            elapsed_ms: 0,
            sample_interval_us: 10_000,
            hot: 0,
            hot_interval_us: 0,
            refresh_cpu_us: 0,
            rates: Default::default(),
            listeners: waiting_rows()[1..].to_vec(),
            outgoing: None,
        };
        let mut out = Vec::new();
        refresh(&mut out, &r, Format::Lines).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[1].contains(" syn_recv=99999999 waiting=23 after_accept=20 wait=2.9s process="),
            "{out}"
        );
        assert!(
            lines[2].ends_with(" waiting=0 after_accept=0 wait=0s new"),
            "{out}"
        );
        assert!(
            lines[4].contains(" syn_recv=- waiting=5 after_accept=0 wait_at_least=1.2s process="),
            "a Unix listener's lower bound: {out}"
        );
        assert!(!lines[3].contains("wait"), "a gone listener: {out}");
        let mut json = Vec::new();
        refresh(&mut json, &r, Format::Json).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let wait = &json["listeners"][0]["wait"];
        assert_eq!(
            (
                &wait["queued"],
                &wait["unanswered"],
                &wait["unanswered_oldest_ms"],
                &wait["unread"]
            ),
            (&3.into(), &20.into(), &2950.into(), &10.into()),
            "{json}"
        );
        assert!(json["listeners"][2].get("wait").is_none(), "{json}");
        assert_eq!(json["listeners"][3]["wait"]["at_least"], true, "{json}");
    }

    /// Two servers: one whose connects are sent again (ESTABLISHED not read), one with data
    /// unacknowledged, an IPv6 one with a long address; one more left out by the reading.
    fn outgoing_rows() -> OutgoingRows {
        let row = |remote: &str, syn_sent, peak, retried, unacked: Option<u32>| RemoteRow {
            remote: remote.parse().unwrap(),
            syn_sent,
            syn_sent_peak: peak,
            syn_retried: retried,
            syn_retrans_max: 3,
            established: unacked.map(|u| u + 1),
            unacked,
            unacked_retrans_max: unacked.map(|_| 2),
            never_acked: None,
            time_wait: None,
        };
        OutgoingRows {
            remotes: vec![
                row("10.200.0.1:9000", 30, 31, 29, None),
                row("10.200.0.9:443", 0, 0, 0, Some(800)),
                row(
                    "[2001:db8:ffff:ffff:ffff:ffff:ffff:1]:65535",
                    9_999_999,
                    9_999,
                    9,
                    None,
                ),
            ],
            more: 1,
            resets_per_s: Some(6.0),
        }
    }

    fn outgoing_refresh(listeners: Vec<Row>) -> Refresh {
        Refresh {
            time: "2026-11-30T12:00:00.000Z".into(),
            elapsed_ms: 0,
            sample_interval_us: 10_000,
            hot: 0,
            hot_interval_us: 0,
            refresh_cpu_us: 0,
            rates: [("TCPSynRetrans", 12.0), ("EstabResets", 0.0)]
                .map(|(k, v)| (k.to_string(), v))
                .into(),
            listeners,
            outgoing: Some(outgoing_rows()),
        }
    }

    #[test]
    fn servers_in_trouble_have_lines_and_json_absent_counts_left_out() {
        let r = outgoing_refresh(Vec::new());
        let mut out = Vec::new();
        refresh(&mut out, &r, Format::Lines).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].contains(" TCPSynRetrans=12/s "), "rose: {out}");
        assert!(!lines[0].contains("EstabResets"), "did not: {out}");
        assert_eq!(
            lines[1],
            "2026-11-30T12:00:00.000Z outgoing servers=3 more=1 resets/s=6"
        );
        assert!(
            lines[2]
                .ends_with(" remote 10.200.0.1:9000 syn_sent=30 peak=31 retried=29 retrans_max=3"),
            "ESTABLISHED not read: nothing said of it: {out}"
        );
        assert!(
            lines[3].ends_with(" established=801 unacked=800 unacked_retrans_max=2"),
            "{out}"
        );
        let mut json = Vec::new();
        refresh(&mut json, &r, Format::Json).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let o = &json["outgoing"];
        assert_eq!(o["remotes"][0]["remote"], "10.200.0.1:9000", "{json}");
        assert_eq!(o["remotes"][0]["syn_retried"], 29, "{json}");
        assert!(o["remotes"][0].get("unacked").is_none(), "{json}");
        assert_eq!(o["remotes"][1]["unacked"], 800, "{json}");
        assert_eq!((&o["more"], &o["resets_per_s"]), (&1.into(), &6.0.into()));
    }

    #[test]
    fn the_table_shows_servers_under_the_listeners_within_the_width_and_rows() {
        for width in [60, 80, 120, 200] {
            for listeners in [Vec::new(), rows()] {
                let r = outgoing_refresh(listeners.clone());
                let format = |rows| Format::Tty {
                    color: true,
                    rows,
                    width,
                    utf8: true,
                    history: HistoryShape::minute(
                        Duration::from_secs(1),
                        history_room(width, false),
                    ),
                    wait: false,
                };
                let mut out = Vec::new();
                refresh(&mut out, &r, format(40)).unwrap();
                let out = String::from_utf8(out).unwrap();
                for line in out.lines() {
                    let line = line.trim_start_matches("\x1b[H\x1b[2J");
                    assert!(
                        super::super::visible_len(line) <= width,
                        "{width}: {line}\n{out}"
                    );
                }
                let header = out
                    .lines()
                    .position(|l| l.starts_with("REMOTE"))
                    .expect(&out);
                let next: Vec<&str> = out.lines().skip(header + 1).collect();
                assert!(
                    next[0].starts_with("\x1b[1;31m10.200.0.1:9000 "),
                    "red: {out}"
                );
                assert!(next[1].contains("       0     800"), "{out}");
                assert_eq!(
                    next[3],
                    "... 1 more server(s) not shown (less troubled ones)"
                );
                // Ten rows: the servers get a third beside listeners, and the screen holds.
                let mut out = Vec::new();
                refresh(&mut out, &r, format(10)).unwrap();
                let out = String::from_utf8(out).unwrap();
                assert!(out.lines().count() <= 10, "{out}");
                assert!(out.contains("REMOTE"), "{out}");
            }
        }
    }

    #[test]
    fn the_summary_names_the_servers_seen_in_trouble() {
        use crate::model::{Outgoing, Remote};
        let mut t = crate::watch::Tracker::default();
        t.observe_outgoing(&Outgoing {
            remotes: vec![Remote {
                syn_sent: 30,
                syn_retried: 30,
                syn_retrans_max: 3,
                ..Remote::new("10.200.0.1:9000".parse().unwrap())
            }],
            ..Outgoing::default()
        });
        let mut out = Vec::new();
        summary(
            &mut out,
            &t.summary(1, Duration::from_secs(1)),
            Format::Lines,
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("\n  server 10.200.0.1:9000: peak SYN_SENT 30, a SYN sent again up to 3 time(s), peak unacknowledged 0\n"),
            "{out}"
        );
    }

    #[test]
    fn the_summary_names_the_longest_wait() {
        let listener = |local: &str, peak, longest_wait_ms| ListenerSummary {
            local: local.parse::<SocketAddr>().unwrap().into(),
            inode: 7,
            send_q: 4096,
            peak,
            peak_time: "2026-11-30T12:00:01.000Z".into(),
            drops: Some(0),
            longest_wait_ms,
            longest_wait_at_least: false,
        };
        let s = Summary {
            refreshes: 3,
            samples: 30,
            elapsed_ms: 3_000,
            listeners: vec![
                listener("127.0.0.1:8100", 0, Some(12_345)),
                listener("127.0.0.1:8200", 0, Some(0)),
                listener("127.0.0.1:8300", 2, None),
                ListenerSummary {
                    longest_wait_at_least: true,
                    ..listener("127.0.0.1:8400", 3, Some(1_250))
                },
            ],
            ..Summary::default()
        };
        let mut out = Vec::new();
        summary(&mut out, &s, Format::Lines).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("  127.0.0.1:8100 (inode 7): peak Recv-Q 0 of 4097 at 2026-11-30T12:00:01.000Z, drops 0, longest wait 12s\n"),
            "{out}"
        );
        assert!(out.contains("  127.0.0.1:8300 (inode 7): peak Recv-Q 2 of 4097 at 2026-11-30T12:00:01.000Z, drops 0\n"), "{out}");
        assert!(
            out.contains(" drops 0, longest wait at least 1.2s\n"),
            "{out}"
        );
        assert!(out.contains("  1 listener(s) stayed empty"), "{out}");
    }
}
