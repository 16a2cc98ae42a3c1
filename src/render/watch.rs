//! `watch` into a writer: a table redrawn in place on a terminal, one line per listener per
//! refresh otherwise, or JSON lines; then the summary.

use std::io::Write;

use crate::catalogue::{RESET_RATES, WATCH_RATES, short};
use crate::model::QueuePeak;
use crate::watch::{HistoryShape, ListenerSummary, MIN_SLOTS, Point, Refresh, Row, Summary, View};

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
}

impl View for Printer<'_> {
    fn begin(&mut self) -> std::io::Result<()> {
        match self.format {
            Format::Tty { .. } => write!(self.out, "\x1b[?25l"), // hide the cursor while redrawing
            _ => Ok(()),
        }
    }

    fn refresh(&mut self, r: &Refresh) -> std::io::Result<()> {
        refresh(self.out, r, self.format)
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
        Format::Json => {
            serde_json::to_writer(&mut *out, r)?;
            writeln!(out)?;
            out.flush()
        }
        Format::Lines => lines(out, r),
        Format::Tty {
            color,
            rows,
            width,
            utf8,
            history,
        } => {
            let table = Table {
                color,
                utf8,
                history,
                lay: Layout::new(width, history),
            };
            table.draw(out, r, rows, width)
        }
    }
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
            "{} {} recv_q={} peak={} send_q={} fill={}% drops/s={} syn_recv={}{}{}",
            r.time,
            l.local,
            l.recv_q,
            l.peak,
            l.send_q,
            l.fill_pct,
            drops_cell(l),
            opt(l.syn_recv),
            l.process
                .as_ref()
                // Quoted: the label has spaces ("nginx, pids 12-15").
                .map(|p| format!(" process={p:?}"))
                .unwrap_or_default(),
            l.event.map(|e| format!(" {e}")).unwrap_or_default(),
        )?;
    }
    out.flush()
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
        let room = rows.saturating_sub(3 + header_lines).max(1);
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
        out.flush()
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
        writeln!(
            out,
            "{:<lw$}{} {:>7} {:>7} {:>7} {:>6} {:>8} {:>8}{last}",
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
        let line = format!(
            "{:<lw$}{} {:>7} {:>7} {:>7} {:>5}% {:>8} {:>8}",
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
        let hot = l.drops_per_s.is_some_and(|d| d > 0.0) || q.full();
        if self.color && hot {
            write!(out, "\x1b[1;31m{line}\x1b[0m")?;
        } else if self.color && q.nearly_full() {
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

/// Columns the sparkline may take on a row `width` wide: what the numbers and a listener
/// column of LISTENER_MIN leave. The options shape the history with it.
pub(crate) fn history_room(width: usize) -> usize {
    width.saturating_sub(NUMBERS + 1 + LISTENER_MIN)
}

/// How a terminal row `width` wide is shared. The numbers keep their columns; then the
/// listener gets LISTENER_MIN, the sparkline what it needs of the rest, and the listener
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
}

impl Layout {
    fn new(width: usize, history: HistoryShape) -> Layout {
        let slots = history.slots.min(history_room(width));
        let slots = if slots < MIN_SLOTS { 0 } else { slots };
        let last = slots.max(EVENT);
        let avail = width.saturating_sub(NUMBERS + 1 + last);
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
    parts.extend(RESET_RATES.iter().filter_map(|k| {
        let name = short(k);
        let v = r.rates.get(name).filter(|v| **v >= 0.5)?;
        Some(format!("{name}{sep}{v:.0}/s"))
    }));
    parts.push(format!("sampling{sep}{}", period(r.sample_interval_us)));
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
        .filter(|l| l.peak > 0 || l.drops.is_some_and(|d| d > 0))
        .collect();
    for l in &busy {
        writeln!(
            out,
            "  {} (inode {}): peak Recv-Q {} of {} at {}, drops {}",
            l.local,
            l.inode,
            l.peak,
            l.send_q.saturating_add(1),
            l.peak_time,
            match (l.local.counts_drops(), l.drops) {
                (false, _) => format!("{NOT_COUNTED} (no counter for Unix listeners)"),
                (true, Some(d)) => d.to_string(),
                (true, None) => "unknown".into(),
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
    let resets: Vec<&str> = RESET_RATES.iter().map(|k| short(k)).collect();
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
        Some(w) => writeln!(out, "  worst moment: {}: {}", w.time, w.what),
        None => writeln!(
            out,
            "  worst moment: none, no listener filled up or dropped"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;

    fn q(peak: u32, backlog: u32) -> QueuePeak {
        QueuePeak { peak, backlog }
    }

    #[test]
    fn resets_show_in_the_header_only_when_they_rose() {
        let mut r = Refresh {
            time: "2026-11-30T12:00:00.000Z".into(),
            elapsed_ms: 0,
            sample_interval_us: 10_000,
            rates: [("ListenDrops", 0.0), ("TCPAbortOnClose", 0.0)]
                .map(|(k, v)| (k.to_string(), v))
                .into(),
            listeners: Vec::new(),
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
            send_q: 4_096,
            fill_pct: 97_000,
            drops_per_s: Some(1_234_567.0),
            drops_delta: Some(1),
            syn_recv: Some(99_999_999),
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
            rates: Default::default(),
            listeners: rows()[4..].to_vec(),
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
        let r = Refresh {
            time: "2026-11-30T12:00:00.000Z".into(),
            elapsed_ms: 0,
            sample_interval_us: 10_000,
            rates: WATCH_RATES
                .iter()
                .map(|k| (short(k).to_string(), 123_456.0))
                .collect(),
            listeners: rows(),
        };
        let history = HistoryShape::minute(Duration::from_secs(1), history_room(width));
        let format = Format::Tty {
            color,
            rows: 40,
            width,
            utf8,
            history,
        };
        let mut out = Vec::new();
        refresh(&mut out, &r, format).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_never_exceed_the_width() {
        for width in [60, 70, 80, 100, 120, 160, 200] {
            for (utf8, color) in [(true, true), (true, false), (false, true), (false, false)] {
                let out = render(width, utf8, color);
                for line in out.lines() {
                    let line = line.trim_start_matches("\x1b[H\x1b[2J");
                    assert!(
                        super::super::visible_len(line) <= width,
                        "width {width}, utf8 {utf8}, color {color}: {} columns\n{line}\n{out}",
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
            rates: Default::default(),
            listeners: rows()[..1].to_vec(),
        };
        let mut out = Vec::new();
        let format = Format::Tty {
            color: false,
            rows: 40,
            width: 120,
            utf8: true,
            history: HistoryShape::default(),
        };
        refresh(&mut out, &r, format).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("LAST") && !out.contains('▁'), "{out}");
    }
}
