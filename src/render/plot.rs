//! A timeline (`plot::Timeline`) and a lab run's clients (`plot::Clients`) as one SVG, drawn
//! with plotters' SVG backend. Formats only: what to draw, downsampled, was decided in
//! `plot`. Text is written as SVG `<text>` in the viewer's sans-serif font: plotters lays it
//! out with its built-in estimate (no font file is read), and the picture references nothing
//! outside itself.

use std::io::{self, Write};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::doctor::Severity;
use crate::lab::{LabReport, Outcome};
use crate::plot::{COLUMNS, Clients, Column, LEFT, RIGHT, Timeline, WIDTH};

const TITLE_H: u32 = 86;
const QUEUE_H: u32 = 230;
const DROPS_H: u32 = 120;
const RATES_H: u32 = 180;
const MESSAGE_LINE_H: u32 = 24;
const CLIENTS_H: u32 = 300;
const BOTTOM_H: u32 = 34;

const QUEUE_COLOR: RGBColor = RGBColor(31, 94, 181);
const CAPACITY_COLOR: RGBColor = RGBColor(200, 30, 30);
const DROPS_COLOR: RGBColor = RGBColor(200, 30, 30);
const SYN_COLOR: RGBColor = RGBColor(230, 140, 0);
const RATE_COLORS: [RGBColor; 3] = [
    RGBColor(200, 30, 30),
    RGBColor(120, 60, 170),
    RGBColor(0, 140, 120),
];
/// Narrowest bar drawn, in pixels: a one-column burst stays visible.
const MIN_BAR_PX: f64 = 3.0;
const GREY: RGBColor = RGBColor(90, 90, 90);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A chart with a time axis and a value axis, both in f64.
type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The series' legend, in the upper right corner of a chart, the same on every chart.
fn legend<'a: 'b, 'b>(chart: &mut Chart<'b, 'a>) -> io::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(fail)
}

fn fail<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(format!("drawing the plot: {e}"))
}

/// The timeline of a snapshot, as SVG.
pub fn timeline(w: &mut dyn Write, t: &Timeline) -> io::Result<()> {
    let svg = svg(t, None)?;
    w.write_all(svg.as_bytes())
}

/// A lab run: the clients' side on top, then the server's timeline.
pub(crate) fn lab(w: &mut dyn Write, t: &Timeline, c: &Clients, r: &LabReport) -> io::Result<()> {
    let svg = svg(t, Some((c, r)))?;
    w.write_all(svg.as_bytes())
}

fn height(t: &Timeline, lab: bool) -> u32 {
    let body = match &t.message {
        Some(lines) => MESSAGE_LINE_H * (lines.len() as u32 + 2),
        None => {
            t.listeners.len() as u32 * (QUEUE_H + DROPS_H)
                + if t.rates.is_empty() { 0 } else { RATES_H }
        }
    };
    TITLE_H + body + if lab { CLIENTS_H } else { 0 } + BOTTOM_H
}

fn svg(t: &Timeline, lab: Option<(&Clients, &LabReport)>) -> io::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height(t, lab.is_some())))
            .into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        let (top, rest) = root.split_vertically(TITLE_H);
        title(&top, t, lab.map(|(_, r)| r))?;
        let rest = match lab {
            Some((c, _)) => {
                let (upper, lower) = rest.split_vertically(CLIENTS_H);
                draw_clients(&upper, c)?;
                lower
            }
            None => rest,
        };
        match &t.message {
            Some(lines) => message(&rest, lines)?,
            None => charts(&rest, t)?,
        }
        root.present().map_err(fail)?;
    }
    Ok(out)
}

fn text(area: &Area, s: &str, at: (i32, i32), size: u32, color: &RGBColor) -> io::Result<()> {
    area.draw(&Text::new(
        s.to_string(),
        at,
        ("sans-serif", size).into_font().color(color),
    ))
    .map_err(fail)
}

fn title(area: &Area, t: &Timeline, lab: Option<&LabReport>) -> io::Result<()> {
    let first = match lab {
        None => format!("Accept queue of {}", t.title),
        Some(r) => format!("{}: {}", lab_setup(r), t.title),
    };
    text(area, &first, (12, 10), 22, &BLACK)?;
    text(area, &t.subtitle, (12, 38), 15, &GREY)?;
    let color = match t.verdict {
        Severity::Ok => RGBColor(20, 130, 40),
        Severity::Warning => RGBColor(190, 120, 0),
        Severity::Critical => RGBColor(190, 20, 20),
    };
    let mut verdict = t.verdict_text.clone();
    if t.left_out > 0 {
        verdict.push_str(&format!(
            " · {} more listener(s) not drawn (name them as TARGET)",
            t.left_out
        ));
    }
    text(area, &verdict, (12, 60), 16, &color)
}

