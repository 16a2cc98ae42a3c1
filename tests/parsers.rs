//! Parsers on real captures (fixtures/, recorded from real kernels; see fixtures/README.md)
//! and on the nasty inputs a tolerant parser must survive.

mod common;

use backlogctl::source::netstat::parse;
use common::fixture;

fn captures(dir: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(fixture(dir))
        .expect("fixtures dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_netstat_capture_parses_completely() {
    let caps = captures("netstat");
    assert!(
        caps.len() >= 2,
        "need captures from more than one kernel, have {caps:?}"
    );
    for (name, text) in caps {
        let (c, problems) = parse(&text);
        assert!(problems.is_empty(), "{name}: {problems:?}");
        // Every value in the file became exactly one counter.
        let expected: usize = text
            .lines()
            .collect::<Vec<_>>()
            .chunks(2)
            .map(|pair| pair[0].split_whitespace().count() - 1)
            .sum();
        assert_eq!(c.len(), expected, "{name}");
        for key in [
            "TcpExt:ListenOverflows",
            "TcpExt:ListenDrops",
            "TcpExt:SyncookiesSent",
        ] {
            assert!(c.contains_key(key), "{name} lacks {key}");
        }
    }
}

#[test]
fn every_snmp_capture_parses_and_skips_only_maxconn() {
    let caps = captures("snmp");
    assert!(caps.len() >= 2, "need captures from more than one kernel");
    for (name, text) in caps {
        let (c, problems) = parse(&text);
        assert!(problems.is_empty(), "{name}: {problems:?}");
        assert!(
            c.contains_key("Tcp:OutRsts") && c.contains_key("Tcp:ActiveOpens"),
            "{name}"
        );
        // Tcp:MaxConn is -1 ("dynamic"): a setting, not a counter, and left out.
        assert!(!c.contains_key("Tcp:MaxConn"), "{name}");
    }
}

#[test]
fn unknown_counters_and_sections_are_kept() {
    let (c, problems) =
        parse("TcpExt: ListenOverflows TCPFromTheFuture\nTcpExt: 3 9\nNewSect: A\nNewSect: 1\n");
    assert!(problems.is_empty());
    assert_eq!(c["TcpExt:TCPFromTheFuture"], 9);
    assert_eq!(c["NewSect:A"], 1);
    assert_eq!(c["TcpExt:ListenOverflows"], 3);
}

#[test]
fn nasty_inputs_never_panic_and_say_what_was_wrong() {
    let cases: &[(&str, &str, usize)] = &[
        ("", "empty file", 0),
        ("TcpExt: A B C\n", "truncated after a header", 0),
        ("TcpExt: A B C\nTcpExt: 1 2\n", "fewer values than names", 2),
        ("TcpExt: A B\nTcpExt: 1 2 3\n", "more values than names", 2),
        (
            "TcpExt: A B\nIpExt: 1 2\nIpExt: X\nIpExt: 5\n",
            "values of another section",
            1,
        ),
        ("TcpExt: A B\nTcpExt: 1 x\n", "unreadable value", 1),
        (
            "garbage without tag\nTcpExt: A\nTcpExt: 4\n",
            "line without a tag",
            1,
        ),
        ("TcpExt: A\r\nTcpExt: 7\r\n", "CRLF", 1),
        ("TcpExt: A\nTcpExt: 18446744073709551615\n", "u64 max", 1),
        (
            "TcpExt: A\nTcpExt: 18446744073709551616\n",
            "u64 overflow",
            0,
        ),
        (": A\n: 1\n", "empty tag", 0),
        ("\u{0}\u{ff}: é\n\u{0}\u{ff}: 1\n", "binary junk", 0),
    ];
    for (text, what, counters) in cases {
        let (c, problems) = parse(text);
        assert_eq!(c.len(), *counters, "{what}: {c:?}");
        let clean = matches!(*what, "empty file" | "CRLF" | "u64 max");
        assert_eq!(problems.is_empty(), clean, "{what}: {problems:?}");
    }
}

mod snapshot_files {
    use backlogctl::store::parse;

    #[test]
    fn corrupt_or_foreign_snapshots_are_clear_errors() {
        let cases = [
            ("", "not valid JSON"),
            ("{", "not valid JSON"),
            ("[]", "no schema_version"),
            ("{\"hello\": 1}", "no schema_version"),
            ("{\"schema_version\": 99}", "newer than this backlogctl"),
            ("{\"schema_version\": 1}", "invalid snapshot"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_minimal_hand_written_snapshot_of_the_docs_loads() {
        // The smallest document docs/snapshot.md promises to accept.
        let text = r#"{
          "schema_version": 1, "tool": "by hand", "started_unix_ms": 0,
          "sysctls": {"somaxconn": 4096},
          "samples": [{"elapsed_us": 0, "counters": {"TcpExt:ListenOverflows": 5},
                       "listeners": [{"local": "0.0.0.0:8100", "inode": 1, "uid": 0,
                                      "recv_q": 51, "send_q": 50}]}]
        }"#;
        let s = parse(text).expect("loads");
        let l = &s.samples[0].listeners[0];
        assert_eq!(
            (l.recv_q, l.send_q, l.drops, l.syn_recv),
            (51, 50, None, None)
        );
        assert!(l.accept_queue_full());
        assert_eq!(s.sysctls.tcp_syncookies, None, "absent stays unknown");
        assert_eq!(parse("{\"schema_version\":1,\"tool\":\"x\",\"started_unix_ms\":0,\"sysctls\":{},\"samples\":[]}").unwrap_err().to_string(), "it holds no samples");
    }

    /// A fixture recorded before stored gap kinds (schemas 1 and 2) gets each gap's kind as
    /// the file is read, from the words backlogctl wrote then; a later one stores it. Either
    /// way a fixture's gaps are these kinds (every recording named all owners).
    #[test]
    fn the_fixtures_gaps_get_their_kinds_as_they_load() {
        use backlogctl::model::{GapKind, SCHEMA_VERSION};
        let mut syn_recv = 0;
        let mut told = 0;
        for entry in std::fs::read_dir(super::fixture("snapshots")).unwrap() {
            let path = entry.unwrap().path();
            let s = backlogctl::store::load(&path).unwrap();
            assert!(s.schema_version <= SCHEMA_VERSION, "{}", path.display());
            told += usize::from(s.schema_version < 3);
            for g in &s.gaps {
                let want = match g.what.as_str() {
                    "syn-recv" => GapKind::SynRecvNotCounted,
                    _ => GapKind::Unobserved,
                };
                assert_eq!(g.kind, want, "{}: {g:?}", path.display());
                syn_recv += usize::from(want == GapKind::SynRecvNotCounted);
            }
        }
        assert!(syn_recv > 0, "no fixture has a SYN_RECV gap to tell");
        assert!(told > 0, "no fixture of an older schema has its gaps told");
    }

    /// A snapshot of this schema keeps each gap's kind through the file, whatever its words.
    #[test]
    fn a_new_snapshot_round_trips_with_its_gaps_kinds() {
        use backlogctl::model::{Gap, GapKind, SCHEMA_VERSION};
        let path = super::fixture("snapshots/6.18-gunicorn-backlog16-burst.json");
        let mut s = backlogctl::store::load(&path).unwrap();
        s.schema_version = SCHEMA_VERSION;
        s.gaps = GapKind::ALL
            .iter()
            .map(|&kind| Gap {
                // The same words for every kind: only the stored kind can tell them apart.
                what: "syn-recv".into(),
                reason: "not looked up".into(),
                kind,
            })
            .collect();
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            text.contains(r#""kind":"owners-named-only-troubled""#),
            "{text}"
        );
        let back = parse(&text).unwrap();
        assert_eq!(back.gaps, s.gaps);
        assert_eq!(back, s);
    }

    /// Schema 5 added the connecting side. Every fixture of an older schema still reads, with
    /// no outgoing connections and no local addresses (unknown, not none); a schema 5 file's
    /// servers survive the file, counts not read staying absent.
    #[test]
    fn older_files_read_without_the_connecting_side_and_schema_5_keeps_it() {
        use backlogctl::model::{Outgoing, Remote, SCHEMA_VERSION};
        let mut older = 0;
        for entry in std::fs::read_dir(super::fixture("snapshots")).unwrap() {
            let path = entry.unwrap().path();
            let s = backlogctl::store::load(&path).unwrap();
            if s.schema_version < 5 {
                older += 1;
                assert!(s.samples.iter().all(|x| x.outgoing.is_none()), "{path:?}");
                assert_eq!(s.local_addresses, None, "{}", path.display());
            }
        }
        assert!(older > 0, "no fixture of an older schema");
        let path = super::fixture("snapshots/6.18-gunicorn-backlog16-burst.json");
        let mut s = backlogctl::store::load(&path).unwrap();
        s.schema_version = SCHEMA_VERSION;
        s.local_addresses = Some(vec!["10.200.0.2".parse().unwrap()]);
        s.samples[0].outgoing = Some(Outgoing {
            remotes: vec![
                Remote {
                    syn_sent: 30,
                    syn_retried: 29,
                    syn_retrans_max: 2,
                    ..Remote::new("10.200.0.1:9000".parse().unwrap())
                },
                Remote {
                    established: Some(801),
                    unacked: 800,
                    unacked_retrans_max: 4,
                    never_acked: Some(790),
                    time_wait: Some(3),
                    ..Remote::new("[2001:db8::1]:443".parse().unwrap())
                },
            ],
            more: 7,
            more_syn_sent: 12,
            more_syn_retried: 5,
            established_read: true,
            time_wait_read: true,
        });
        let text = serde_json::to_string(&s).unwrap();
        let back = parse(&text).unwrap();
        assert_eq!(back.samples[0].outgoing, s.samples[0].outgoing);
        assert_eq!(back, s);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let first = &v["samples"][0]["outgoing"]["remotes"][0];
        assert!(
            first.get("established").is_none(),
            "not read: absent, {first}"
        );
    }
}

/// Counters a kernel lacks are absent, never 0. The 6.18 counters that the 5.10 capture lacks,
/// written out rather than derived from the two files: a parser that reported a counter the file
/// does not have (a 0 for a name it knows), dropped one, or misread a header changes the
/// difference and fails here.
/// (When each appears in the captures: TCPMigrateReq* from 6.1 (added in 5.14), TCPPLBRehash
/// and TCPAO* from 6.12, the PAWS/TSEcr/BeyondWindow counters only in 6.18.)
const TCPEXT_NEWER_THAN_5_10: &[&str] = &[
    "TcpExt:BeyondWindow",
    "TcpExt:PAWSOldAck",
    "TcpExt:PAWSTimewait",
    "TcpExt:TCPAOBad",
    "TcpExt:TCPAODroppedIcmps",
    "TcpExt:TCPAOGood",
    "TcpExt:TCPAOKeyNotFound",
    "TcpExt:TCPAORequired",
    "TcpExt:TCPMigrateReqFailure",
    "TcpExt:TCPMigrateReqSuccess",
    "TcpExt:TCPPLBRehash",
    "TcpExt:TSEcrRejected",
];

/// Named facts about the captures: 5.10 lacks exactly the counters above and the whole
/// MPTcpExt section, and has every counter the rules read.
#[test]
fn the_5_10_capture_lacks_newer_counters_and_sections() {
    let (old, _) = parse(&std::fs::read_to_string(fixture("netstat/5.10.0-32-amd64.txt")).unwrap());
    let (new, _) = parse(&std::fs::read_to_string(fixture("netstat/6.18.44-fc-v782.txt")).unwrap());
    for key in TCPEXT_NEWER_THAN_5_10 {
        assert_eq!(old.get(*key), None, "{key} must be absent on 5.10, not 0");
        assert!(new.contains_key(*key), "{key} on 6.18");
    }
    assert!(!old.keys().any(|k| k.starts_with("MPTcpExt:")));
    assert!(new.keys().any(|k| k.starts_with("MPTcpExt:")));
    // Nothing else is missing on 5.10, and 5.10 has nothing 6.18 lost.
    let mut missing: Vec<&str> = new
        .keys()
        .filter(|k| !old.contains_key(*k) && !k.starts_with("MPTcpExt:"))
        .map(String::as_str)
        .collect();
    missing.sort_unstable();
    assert_eq!(missing, TCPEXT_NEWER_THAN_5_10);
    let lost: Vec<_> = old.keys().filter(|k| !new.contains_key(*k)).collect();
    assert!(lost.is_empty(), "{lost:?}");
    for key in [
        "TcpExt:ListenOverflows",
        "TcpExt:ListenDrops",
        "TcpExt:TCPReqQFullDrop",
        "TcpExt:TCPReqQFullDoCookies",
    ] {
        assert!(old.contains_key(key) && new.contains_key(key), "{key}");
    }
}
