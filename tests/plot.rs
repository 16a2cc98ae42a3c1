//! `backlogctl plot`: the picture's data (the plot model) from recorded fixtures, the SVG it
//! becomes (well-formed, self-contained, small, the numbers drawn equal to the data), its
//! rendering by librsvg, the errors, and the downsampling rule as a property; the README's
//! picture is current.
//!
//! `rsvg_renders_every_fixture` needs rsvg-convert (Debian package librsvg2-bin), and
//! `a_unix_listener_has_no_drops_lane` and `clients_left_waiting_get_a_wait_lane` root (they
//! record real listeners in a private network namespace); skipped with the reason without
//! them, failed under CI=true. Snapshots without wait readings get no wait lane; the recorded
//! waits are drawn at their place.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use backlogctl::catalogue::LISTEN_OVERFLOWS;
use backlogctl::doctor::remedy::Where;
use backlogctl::doctor::{RuleId, Severity};
use backlogctl::model::{Listener, Sample, Snapshot};
use backlogctl::plot::{self, Axis, Instead};
use backlogctl::render::plot::{COLUMNS, WIDTH};
use backlogctl::{pipeline, render, store};
use common::{Scratch, fixture, in_netns, need, run_bin, unix_connect, unix_listener};

use proptest::prelude::*;

const BURST: &str = "snapshots/6.18-slow-acceptor-backlog16-burst150.json";

fn model_of(path: &Path) -> (Snapshot, plot::Timeline) {
    let d = pipeline::from_file(path, &Default::default()).unwrap();
    let t = plot::timeline(&d.snapshot, &d.report, COLUMNS);
    (d.snapshot, t)
}

fn svg_of(t: &plot::Timeline) -> String {
    let mut out = Vec::new();
    render::plot::timeline(&mut out, t).unwrap();
    String::from_utf8(out).unwrap()
}

/// The text of every `<text>` element.
fn texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("well-formed XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect()
}

/// Nothing outside the file: no link, image, font or stylesheet by reference.
fn assert_self_contained(svg: &str) {
    for bad in ["href", "url(", "<image", "@import", "@font-face"] {
        assert!(!svg.contains(bad), "external reference {bad:?} in the SVG");
    }
}