fn message(area: &Area, lines: &[String]) -> io::Result<()> {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Rectangle::new(
        [(12, 8), (w as i32 - 12, h as i32 - 8)],
        ShapeStyle::from(&GREY).stroke_width(1),
    ))
    .map_err(fail)?;
    for (i, line) in lines.iter().enumerate() {
        let size = if i == 0 { 18 } else { 15 };
        let y = 22 + i as i32 * MESSAGE_LINE_H as i32;
        text(area, line, (28, y), size, &BLACK)?;
    }
    Ok(())
}

fn seconds(t_us: u64) -> f64 {
    t_us as f64 / 1e6
}

/// A step path through downsampled columns: at each column, up to its maximum, then to the
/// value it ended on, which holds until the next column.
/// A value drawn on a linear axis.
trait Level: Copy {
    fn level(self) -> f64;
}

impl Level for u64 {
    fn level(self) -> f64 {
        self as f64
    }
}

impl Level for f64 {
    fn level(self) -> f64 {
        self
    }
}

fn steps<V: Level>(cols: &[Column<V>], end_s: f64) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = Vec::with_capacity(cols.len() * 3 + 1);
    for c in cols {
        let x = seconds(c.t_us);
        if let Some(&(_, held)) = pts.last() {
            pts.push((x, held));
        }
        pts.push((x, c.max.level()));
        pts.push((x, c.last.level()));
    }
    if let Some(&(_, held)) = pts.last() {
        pts.push((end_s, held));
    }
    pts
}

/// A line along zero that rises to each bar's height for the bar's width.
fn spikes(bars: &[(u64, f64)], width_s: f64, end_s: f64) -> Vec<(f64, f64)> {
    let mut pts = vec![(0.0, 0.0)];
    for &(t_us, v) in bars {
        let x = seconds(t_us);
        pts.extend([(x, 0.0), (x, v), (x + width_s, v), (x + width_s, 0.0)]);
    }
    pts.push((end_s, 0.0));
    pts
}

