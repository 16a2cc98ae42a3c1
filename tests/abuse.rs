//! Bad input never panics: seeded random mutations of real captures (fixtures/) fed to the
//! /proc parser and the snapshot loader — truncations at every boundary, garbage bytes, huge
//! numbers, duplicated and swapped lines, wrong schema versions, non-UTF-8. Each gives a clear
//! error or a documented tolerant result. Deterministic: a fixed-seed xorshift, no new crates.

mod common;

use std::collections::BTreeMap;

use backlogctl::model::SCHEMA_VERSION;
use backlogctl::source::netstat::parse;
use backlogctl::store;
use common::fixture;

/// A schema this build does not know yet.
const NEWER: u32 = SCHEMA_VERSION + 1;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn texts(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(fixture(dir))
        .expect("fixtures")
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in {dir}");
    v
}

const NASTY: &[&str] = &[
    "",
    "\n",
    ":",
    "-",
    "-1",
    "99999999999999999999999999",
    "18446744073709551616",
    "TcpExt:",
    "TcpExt: ",
    "\u{0}",
    "\u{feff}",
    "é",
    " ",
    "\t",
    "NaN",
    "0x10",
    "+5",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    match rng.below(7) {
        0 if !lines.is_empty() => {
            // duplicate a line
            let i = rng.below(lines.len());
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        1 if lines.len() > 1 => {
            // swap two lines
            let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
            lines.swap(a, b);
        }
        2 if !lines.is_empty() => {
            // replace a field with something nasty
            let i = rng.below(lines.len());
            let mut fields: Vec<String> = lines[i].split(' ').map(str::to_string).collect();
            let f = rng.below(fields.len());
            fields[f] = NASTY[rng.below(NASTY.len())].to_string();
            lines[i] = fields.join(" ");
        }
        3 if !lines.is_empty() => {
            lines.remove(rng.below(lines.len()));
        }
        4 => {
            // flip bytes to printable ASCII, keeping UTF-8 valid
            let mut bytes: Vec<u8> = lines.join("\n").into_bytes();
            for _ in 0..1 + rng.below(8) {
                if bytes.is_empty() {
                    break;
                }
                let i = rng.below(bytes.len());
                if bytes[i].is_ascii() {
                    bytes[i] = b" :\n-0123456789Xx"[rng.below(16)];
                }
            }
            return String::from_utf8(bytes).unwrap_or_default();
        }
        5 => return text.chars().take(rng.below(text.len() + 1)).collect(),
        _ => lines.push(NASTY[rng.below(NASTY.len())].to_string()),
    }
    lines.join("\n")
}

#[test]
fn proc_parser_survives_every_truncation_and_mutation() {
    let mut rng = Rng(0x5eed_cafe_f00d_1234);
    for dir in ["netstat", "snmp"] {
        for text in texts(dir) {
            let (full, problems) = parse(&text);
            assert!(problems.is_empty());
            // Every truncation: no panic, never a counter the full file does not have.
            for (cut, _) in text.char_indices() {
                let (c, _) = parse(&text[..cut]);
                for k in c.keys() {
                    assert!(full.contains_key(k), "truncation at {cut} invented {k}");
                }
            }
            // Mutations: no panic; every counter is a Section:Name key with a u64.
            for _ in 0..2000 {
                let mut t = text.clone();
                for _ in 0..1 + rng.below(3) {
                    t = mutate(&mut rng, &t);
                }
                let (c, _problems) = parse(&t);
                for k in c.keys() {
                    let (sect, name) = k.split_once(':').expect("Section:Name");
                    assert!(!sect.is_empty() && !name.is_empty(), "{k:?}");
                }
            }
        }
    }
}

#[test]
fn duplicate_counter_names_are_reported_and_the_last_wins() {
    let (c, problems) = parse("TcpExt: A A\nTcpExt: 1 2\n");
    assert_eq!(c["TcpExt:A"], 2);
    assert_eq!(problems.len(), 1, "{problems:?}");
}

fn snapshot_texts() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(fixture("snapshots"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    v.sort();
    v.truncate(3);
    v
}

#[test]
fn snapshot_loader_gives_clear_errors_for_corrupt_files() {
    let mut rng = Rng(0xdead_beef_0bad_f00d);
    for text in snapshot_texts() {
        assert!(store::parse(&text).is_ok());
        // Truncations: an error (rarely a valid prefix), never a panic.
        for _ in 0..300 {
            let cut = rng.below(text.len());
            if let Err(e) = store::parse(&text[..cut]).map_err(|e| e.to_string()) {
                assert!(!e.is_empty() && !e.contains('\n'), "{e:?}");
            }
        }
        // Garbage bytes anywhere.
        for _ in 0..1000 {
            let mut bytes = text.clone().into_bytes();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(bytes.len());
                bytes[i] = b"{}[]\",:0-9e.xnull"[rng.below(17)];
            }
            if let Ok(t) = String::from_utf8(bytes) {
                let _ = store::parse(&t);
            }
        }
    }
    // Wrong versions and types.
    let mut v: serde_json::Value = serde_json::from_str(&snapshot_texts()[0]).unwrap();
    for (version, want) in [
        (serde_json::json!(NEWER), "newer than this backlogctl"),
        (serde_json::json!(u64::MAX), "newer than this backlogctl"),
        (serde_json::json!(-1), "no schema_version"),
        (serde_json::json!("1"), "no schema_version"),
        (serde_json::json!(1.5), "no schema_version"),
    ] {
        v["schema_version"] = version.clone();
        let e = store::parse(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains(want), "{version}: {e}");
    }
    v["schema_version"] = serde_json::json!(1);
    v["samples"][0]["listeners"] = serde_json::json!([{"local": "0.0.0.0:1", "inode": 1, "uid": 0, "recv_q": 5_000_000_000u64, "send_q": 1}]);
    assert!(
        store::parse(&v.to_string())
            .unwrap_err()
            .to_string()
            .contains("invalid snapshot")
    );
    v["samples"] = serde_json::json!([{"elapsed_us": 0, "listeners": [{"local": "not an address", "inode": 1, "uid": 0, "recv_q": 1, "send_q": 1}]}]);
    assert!(
        store::parse(&v.to_string())
            .unwrap_err()
            .to_string()
            .contains("invalid snapshot")
    );
    // Samples are in time order, or the file is refused.
    v["samples"] = serde_json::json!([
        {"elapsed_us": 900, "listeners": []},
        {"elapsed_us": 100, "listeners": []}
    ]);
    let e = store::parse(&v.to_string()).unwrap_err().to_string();
    assert!(
        e.contains("out of time order (elapsed_us 100 after 900)"),
        "{e}"
    );
    // Deep nesting stops at serde_json's recursion limit, not the stack.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(
        store::parse(&deep)
            .unwrap_err()
            .to_string()
            .contains("not valid JSON")
    );
}

