//! The timeline's charts, one under the other: per listener its accept queue against the
//! ceiling B+1, its drops per column and, where it was read, its clients' oldest wait; then the
//! namespace's counters as rates; with `lab --veth`, the clients' connections to the server
//! above them all. Pixels and colours; the words come from `words`.

use std::io;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    Area, COLUMNS, DROPS_H, GREY, LEFT, QUEUE_COLOR, QUEUE_H, RATES_H, REMOTE_H, RIGHT, WAIT_H,
    fail, text, words,
};
use crate::doctor::wait::WAIT_WARNING_MS;
use crate::plot::{Axis, Column, Drops, ListenerPlot, RatePlot, RemotePlot, Timeline, WaitPlot};

const CAPACITY_COLOR: RGBColor = RGBColor(200, 30, 30);
const DROPS_COLOR: RGBColor = RGBColor(200, 30, 30);
const SYN_COLOR: RGBColor = RGBColor(230, 140, 0);
/// The wait after accept(); the wait in the accept queue is the queue's colour.
const AFTER_ACCEPT_COLOR: RGBColor = RGBColor(120, 60, 170);
const NOTICE_COLOR: RGBColor = RGBColor(230, 140, 0);
const RATE_COLORS: [RGBColor; 3] = [
    RGBColor(200, 30, 30),
    RGBColor(120, 60, 170),
    RGBColor(0, 140, 120),
];
/// Narrowest bar drawn, in pixels: a one-column burst stays visible.
const MIN_BAR_PX: f64 = 3.0;

/// A chart with a time axis and a value axis, both in f64.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart of connection counts over time, its mesh drawn: the queue's and the clients'.
fn counts_chart<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    end_s: f64,
    top: f64,
) -> io::Result<Chart<'a, 'b>> {
    let mut chart = ChartBuilder::on(area)
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
        .y_desc(words::QUEUE_AXIS)
        .x_label_formatter(&|x| words::time_label(*x, end_s))
        .y_label_formatter(&|y| words::amount(*y, top))
        .draw()
        .map_err(fail)?;
    Ok(chart)
}

/// Every chart of the timeline, from the top of `area`; the clients' side first when given.
pub(super) fn draw(area: &Area, t: &Timeline, clients: Option<&RemotePlot>) -> io::Result<()> {
    let end_s = seconds(t.axis.span_us);
    let mut rest = area.clone();
    if let Some(r) = clients {
        let (remote_area, below) = rest.split_vertically(REMOTE_H);
        rest = below;
        remote(&remote_area, r, end_s)?;
    }
    for l in &t.listeners {
        let (queue_area, below) = rest.split_vertically(QUEUE_H);
        let (drops_area, below) = below.split_vertically(DROPS_H);
        rest = below;
        queue(&queue_area, l, end_s)?;
        drops(&drops_area, l, &t.axis, end_s)?;
        if let Some(w) = &l.wait {
            let (wait_area, below) = rest.split_vertically(WAIT_H);
            rest = below;
            wait(&wait_area, w, end_s)?;
        }
    }
    if !t.rates.is_empty() {
        let (rates_area, _) = rest.split_vertically(RATES_H);
        rates(&rates_area, &t.rates, &t.axis, end_s)?;
    }
    Ok(())
}

fn seconds(t_us: u64) -> f64 {
    t_us as f64 / 1e6
}

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