#[test]
fn burst_fixture_draws_the_ceiling_and_the_recorded_peak() {
    let (snap, t) = model_of(&fixture(BURST));
    // The recording's own numbers, read straight from the file.
    let raw = store::load(&fixture(BURST)).unwrap();
    let all: Vec<&Listener> = raw.samples.iter().flat_map(|s| &s.listeners).collect();
    let peak = all.iter().map(|l| l.recv_q).max().unwrap();
    let send_q = all.last().unwrap().send_q;
    assert_eq!(t.instead, None, "a burst is drawn, not described");
    let l = &t.listeners[0];
    assert_eq!(l.capacity, u64::from(send_q) + 1, "the B+1 line");
    assert_eq!(l.capacity, 17);
    assert_eq!(l.peak, u64::from(peak));
    assert!(l.full);
    assert_eq!(
        l.queue.iter().map(|c| c.max).max(),
        Some(u64::from(peak)),
        "the drawn series reaches the peak"
    );
    let first = raw.samples[0].listeners[0].drops.unwrap();
    let last = raw.samples.last().unwrap().listeners[0].drops.unwrap();
    assert_eq!(l.drops.window(), Some(u64::from(last - first)));
    let plot::Drops::Counted { per_column, .. } = &l.drops else {
        panic!("drops counted: {:?}", l.drops)
    };
    let drawn: u64 = per_column.iter().map(|b| b.1).sum();
    assert_eq!(drawn, u64::from(last - first), "drop bars add up");
    let overflows = t
        .rates
        .iter()
        .find(|r| r.counter == LISTEN_OVERFLOWS)
        .unwrap();
    assert_eq!(Some(overflows.total), snap.counter_delta(LISTEN_OVERFLOWS));
    assert_eq!(t.verdict, Severity::Critical);
    assert!(t.problems.contains(&RuleId::AcceptQueueOverflow));
    assert!(
        t.recording
            .kernel
            .as_deref()
            .is_some_and(|k| k.contains("6.18.44"))
    );
    assert_eq!(t.recording.netns, Where::Named("bplot".into()));

    // The numbers drawn are the data.
    let svg = svg_of(&t);
    let texts = texts(&svg);
    assert!(
        texts.iter().any(|s| s.starts_with("B+1 = 17:")),
        "B+1 label: {texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|s| s.starts_with(&format!("peak {peak} at "))),
        "peak label: {texts:?}"
    );
    assert!(texts.iter().any(|s| s.contains("python3, pid 13077")));
    assert!(texts.iter().any(|s| s.contains("doctor: CRITICAL")));
    assert!(
        texts
            .iter()
            .any(|s| s.starts_with("doctor: CRITICAL") && s.contains("accept-queue-overflow")),
        "verdict line: {texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|s| s.contains("6.18.44") && s.contains("bplot")),
        "subtitle: {texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|s| s.starts_with(&format!("ListenOverflows (+{} ", overflows.total))),
        "rates legend: {texts:?}"
    );
    assert_self_contained(&svg);
}

#[test]
fn a_quiet_window_says_so_instead_of_drawing_empty_axes() {
    let (_, t) = model_of(&fixture("snapshots/6.18-healthy-backlog511-idle.json"));
    assert!(
        matches!(t.instead, Some(Instead::Quiet { .. })),
        "{:?}",
        t.instead
    );
    let svg = svg_of(&t);
    assert!(
        texts(&svg)
            .iter()
            .any(|s| s.starts_with("Nothing happened"))
    );
}

#[test]
fn a_single_sample_is_said_not_drawn_and_no_listener_neither() {
    let scratch = Scratch::new("plot-one-sample");
    // A real recording cut to its first sample, as `snapshot --window 0` would have stored.
    let mut snap = store::load(&fixture(BURST)).unwrap();
    snap.samples.truncate(1);
    let path = scratch.path("one-sample.json");
    std::fs::write(&path, serde_json::to_string(&snap).unwrap()).unwrap();
    let (code, out, err) = run_bin(&["plot", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let texts = texts(&out);
    assert!(
        texts.iter().any(|s| s.starts_with("One sample")),
        "{texts:?}"
    );

    let (_, t) = model_of(&fixture("snapshots/6.18-nothing-on-8200.json"));
    let Some(Instead::NoListener { unmatched }) = &t.instead else {
        panic!("no listener: {:?}", t.instead)
    };
    assert!(
        unmatched.iter().any(|u| u.to_string() == ":8200"),
        "{unmatched:?}"
    );
    let said = crate::texts(&svg_of(&t));
    assert!(said.iter().any(|l| l.contains(":8200")), "{said:?}");
}

#[test]
fn named_targets_narrow_the_picture() {
    let f = fixture("snapshots/6.18-reuseport-backlog2-and-64.json");
    let (code, out, err) = run_bin(&["plot", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    texts(&out);
    let (code, out, err) = run_bin(&["plot", f.to_str().unwrap(), ":9"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        texts(&out)
            .iter()
            .any(|s| s.contains("No listener in scope"))
    );
}

#[test]
fn errors_are_one_line_and_exit_3() {
    let scratch = Scratch::new("plot-errors");
    let missing = scratch.path("missing.json");
    let (code, out, err) = run_bin(&["plot", missing.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: cannot read"), "{err}");

    let corrupt = scratch.path("corrupt.json");
    std::fs::write(&corrupt, "{\"schema_version\": 1, \"samples\": [").unwrap();
    let (code, _, err) = run_bin(&["plot", corrupt.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(err.starts_with("error: cannot use snapshot"), "{err}");

    // An unwritable output fails before anything is read, and leaves no file behind.
    let dir = scratch.path("no-such-dir");
    let into = dir.join("p.svg");
    let (code, _, err) = run_bin(&[
        "plot",
        fixture(BURST).to_str().unwrap(),
        "-o",
        into.to_str().unwrap(),
    ]);
    assert_eq!(code, 3);
    assert!(err.starts_with("error: cannot write"), "{err}");
    assert!(!dir.exists());

    let (code, _, err) = run_bin(&["--netns", "x", "plot", fixture(BURST).to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");

    // The picture never replaces the recording it is drawn from.
    let copy = scratch.path("same.json");
    std::fs::copy(fixture(BURST), &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let c = copy.to_str().unwrap();
    let (code, _, err) = run_bin(&["plot", c, "-o", c]);
    assert_eq!(code, 3);
    assert!(err.contains("is the snapshot itself"), "{err}");
    assert_eq!(std::fs::read(&copy).unwrap(), before);
}

/// A process name is anyone's to set: control characters (a terminal escape, bytes XML
/// forbids) in a recording come out printable, and the SVG stays well-formed.
#[test]
fn control_characters_in_a_process_name_do_not_break_the_svg() {
    let scratch = Scratch::new("plot-control");
    let text = std::fs::read_to_string(fixture(BURST)).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let owners = v["owners"].as_array_mut().expect("owners in the fixture");
    assert!(!owners.is_empty());
    for o in owners {
        o["comm"] = serde_json::Value::from("a<b>&\"c\u{1}\u{1b}[31m");
    }
    let path = scratch.path("control.json");
    std::fs::write(&path, v.to_string()).unwrap();
    let (code, svg, err) = run_bin(&["plot", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert!(svg.contains("\\x1b[31m") && !svg.contains('\u{1b}'));
}

#[test]
fn written_atomically_to_o_or_to_stdout() {
    let scratch = Scratch::new("plot-atomic");
    let path = scratch.path("burst.svg");
    let (code, out, err) = run_bin(&[
        "plot",
        fixture(BURST).to_str().unwrap(),
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty());
    let file = std::fs::read_to_string(&path).unwrap();
    let (_, stdout, _) = run_bin(&["plot", fixture(BURST).to_str().unwrap()]);
    assert_eq!(file, stdout);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

/// librsvg renders every fixture's picture to a PNG of the SVG's size.
#[test]
fn rsvg_renders_every_fixture() {
    if !need(
        "rsvg_renders_every_fixture",
        "rsvg-convert",
        "--version",
        "librsvg2-bin",
    ) {
        return;
    }
    let scratch = Scratch::new("plot-rsvg");
    let dir = fixture("snapshots");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let (_, t) = model_of(&path);
        let svg = svg_of(&t);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let root = doc.root_element();
        let size = |a: &str| root.attribute(a).unwrap().parse::<u32>().unwrap();
        let (w, h) = (size("width"), size("height"));
        assert_eq!(w, WIDTH);
        let svg_path = scratch.path("render.svg");
        let png_path = scratch.path("render.png");
        std::fs::write(&svg_path, &svg).unwrap();
        let out = Command::new("rsvg-convert")
            .arg(&svg_path)
            .arg("-o")
            .arg(&png_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let png = std::fs::read(&png_path).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let dim = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
        assert_eq!((dim(16), dim(20)), (w, h), "{}", path.display());
    }
}

/// Ten minutes at 100 Hz, every sample different (the worst case for size): the picture stays
/// far below 1 MB, because every series is cut to the pixel columns.
#[test]
fn ten_minutes_at_100_hz_is_small() {
    let mut snap = store::load(&fixture(BURST)).unwrap();
    let template = snap.samples[1].clone();
    let counters = template.counters.clone();
    let l0 = template.listeners[0].clone();
    snap.samples = (0..60_000u64)
        .map(|i| {
            let mut l = l0.clone();
            // A saw tooth that hits B+1 every 7 s, with drops while full.
            l.recv_q = ((i * 3) % 700 / 41) as u32;
            l.drops = Some((i / 50) as u32);
            l.syn_recv = (i % 10 == 0).then_some((i % 13) as u32);
            let mut c = counters.clone();
            if let Some(c) = c.as_mut() {
                c.insert(LISTEN_OVERFLOWS.into(), i / 50);
            }
            Sample {
                elapsed_us: i * 10_000,
                counters: c,
                listeners: vec![l],
                outgoing: None,
            }
        })
        .collect();
    snap.samples_taken = 60_000;
    let report = backlogctl::doctor::diagnose(&snap);
    let t = plot::timeline(&snap, &report, COLUMNS);
    let svg = svg_of(&t);
    let _ = writeln!(
        std::io::stderr(),
        "10 min at 100 Hz: {} bytes of SVG",
        svg.len()
    );
    assert!(svg.len() < 250_000, "{} bytes", svg.len());
    assert!(t.listeners[0].queue.len() <= COLUMNS);
    assert_eq!(t.listeners[0].peak, 17);
    texts(&svg);
}

/// Series with their local maxima: `(time, value)` in time order.
fn series() -> impl Strategy<Value = (Vec<(u64, u64)>, u64)> {
    (
        1u64..10_000_000,
        prop::collection::vec((0u64..5_000, 0u64..1_000), 1..3_000),
    )
        .prop_map(|(start, steps)| {
            let mut t = start;
            let pts: Vec<(u64, u64)> = steps
                .into_iter()
                .map(|(dt, v)| {
                    t += dt;
                    (t, v)
                })
                .collect();
            (pts, start)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// At most one point per pixel column; every local maximum of the input is in the output
    /// (its column's maximum is at least it, and every column's maximum is an input value of
    /// that column), the global peak exactly; each column's last value is its last input.
    #[test]
    fn downsampling_keeps_every_peak((pts, start) in series(), columns in 1usize..1_200) {
        let end = pts.last().unwrap().0;
        let axis = Axis::new(start, end, columns);
        let out = plot::downsample_max(&pts, &axis);
        prop_assert!(out.len() <= columns);
        let peak = pts.iter().map(|p| p.1).max().unwrap();
        prop_assert_eq!(out.iter().map(|c| c.max).max(), Some(peak));
        // Each column as the input has it: (maximum, last value).
        let mut expected: std::collections::BTreeMap<usize, (u64, u64)> = Default::default();
        for &(t, v) in &pts {
            let e = expected.entry(axis.column_of(t)).or_insert((v, v));
            e.0 = e.0.max(v);
            e.1 = v;
        }
        let got: std::collections::BTreeMap<usize, (u64, u64)> =
            out.iter().map(|c| (c.column, (c.max, c.last))).collect();
        prop_assert_eq!(&got, &expected);
        for (i, &(t, v)) in pts.iter().enumerate() {
            let local_max = (i == 0 || pts[i - 1].1 <= v) && (i + 1 == pts.len() || pts[i + 1].1 <= v);
            if local_max {
                prop_assert!(got[&axis.column_of(t)].0 >= v, "peak {} at {} lost", v, t);
            }
        }
        // Drops summed per column add up to the input's.
        let sums = plot::downsample_sum(&pts, &axis);
        prop_assert!(sums.len() <= columns);
        prop_assert_eq!(sums.iter().map(|s| s.1).sum::<u64>(), pts.iter().map(|p| p.1).sum::<u64>());
    }
}

/// The README's picture is what the tool draws from its fixture today (`UPDATE_DOCS=1`
/// rewrites it).
#[test]
fn readme_picture_is_current() {
    let (_, t) = model_of(&fixture(BURST));
    let svg = svg_of(&t);
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs");
    let stale = common::stale_generated(&docs, "UPDATE_DOCS", [("burst.svg".into(), svg.into())]);
    assert!(
        stale.is_empty(),
        "docs/burst.svg is stale: UPDATE_DOCS=1 cargo test --test plot readme_picture_is_current"
    );
}

#[test]
fn a_unix_listener_has_no_drops_lane() {
    in_netns("a_unix_listener_has_no_drops_lane", || {
        let scratch = Scratch::new("plot-unix");
        let dir = &scratch.dir;
        let sock = dir.join("php-fpm.sock").to_str().unwrap().to_owned();
        let _server = unix_listener(&sock, 4);
        // B = 4 holds 5; the rest are refused at once, and nothing counts them.
        let queued: Vec<_> = (0..8).filter_map(|_| unix_connect(&sock).ok()).collect();
        assert_eq!(queued.len(), 5);
        let rec = dir.join("unix.json");
        let rec_s = rec.to_str().unwrap();
        let (code, _, err) = run_bin(&["snapshot", "-w", "200ms", "-o", rec_s, &sock]);
        assert_eq!(code, 0, "{err}");
        let (_, t) = model_of(&rec);
        assert_eq!(t.instead, None, "a full queue is drawn");
        let l = &t.listeners[0];
        assert_eq!(l.id.local.to_string(), sock);
        assert_eq!((l.peak, l.capacity, l.full), (5, 5, true));
        assert_eq!(l.drops, plot::Drops::NotCounted);
        assert_eq!(l.syn_recv, None);
        let svg = dir.join("unix.svg");
        let (code, _, err) = run_bin(&["plot", rec_s, "-o", svg.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let svg = std::fs::read_to_string(&svg).unwrap();
        let texts = texts(&svg);
        assert!(texts.iter().any(|s| s.contains(&sock)), "{texts:?}");
        assert!(
            texts
                .iter()
                .any(|s| s.starts_with("drops are not counted for Unix listeners")),
            "{texts:?}"
        );
        assert!(
            !texts.iter().any(|s| s.starts_with("drops / ")),
            "{texts:?}"
        );
    });
}

/// Every fixture predates the clients' wait (schema < 4, or no reading): no wait lane, so the
/// pictures are what they were.
#[test]
fn snapshots_without_wait_readings_have_no_wait_lane() {
    for entry in std::fs::read_dir(fixture("snapshots")).unwrap() {
        let path = entry.unwrap().path();
        let raw = store::load(&path).unwrap();
        if raw
            .samples
            .iter()
            .any(|s| s.listeners.iter().any(|l| l.wait.is_some()))
        {
            continue;
        }
        let (_, t) = model_of(&path);
        assert!(
            t.listeners.iter().all(|l| l.wait.is_none()),
            "{}",
            path.display()
        );
        let texts = texts(&svg_of(&t));
        assert!(
            !texts.iter().any(|s| s.contains("the clients' wait")),
            "{}: {texts:?}",
            path.display()
        );
    }
}

/// A listener that never accepts, three clients connected before the recording: every reading
/// sees them in the accept queue, and the picture gets a lane with their oldest wait.
#[test]
fn clients_left_waiting_get_a_wait_lane() {
    in_netns("clients_left_waiting_get_a_wait_lane", || {
        let scratch = Scratch::new("plot-wait");
        let _server = common::listener("127.0.0.1:8600", 16);
        let _clients: Vec<_> = (0..3)
            .map(|_| common::start_connect("127.0.0.1:8600"))
            .collect();
        common::wait_for(300, || {
            (common::scenarios::queue_of(":8600")? == 3).then_some(())
        })
        .expect("3 queued");
        let rec = scratch.path("wait.json");
        let rec_s = rec.to_str().unwrap();
        let (code, _, err) = run_bin(&["snapshot", "-w", "300ms", "-o", rec_s, ":8600"]);
        assert_eq!(code, 0, "{err}");
        let (_, t) = model_of(&rec);
        assert_eq!(t.instead, None, "a standing queue is drawn");
        let w = t.listeners[0].wait.as_ref().expect("a wait lane");
        // Read in the first and last samples at least; all three queued at each.
        assert!(w.readings >= 2, "{w:?}");
        assert_eq!((w.last.queued, w.last.unanswered), (3, 0), "{w:?}");
        assert!(w.longest_s > 0.0 && w.after_accept.iter().all(|c| c.max == 0.0));
        let texts = texts(&svg_of(&t));
        assert!(
            texts
                .iter()
                .any(|s| s.starts_with("the clients' wait, read ")),
            "{texts:?}"
        );
        assert!(
            texts
                .iter()
                .any(|s| s == "oldest in the accept queue (connected, not accept()ed)"),
            "{texts:?}"
        );
        assert!(
            !texts.iter().any(|s| s.starts_with("oldest after accept()")),
            "nobody waited after accept: {texts:?}"
        );
    });
}

/// The recorded waits (the seed's Java pool of 10, a server accepting every 200 ms): the lane
/// draws each at its place, and its longest is the recording's own.
#[test]
fn recorded_waits_are_drawn_at_their_place() {
    for (rel, after_accept) in [
        ("snapshots/6.18-java-pool10-1000-clients-wait.json", true),
        (
            "snapshots/6.18-slow-server-accepts-every-200ms-wait.json",
            false,
        ),
    ] {
        let raw = store::load(&fixture(rel)).unwrap();
        let longest = raw
            .samples
            .iter()
            .flat_map(|s| &s.listeners)
            .filter_map(|l| l.wait)
            .map(|w| w.oldest_ms())
            .max()
            .unwrap();
        let (_, t) = model_of(&fixture(rel));
        let w = t.listeners[0].wait.as_ref().expect("a wait lane");
        assert_eq!(w.longest_s, f64::from(longest) / 1000.0, "{rel}");
        let (drawn, flat) = match after_accept {
            true => (&w.after_accept, &w.accept_queue),
            false => (&w.accept_queue, &w.after_accept),
        };
        assert_eq!(
            drawn.iter().map(|c| c.max).fold(0.0, f64::max),
            w.longest_s,
            "{rel}"
        );
        assert!(flat.iter().all(|c| c.max == 0.0), "{rel}");
        let texts = texts(&svg_of(&t));
        let legend = match after_accept {
            true => "oldest after accept() (request in, nothing sent back)",
            false => "oldest in the accept queue (connected, not accept()ed)",
        };
        assert!(texts.iter().any(|s| s == legend), "{rel}: {texts:?}");
    }
}