/// A key repeated in one object: the last occurrence wins, at every level (docs/snapshot.md).
/// serde_json refuses a duplicate field when it fills a struct directly, but the loader reads
/// the file into a `serde_json::Value` first (to check schema_version before anything else),
/// and that keeps the last value. Each document below is otherwise valid and has a sample, so
/// only the duplicate decides the outcome.
#[test]
fn duplicate_keys_in_a_snapshot_keep_the_last_value() {
    let plain = r#"{"schema_version":1,"tool":"x","started_unix_ms":0,"sysctls":{"somaxconn":4096},
        "samples":[{"elapsed_us":0,"counters":{"TcpExt:ListenOverflows":7},
        "listeners":[{"local":"0.0.0.0:8100","inode":1,"uid":0,"recv_q":1,"send_q":50}]}]}"#;
    let base = store::parse(plain).expect("the document without duplicates loads");
    // (what, a key of `plain`, the same key written twice with the last value unchanged)
    let cases = [
        (
            "schema_version",
            r#""schema_version":1"#,
            r#""schema_version":1,"schema_version":1"#,
        ),
        (
            "a top-level field",
            r#""tool":"x""#,
            r#""tool":"first","tool":"x""#,
        ),
        (
            "a sysctl",
            r#""somaxconn":4096"#,
            r#""somaxconn":5,"somaxconn":4096"#,
        ),
        (
            "a listener field",
            r#""recv_q":1"#,
            r#""recv_q":51,"recv_q":1"#,
        ),
        (
            "a counter",
            r#""TcpExt:ListenOverflows":7"#,
            r#""TcpExt:ListenOverflows":0,"TcpExt:ListenOverflows":7"#,
        ),
    ];
    for (what, key, twice) in cases {
        assert!(plain.contains(key), "{what}");
        let text = plain.replacen(key, twice, 1);
        let s = store::parse(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(s.tool, base.tool, "{what}");
        assert_eq!(s.sysctls.somaxconn, Some(4096), "{what}");
        assert_eq!(s.samples[0].listeners[0].recv_q, 1, "{what}");
        assert_eq!(s.samples[0].counters, base.samples[0].counters, "{what}");
    }
    // The version check sees the last schema_version too.
    let version = |twice: &str| store::parse(&plain.replacen(r#""schema_version":1"#, twice, 1));
    let e = version(&format!(r#""schema_version":1,"schema_version":{NEWER}"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("newer than this backlogctl"), "{e}");
    let s = version(&format!(r#""schema_version":{NEWER},"schema_version":1"#)).unwrap();
    assert_eq!(s.schema_version, 1);
}

#[test]
fn non_utf8_and_missing_snapshot_files_are_one_line_errors() {
    let dir = std::env::temp_dir().join(format!("backlogctl-abuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("latin1.json");
    std::fs::write(&bad, b"{\"schema_version\": 1, \"tool\": \"caf\xe9\"}").unwrap();
    let cases: BTreeMap<&str, std::path::PathBuf> = [
        ("valid UTF-8", bad.clone()),
        ("No such file", dir.join("missing.json")),
        ("directory", dir.clone()),
    ]
    .into();
    for (want, path) in cases {
        let out = std::process::Command::new(common::bin())
            .args(["doctor", "--from"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(
            err.starts_with("error: ") && err.lines().count() == 1,
            "{err}"
        );
        assert!(
            err.to_lowercase().contains(&want.to_lowercase()),
            "{want}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Hand-written snapshots with values at the edges of their types: the diagnosis and both
/// renderers neither panic (debug builds check overflow) nor wrap (a queue of 4294967295 must
/// not come out as 0), and no plan recommends less than the backlog it has.
#[test]
fn extreme_snapshot_values_never_panic_nor_wrap() {
    let base = store::load(&fixture("snapshots/6.18-somaxconn5-backlog100-burst.json")).unwrap();
    let edges = [0u32, 1, 4095, 4096, 65_535, 65_536, u32::MAX - 1, u32::MAX];
    let mut n = 0;
    for &send_q in &edges {
        for &recv_q in &edges {
            for &drops in &[0u32, u32::MAX] {
                for somaxconn in [None, Some(0), Some(send_q), Some(u32::MAX)] {
                    let mut snap = base.clone();
                    snap.sysctls.somaxconn = somaxconn;
                    snap.sysctls.tcp_synack_retries = Some(u32::MAX);
                    for (i, s) in snap.samples.iter_mut().enumerate() {
                        for l in &mut s.listeners {
                            l.send_q = send_q;
                            l.recv_q = recv_q;
                            l.drops = Some(if i == 0 { 0 } else { drops });
                            l.syn_recv = Some(u32::MAX);
                        }
                        if let Some(c) = &mut s.counters {
                            c.insert(
                                "TcpExt:ListenOverflows".into(),
                                if i == 0 { u64::MAX } else { 0 },
                            );
                        }
                    }
                    let report = backlogctl::doctor::diagnose(&snap);
                    for p in &report.plans {
                        if let Some(t) = p.backlog.target {
                            assert!(t > send_q, "plan lowers {send_q} to {t}");
                        }
                    }
                    for v in &report.listeners {
                        assert!(v.capacity() > u64::from(v.send_q));
                    }
                    let mut out = Vec::new();
                    backlogctl::render::text(&mut out, &report, backlogctl::render::Style::PLAIN)
                        .unwrap();
                    backlogctl::render::json(&mut out, &report).unwrap();
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 8 * 8 * 2 * 4);
}

/// Values a kernel cannot produce are set aside as gaps, not computed with: a Recv-Q of a
/// million on a backlog of 5, a counter that goes backwards.
#[test]
fn impossible_values_become_gaps() {
    let text = std::fs::read_to_string(fixture("snapshots/6.18-somaxconn5-backlog100-burst.json"))
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let last = v["samples"].as_array().unwrap().len() - 1;
    v["samples"][last]["listeners"][0]["recv_q"] = serde_json::json!(1_000_000);
    v["samples"][last]["counters"]["TcpExt:ListenDrops"] = serde_json::json!(0);
    // A gauge going down is normal, not implausible.
    v["samples"][0]["counters"]["Tcp:CurrEstab"] = serde_json::json!(50);
    v["samples"][last]["counters"]["Tcp:CurrEstab"] = serde_json::json!(3);
    let dir = std::env::temp_dir().join(format!("backlogctl-implausible-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.json");
    std::fs::write(&path, v.to_string()).unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["doctor", ":8100", "--from"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("not-listening"),
        "set aside is not gone: {text}"
    );
    assert!(!text.contains("CurrEstab"), "{text}");
    assert!(text.contains("Recv-Q 1000000 for Send-Q 5"), "{text}");
    assert!(
        text.contains("went backwards") && text.contains("TcpExt:ListenDrops"),
        "{text}"
    );
    assert!(!text.contains("1666"), "no fill computed from it: {text}");
}

/// The reset counters (docs/kernel.md §10) abused in a real recording: one going backwards is
/// a gap and no finding; a rise of u64::MAX neither panics nor overflows; one missing from the
/// last sample makes its cause unknown. Each through the binary, one run each.
#[test]
fn reset_counters_backwards_huge_or_missing() {
    let text = std::fs::read_to_string(fixture(
        "snapshots/6.18-python-reads-64-of-16k-unread-close.json",
    ))
    .unwrap();
    let base: serde_json::Value = serde_json::from_str(&text).unwrap();
    let last = base["samples"].as_array().unwrap().len() - 1;
    let dir = std::env::temp_dir().join(format!("backlogctl-resets-abuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = base.clone();
        edit(&mut v);
        let path = dir.join("s.json");
        std::fs::write(&path, v.to_string()).unwrap();
        let out = std::process::Command::new(common::bin())
            .args(["doctor", "--json", "--from"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0..=2)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let ids = |r: &serde_json::Value| -> Vec<String> {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    };
    let backwards = run(&|v| {
        v["samples"][last]["counters"]["TcpExt:TCPAbortOnClose"] = serde_json::json!(0);
        v["samples"][0]["counters"]["TcpExt:TCPAbortOnClose"] = serde_json::json!(500);
    });
    assert!(
        !ids(&backwards).contains(&"resets-unread-close".to_string()),
        "{backwards}"
    );
    assert!(
        backwards.to_string().contains("went backwards"),
        "{backwards}"
    );
    let huge = run(&|v| {
        v["samples"][0]["counters"]["Tcp:OutRsts"] = serde_json::json!(0);
        v["samples"][last]["counters"]["Tcp:OutRsts"] = serde_json::json!(u64::MAX);
    });
    assert!(
        ids(&huge).contains(&"resets-unexplained".to_string()),
        "{huge}"
    );
    let missing = run(&|v| {
        v["samples"][last]["counters"]
            .as_object_mut()
            .unwrap()
            .remove("TcpExt:TCPAbortOnClose");
    });
    let unexplained = missing["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "resets-unexplained")
        .expect("the rest cannot be told, so it is reported");
    let rest = unexplained["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "unexplained")
        .unwrap();
    assert!(rest["value"].is_null(), "unknown, not zero: {rest}");
    std::fs::remove_dir_all(&dir).unwrap();
}
