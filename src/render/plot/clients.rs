//! The clients' side of a lab picture: how many clients ended which way, as bars, and how long
//! their connects took, as a histogram on a log axis. Pixels and colours; the words come from
//! `words`.

use std::io;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Area, CLIENTS_H, GREY, QUEUE_COLOR, RIGHT, fail, text, words};
use crate::lab::Outcome;
use crate::plot::Clients;

/// Outcomes on the left, connect latency on the right.
pub(super) fn draw(area: &Area, c: &Clients) -> io::Result<()> {
    let (left, right) = area.split_horizontally(340);
    outcomes(&left, c)?;
    latency(&right, c)
}

fn outcome_color(o: Outcome) -> RGBColor {
    match o {
        Outcome::Served => RGBColor(30, 140, 60),
        Outcome::Reset => RGBColor(200, 30, 30),
        Outcome::ResetAfterReply => RGBColor(150, 20, 60),
        Outcome::ConnectTimeout => RGBColor(230, 120, 0),
        Outcome::ReplyTimeout => RGBColor(120, 60, 170),
        Outcome::Refused => RGBColor(120, 120, 120),
        Outcome::Eagain => RGBColor(200, 90, 140),
        Outcome::Failed => RGBColor(40, 40, 40),
    }
}

/// Outcome classes, as horizontal bars with their counts.
fn outcomes(area: &Area, c: &Clients) -> io::Result<()> {
    let n = c.outcomes.len().max(1);
    let most = c.outcomes.iter().map(|o| o.1).max().unwrap_or(0).max(1) as f64;
    text(area, words::OUTCOMES_CAPTION, (12, 6), 17, &BLACK)?;
    let row_h = ((CLIENTS_H - 60) / n as u32).min(36) as i32;
    let bar_x = 150;
    for (i, &(outcome, count)) in c.outcomes.iter().enumerate() {
        let y = 40 + i as i32 * row_h;
        text(area, words::outcome(outcome), (12, y + 4), 14, &BLACK)?;
        let bar = (count as f64 / most * 150.0).round() as i32;
        area.draw(&Rectangle::new(
            [(bar_x, y), (bar_x + bar.max(1), y + row_h - 8)],
            outcome_color(outcome).filled(),
        ))
        .map_err(fail)?;
        text(
            area,
            &count.to_string(),
            (bar_x + 6 + bar, y + 4),
            14,
            &BLACK,
        )?;
    }
    Ok(())
}

/// Connect latency: a histogram on a log axis, so whole-second SYN retransmits stand out.
fn latency(area: &Area, c: &Clients) -> io::Result<()> {
    let from = c.latency.first().map(|b| b.0).unwrap_or(0.01);
    let to = c.latency.last().map(|b| b.1).unwrap_or(1000.0);
    let top = c.latency.iter().map(|b| b.2).max().unwrap_or(0).max(1) as f64 * 1.2;
    let mut chart = ChartBuilder::on(area)
        .margin_right(RIGHT)
        .margin_top(6)
        .caption(words::latency_caption(c), ("sans-serif", 17))
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((from..to).log_scale(), 0f64..top)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .y_desc(words::LATENCY_COUNT_AXIS)
        .x_desc(words::LATENCY_AXIS)
        .x_label_formatter(&|ms| words::duration(*ms))
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
    if !c.syn_retries {
        return Ok(());
    }
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
                words::SYN_RETRANSMITS,
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