fn charts(area: &Area, t: &Timeline) -> io::Result<()> {
    let end_s = seconds(t.axis.span_us);
    let mut rest = area.clone();
    for l in &t.listeners {
        let (queue_area, below) = rest.split_vertically(QUEUE_H);
        let (drops_area, below) = below.split_vertically(DROPS_H);
        rest = below;

        // The queue against its ceiling.
        let syn_max = l
            .syn_recv
            .as_ref()
            .map(|s| s.iter().map(|c| c.max).max().unwrap_or(0))
            .unwrap_or(0);
        // Head room above B+1 for the legend, so it never hides the ceiling.
        let top = (l.capacity.max(l.peak).max(syn_max) as f64 * 1.7).max(4.0);
        let caption = match l.findings.is_empty() {
            true => l.label.clone(),
            false => format!("{}: {}", l.label, l.findings.join(", ")),
        };
        let mut chart = ChartBuilder::on(&queue_area)
            .margin_right(RIGHT)
            .margin_top(6)
            .caption(caption, ("sans-serif", 17))
            .x_label_area_size(26)
            .y_label_area_size(LEFT)
            .build_cartesian_2d(0f64..end_s, 0f64..top)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE.mix(0.0))
            .y_desc("connections")
            .x_label_formatter(&|x| time_label(*x, end_s))
            .y_label_formatter(&|y| amount(*y, top))
            .draw()
            .map_err(fail)?;
        let cap = l.capacity as f64;
        chart
            .draw_series(LineSeries::new(
                [(0.0, cap), (end_s, cap)],
                CAPACITY_COLOR.stroke_width(2),
            ))
            .map_err(fail)?
            .label(format!(
                "B+1 = {}: the accept queue is full (B = Send-Q = {})",
                l.capacity, l.backlog
            ))
            .legend(|(x, y)| {
                PathElement::new([(x, y), (x + 18, y)], CAPACITY_COLOR.stroke_width(2))
            });
        if let Some(syn) = &l.syn_recv {
            chart
                .draw_series(LineSeries::new(
                    steps(syn, end_s),
                    SYN_COLOR.stroke_width(1),
                ))
                .map_err(fail)?
                .label("SYN_RECV (half-open handshakes, where counted)")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], SYN_COLOR));
        }
        chart
            .draw_series(LineSeries::new(
                steps(&l.queue, end_s),
                QUEUE_COLOR.stroke_width(2),
            ))
            .map_err(fail)?
            .label("Recv-Q: connections waiting for accept()")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], QUEUE_COLOR.stroke_width(2)));
        let peak = (seconds(l.peak_t_us), l.peak as f64);
        let label_at = (peak.0, peak.1 + top * 0.03);
        let peak_text = format!(
            "peak {} at {:.2} s{}",
            l.peak,
            peak.0,
            if l.full { ": full" } else { "" }
        );
        chart
            .draw_series([Circle::new(peak, 4, QUEUE_COLOR.filled())])
            .map_err(fail)?;
        // The label sits right of the point, or left of it near the right edge.
        let right_side = peak.0 < end_s * 0.7;
        let anchor = if right_side {
            Pos::new(HPos::Left, VPos::Bottom)
        } else {
            Pos::new(HPos::Right, VPos::Bottom)
        };
        chart
            .draw_series([Text::new(
                peak_text,
                label_at,
                ("sans-serif", 15)
                    .into_font()
                    .color(&QUEUE_COLOR)
                    .pos(anchor),
            )])
            .map_err(fail)?;
        legend(&mut chart)?;

        // Drops per column.
        let column_ms = t.axis.column_us() / 1000.0;
        match &l.drops {
            None => text(
                &drops_area,
                "drops unknown: this kernel does not report SK_MEMINFO_DROPS",
                (LEFT as i32 + 10, 40),
                15,
                &GREY,
            )?,
            Some(bars) => {
                let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64 * 1.15;
                let mut chart = ChartBuilder::on(&drops_area)
                    .margin_right(RIGHT)
                    .x_label_area_size(26)
                    .y_label_area_size(LEFT)
                    .build_cartesian_2d(0f64..end_s, 0f64..max)
                    .map_err(fail)?;
                chart
                    .configure_mesh()
                    .light_line_style(WHITE.mix(0.0))
                    .y_labels(3)
                    .y_desc(format!("drops / {}", duration(column_ms)))
                    .x_label_formatter(&|x| time_label(*x, end_s))
                    .y_label_formatter(&|y| amount(*y, max))
                    .draw()
                    .map_err(fail)?;
                let width_s = (column_ms / 1000.0).max(MIN_BAR_PX * end_s / COLUMNS as f64);
                chart
                    .draw_series(bars.iter().map(|&(t_us, n)| {
                        let x = seconds(t_us);
                        Rectangle::new([(x, 0.0), (x + width_s, n as f64)], DROPS_COLOR.filled())
                    }))
                    .map_err(fail)?;
                let total = l.drops_window.unwrap_or(0);
                let note = match total {
                    0 => "no segment dropped at this listener in the window".to_string(),
                    n => format!(
                        "{n} segments dropped at this listener (sk_drops, SYN retransmits included: not clients)"
                    ),
                };
                text(&drops_area, &note, (LEFT as i32 + 10, 4), 14, &DROPS_COLOR)?;
            }
        }
    }
    if !t.rates.is_empty() {
        let (rates_area, _) = rest.split_vertically(RATES_H);
        let top = t
            .rates
            .iter()
            .flat_map(|r| r.per_s.iter().map(|c| c.1))
            .fold(1.0, f64::max)
            * 1.2;
        let bar_s = (t.axis.column_us() / 1e6).max(MIN_BAR_PX * end_s / COLUMNS as f64);
        let mut chart = ChartBuilder::on(&rates_area)
            .margin_right(RIGHT)
            .margin_top(6)
            .caption(
                "The namespace's counters (every listener in it): rises per second",
                ("sans-serif", 17),
            )
            .x_label_area_size(40)
            .y_label_area_size(LEFT)
            .build_cartesian_2d(0f64..end_s, 0f64..top)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE.mix(0.0))
            .y_desc("per second")
            .x_desc("time since the recording started")
            .x_label_formatter(&|x| time_label(*x, end_s))
            .y_label_formatter(&|y| amount(*y, top))
            .draw()
            .map_err(fail)?;
        // Thinner each: counters that rose together (ListenOverflows and cookies) stay apart.
        for ((r, color), width) in t.rates.iter().zip(RATE_COLORS).zip([6, 3, 1]) {
            chart
                .draw_series(LineSeries::new(
                    spikes(&r.per_s, bar_s, end_s),
                    color.stroke_width(width),
                ))
                .map_err(fail)?
                .label(format!("{} (+{} in the window)", r.name, r.total))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart)?;
    }
    Ok(())
}

/// `10 ms`, `1.5 ms`, `250 µs`, `2.0 s`.
/// A time-axis label with as many decimals as the window needs: a 35 ms window is not
/// "0.0 s" at every tick.
fn time_label(x: f64, span_s: f64) -> String {
    if span_s >= 10.0 {
        format!("{x:.0} s")
    } else if span_s >= 1.0 {
        format!("{x:.1} s")
    } else if span_s >= 0.01 {
        format!("{:.0} ms", x * 1000.0)
    } else {
        format!("{:.1} ms", x * 1000.0)
    }
}