/// A listener's queue against its ceiling, with SYN_RECV where counted and the peak marked.
fn queue(area: &Area, l: &ListenerPlot, end_s: f64) -> io::Result<()> {
    let syn_max = l
        .syn_recv
        .as_ref()
        .map(|s| s.iter().map(|c| c.max).max().unwrap_or(0))
        .unwrap_or(0);
    // Head room above B+1 for the legend, so it never hides the ceiling.
    let top = (l.capacity.max(l.peak).max(syn_max) as f64 * 1.7).max(4.0);
    let mut chart = counts_chart(area, &words::queue_caption(l), end_s, top)?;
    let cap = l.capacity as f64;
    chart
        .draw_series(LineSeries::new(
            [(0.0, cap), (end_s, cap)],
            CAPACITY_COLOR.stroke_width(2),
        ))
        .map_err(fail)?
        .label(words::capacity_legend(l))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], CAPACITY_COLOR.stroke_width(2)));
    if let Some(syn) = &l.syn_recv {
        chart
            .draw_series(LineSeries::new(
                steps(syn, end_s),
                SYN_COLOR.stroke_width(1),
            ))
            .map_err(fail)?
            .label(words::SYN_RECV_LEGEND)
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], SYN_COLOR));
    }
    chart
        .draw_series(LineSeries::new(
            steps(&l.queue, end_s),
            QUEUE_COLOR.stroke_width(2),
        ))
        .map_err(fail)?
        .label(words::QUEUE_LEGEND)
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], QUEUE_COLOR.stroke_width(2)));
    peak(&mut chart, l, top, end_s)?;
    legend(&mut chart)
}

/// The highest point of the queue, and what it was.
fn peak<'a: 'b, 'b>(
    chart: &mut Chart<'b, 'a>,
    l: &ListenerPlot,
    top: f64,
    end_s: f64,
) -> io::Result<()> {
    let peak = (seconds(l.peak_t_us), l.peak as f64);
    let label_at = (peak.0, peak.1 + top * 0.03);
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
            words::peak(l, peak.0),
            label_at,
            ("sans-serif", 15)
                .into_font()
                .color(&QUEUE_COLOR)
                .pos(anchor),
        )])
        .map_err(fail)?;
    Ok(())
}

/// A listener's drops per column, or why there are none to draw.
fn drops(area: &Area, l: &ListenerPlot, axis: &Axis, end_s: f64) -> io::Result<()> {
    let (bars, total) = match &l.drops {
        Drops::Counted { per_column, window } => (per_column, *window),
        Drops::Unreported => {
            return text(
                area,
                words::DROPS_UNKNOWN,
                (LEFT as i32 + 10, 40),
                15,
                &GREY,
            );
        }
        Drops::NotCounted => {
            for (i, line) in words::DROPS_NOT_COUNTED.iter().enumerate() {
                text(
                    area,
                    line,
                    (LEFT as i32 + 10, 30 + 20 * i as i32),
                    15,
                    &GREY,
                )?;
            }
            return Ok(());
        }
    };
    let column_ms = axis.column_us() / 1000.0;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64 * 1.15;
    let mut chart = ChartBuilder::on(area)
        .margin_right(RIGHT)
        .x_label_area_size(26)
        .y_label_area_size(LEFT)
        .build_cartesian_2d(0f64..end_s, 0f64..max)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .y_labels(3)
        .y_desc(words::drops_axis(column_ms))
        .x_label_formatter(&|x| words::time_label(*x, end_s))
        .y_label_formatter(&|y| words::amount(*y, max))
        .draw()
        .map_err(fail)?;
    let width_s = (column_ms / 1000.0).max(MIN_BAR_PX * end_s / COLUMNS as f64);
    chart
        .draw_series(bars.iter().map(|&(t_us, n)| {
            let x = seconds(t_us);
            Rectangle::new([(x, 0.0), (x + width_s, n as f64)], DROPS_COLOR.filled())
        }))
        .map_err(fail)?;
    let note = words::drops_note(total);
    text(area, &note, (LEFT as i32 + 10, 4), 14, &DROPS_COLOR)
}

