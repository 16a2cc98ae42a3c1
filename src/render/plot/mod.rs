//! A timeline (`plot::Timeline`) and a lab run's clients (`plot::Clients`) as one SVG, drawn
//! with plotters' SVG backend. What to draw, downsampled, was decided in `plot`, which holds
//! numbers and typed facts only; this module owns the rest of the picture: the page layout
//! and the colours here, the charts in `charts` and `clients`, and every word in `words`.
//! Text is written as SVG `<text>` in the viewer's sans-serif font: plotters lays it out with
//! its built-in estimate (no font file is read), and the picture references nothing outside
//! itself.

mod charts;
mod clients;
mod words;

use std::io::{self, Write};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::doctor::Severity;
use crate::lab::LabReport;
use crate::plot::{Clients, RemotePlot, Timeline};

/// The picture's width in pixels; the plot area is what remains after the label areas.
pub const WIDTH: u32 = 1000;
/// Left label area (the value axis) and right margin of every chart, in pixels.
const LEFT: u32 = 64;
const RIGHT: u32 = 24;
/// Pixel columns of a plot area: the number of buckets `plot::timeline` cuts a series into.
pub const COLUMNS: usize = (WIDTH - LEFT - RIGHT) as usize;

const TITLE_H: u32 = 86;
const QUEUE_H: u32 = 230;
const DROPS_H: u32 = 120;
/// The clients' wait lane, for a listener whose wait was read.
const WAIT_H: u32 = 160;
const RATES_H: u32 = 180;
const MESSAGE_LINE_H: u32 = 24;
const CLIENTS_H: u32 = 300;
/// `lab --veth`: the clients' namespace's connections to the server.
const REMOTE_H: u32 = 230;
const BOTTOM_H: u32 = 34;

/// The queue, and the latency histogram's bars.
const QUEUE_COLOR: RGBColor = RGBColor(31, 94, 181);
const GREY: RGBColor = RGBColor(90, 90, 90);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The timeline of a snapshot, as SVG.
pub fn timeline(w: &mut dyn Write, t: &Timeline) -> io::Result<()> {
    let svg = svg(t, None, None)?;
    w.write_all(svg.as_bytes())
}

/// A lab run: the clients' side on top, then the server's timeline.
/// With `--veth`, the clients' namespace's connections (`remote`) sit above the server's.
pub(crate) fn lab(
    w: &mut dyn Write,
    t: &Timeline,
    c: &Clients,
    remote: Option<&RemotePlot>,
    r: &LabReport,
) -> io::Result<()> {
    let svg = svg(t, Some((c, r)), remote)?;
    w.write_all(svg.as_bytes())
}

fn fail<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(format!("drawing the plot: {e}"))
}

fn height(t: &Timeline, said: Option<&[String]>, lab: bool, remote: bool) -> u32 {
    let body = match said {
        Some(lines) => MESSAGE_LINE_H * (lines.len() as u32 + 2),
        None => {
            t.listeners
                .iter()
                .map(|l| QUEUE_H + DROPS_H + if l.wait.is_some() { WAIT_H } else { 0 })
                .sum::<u32>()
                + if t.rates.is_empty() { 0 } else { RATES_H }
                + if remote { REMOTE_H } else { 0 }
        }
    };
    TITLE_H + body + if lab { CLIENTS_H } else { 0 } + BOTTOM_H
}

fn svg(
    t: &Timeline,
    lab: Option<(&Clients, &LabReport)>,
    remote: Option<&RemotePlot>,
) -> io::Result<String> {
    let said = words::instead(t);
    let mut out = String::new();
    {
        let size = (
            WIDTH,
            height(t, said.as_deref(), lab.is_some(), remote.is_some()),
        );
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        let (top, rest) = root.split_vertically(TITLE_H);
        heading(&top, t, lab.map(|(_, r)| r))?;
        let rest = match lab {
            Some((c, _)) => {
                let (upper, lower) = rest.split_vertically(CLIENTS_H);
                clients::draw(&upper, c)?;
                lower
            }
            None => rest,
        };
        match &said {
            Some(lines) => message(&rest, lines)?,
            None => charts::draw(&rest, t, remote)?,
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

/// Three lines: what is drawn, the recording, doctor's verdict in its severity's colour.
fn heading(area: &Area, t: &Timeline, lab: Option<&LabReport>) -> io::Result<()> {
    text(area, &words::title(t, lab), (12, 10), 22, &BLACK)?;
    text(area, &words::subtitle(&t.recording), (12, 38), 15, &GREY)?;
    let color = match t.verdict {
        Severity::Ok => RGBColor(20, 130, 40),
        Severity::Warning => RGBColor(190, 120, 0),
        Severity::Critical => RGBColor(190, 20, 20),
    };
    text(area, &words::verdict(t), (12, 60), 16, &color)
}

/// The sentences that replace the axes, in a frame.
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