/// A value-axis label: whole numbers on tall axes, decimals on short ones (where ticks fall
/// between whole numbers), without trailing zeros, so no two ticks read the same.
fn amount(y: f64, top: f64) -> String {
    let decimals = if top >= 20.0 {
        0
    } else if top >= 2.0 {
        1
    } else {
        2
    };
    let text = format!("{y:.decimals$}");
    match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => text,
    }
}

fn duration(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.0} µs", ms * 1000.0)
    }
}

/// The lab's setup, before the listener in the title of a lab's picture.
fn lab_setup(r: &LabReport) -> String {
    let s = &r.settings;
    format!(
        "lab: {} clients, listen({}) → B = {}, {} workers × {} ms",
        s.clients, s.backlog, r.send_q, s.workers, s.work_ms
    )
}

/// The lab's outcome classes as a reader says them.
fn outcome_words(o: Outcome) -> &'static str {
    match o {
        Outcome::ConnectTimeout => "connect timed out",
        Outcome::ReplyTimeout => "connected, no reply",
        other => crate::lab::outcome_name(other),
    }
}

fn outcome_color(o: Outcome) -> RGBColor {
    match o {
        Outcome::Served => RGBColor(30, 140, 60),
        Outcome::Reset => RGBColor(200, 30, 30),
        Outcome::ConnectTimeout => RGBColor(230, 120, 0),
        Outcome::ReplyTimeout => RGBColor(120, 60, 170),
        Outcome::Refused => RGBColor(120, 120, 120),
        Outcome::Failed => RGBColor(40, 40, 40),
    }
}

fn draw_clients(area: &Area, c: &Clients) -> io::Result<()> {
    let (left, right) = area.split_horizontally(340);
    // Outcome classes, as horizontal bars with their counts.
    let n = c.outcomes.len().max(1);
    let most = c.outcomes.iter().map(|o| o.1).max().unwrap_or(0).max(1) as f64;
    text(&left, "What the clients saw", (12, 6), 17, &BLACK)?;
    let row_h = ((CLIENTS_H - 60) / n as u32).min(36) as i32;
    let bar_x = 150;
    for (i, &(outcome, count)) in c.outcomes.iter().enumerate() {
        let y = 40 + i as i32 * row_h;
        text(&left, outcome_words(outcome), (12, y + 4), 14, &BLACK)?;
        let bar = (count as f64 / most * 150.0).round() as i32;
        left.draw(&Rectangle::new(
            [(bar_x, y), (bar_x + bar.max(1), y + row_h - 8)],
            outcome_color(outcome).filled(),
        ))
        .map_err(fail)?;
        text(
            &left,
            &count.to_string(),
            (bar_x + 6 + bar, y + 4),
            14,
            &BLACK,
        )?;
    }

    // Connect latency: a histogram on a log axis, so whole-second SYN retransmits stand out.
    let from = c.latency.first().map(|b| b.0).unwrap_or(0.01);
    let to = c.latency.last().map(|b| b.1).unwrap_or(1000.0);
    let top = c.latency.iter().map(|b| b.2).max().unwrap_or(0).max(1) as f64 * 1.2;
    let mut chart = ChartBuilder::on(&right)
        .margin_right(RIGHT)
        .margin_top(6)
        .caption(
            format!(
                "How long connect() took: {} connected, {} never did",
                c.connected, c.not_connected
            ),
            ("sans-serif", 17),
        )
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((from..to).log_scale(), 0f64..top)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .y_desc("clients")
        .x_desc("connect latency (log scale)")
        .x_label_formatter(&|ms| duration(*ms))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(fail)?;
    chart
        .draw_series(
            c.latency.iter().filter(|b| b.2 > 0).map(|&(lo, hi, n)| {
                Rectangle::new([(lo, 0.0), (hi, n as f64)], QUEUE_COLOR.filled())
            }),
        )
        .map_err(fail)?;
    // A dropped SYN is resent after 1 s, and the next ones 1 s apart on kernels with
    // tcp_syn_linear_timeouts (docs/kernel.md §4), so waits cluster at whole seconds.
    let last_second = (c.timeout_ms.max(c.max_ms) / 1000.0).floor() as u32;
    for s in 1..=last_second.min(8) {
        let x = f64::from(s) * 1000.0;
        chart
            .draw_series(LineSeries::new(
                [(x, 0.0), (x, top)],
                ShapeStyle::from(&GREY.mix(0.6)).stroke_width(1),
            ))
            .map_err(fail)?;
    }
    if to >= 1000.0 {
        chart
            .draw_series([Text::new(
                "SYN dropped, resent after 1 s (then 1 s apart) →",
                (1000.0 * 0.93, top * 0.93),
                ("sans-serif", 13)
                    .into_font()
                    .color(&GREY)
                    .pos(Pos::new(HPos::Right, VPos::Center)),
            )])
            .map_err(fail)?;
    }
    Ok(())
}