/// A listener's clients' oldest wait per place, on a scale of its own in seconds, with the
/// wait clients notice (doctor's warning) marked when the scale reaches it.
fn wait(area: &Area, w: &WaitPlot, end_s: f64) -> io::Result<()> {
    let notice_s = f64::from(WAIT_WARNING_MS) / 1000.0;
    // Head room above the longest wait for the legend, so it never hides the line's end.
    let top = (w.longest_s * 2.2).max(notice_s * 0.5);
    let mut chart = ChartBuilder::on(area)
        .margin_right(RIGHT)
        .margin_top(22)
        .x_label_area_size(26)
        .y_label_area_size(LEFT)
        .build_cartesian_2d(0f64..end_s, 0f64..top)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .y_labels(4)
        .y_desc(words::WAIT_AXIS)
        .x_label_formatter(&|x| words::time_label(*x, end_s))
        .y_label_formatter(&|y| words::amount(*y, top))
        .draw()
        .map_err(fail)?;
    text(area, &words::wait_note(w), (LEFT as i32 + 10, 4), 14, &GREY)?;
    if w.longest_s == 0.0 {
        return Ok(());
    }
    if notice_s <= top {
        chart
            .draw_series(LineSeries::new(
                [(0.0, notice_s), (end_s, notice_s)],
                NOTICE_COLOR.stroke_width(1),
            ))
            .map_err(fail)?
            .label(words::wait_notice_legend(WAIT_WARNING_MS))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], NOTICE_COLOR));
    }
    let places = [
        (
            &w.accept_queue,
            QUEUE_COLOR,
            words::accept_queue_wait_legend(w),
        ),
        (
            &w.after_accept,
            AFTER_ACCEPT_COLOR,
            words::AFTER_ACCEPT_WAIT_LEGEND,
        ),
    ];
    // A place where nobody waited draws nothing: a line along zero would hide the other.
    for (cols, color, label) in places {
        if cols.iter().all(|c| c.max == 0.0) {
            continue;
        }
        chart
            .draw_series(LineSeries::new(steps(cols, end_s), color.stroke_width(2)))
            .map_err(fail)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    legend(&mut chart)
}

/// `lab --veth`: the clients' namespace's connections to the server, on the server's time
/// axis, so a SYN dropped at the full queue below shows here as a connect waiting, resent.
pub(super) fn remote(area: &Area, r: &RemotePlot, end_s: f64) -> io::Result<()> {
    let top = (r.peak as f64 * 1.7).max(4.0);
    let mut chart = counts_chart(area, &words::remote_caption(r), end_s, top)?;
    let series = [
        (&r.syn_sent, SYN_COLOR, 2, words::SYN_SENT_LEGEND),
        (&r.syn_retried, CAPACITY_COLOR, 1, words::SYN_RETRIED_LEGEND),
        (&r.unacked, AFTER_ACCEPT_COLOR, 2, words::UNACKED_LEGEND),
    ];
    for (cols, color, width, label) in series {
        chart
            .draw_series(LineSeries::new(
                steps(cols, end_s),
                color.stroke_width(width),
            ))
            .map_err(fail)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 18, y)], color.stroke_width(width))
            });
    }
    text(
        area,
        &words::remote_verdict(r),
        (LEFT as i32 + 10, 26),
        14,
        &GREY,
    )?;
    legend(&mut chart)
}

/// The namespace's counters as rates: spikes along zero, one per column that rose.
fn rates(area: &Area, rates: &[RatePlot], axis: &Axis, end_s: f64) -> io::Result<()> {
    let top = rates
        .iter()
        .flat_map(|r| r.per_s.iter().map(|c| c.1))
        .fold(1.0, f64::max)
        * 1.2;
    let bar_s = (axis.column_us() / 1e6).max(MIN_BAR_PX * end_s / COLUMNS as f64);
    let mut chart = ChartBuilder::on(area)
        .margin_right(RIGHT)
        .margin_top(6)
        .caption(words::RATES_CAPTION, ("sans-serif", 17))
        .x_label_area_size(40)
        .y_label_area_size(LEFT)
        .build_cartesian_2d(0f64..end_s, 0f64..top)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .y_desc(words::RATES_AXIS)
        .x_desc(words::TIME_AXIS)
        .x_label_formatter(&|x| words::time_label(*x, end_s))
        .y_label_formatter(&|y| words::amount(*y, top))
        .draw()
        .map_err(fail)?;
    // Thinner each: counters that rose together (ListenOverflows and cookies) stay apart.
    for ((r, color), width) in rates.iter().zip(RATE_COLORS).zip([6, 3, 1]) {
        chart
            .draw_series(LineSeries::new(
                spikes(&r.per_s, bar_s, end_s),
                color.stroke_width(width),
            ))
            .map_err(fail)?
            .label(words::rate_legend(r))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    legend(&mut chart)
}

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

/// A step path through downsampled columns: at each column, up to its maximum, then to the
/// value it ended on, which holds until the next column.
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
