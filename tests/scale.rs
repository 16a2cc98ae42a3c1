//! Scale: a process holding thousands of listeners (a proxy) has every one attributed to it,
//! past the point where its descriptor table is read by several threads, and doctor writes one
//! finding for them all, naming each listener.
//!
//! Needs root (a private namespace) and a hard RLIMIT_NOFILE of at least 3,512: skipped with
//! the reason without them, failed under CI=true.

mod common;

use std::collections::HashSet;

use common::*;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

const N: u16 = 3000;

#[test]
fn thousands_of_listeners_of_one_process_make_one_finding() {
    in_netns(
        "thousands_of_listeners_of_one_process_make_one_finding",
        || {
            let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
            let need = u64::from(N) + 512;
            if soft < need {
                if hard < need {
                    return skip(
                        "thousands_of_listeners_of_one_process_make_one_finding",
                        &format!("RLIMIT_NOFILE hard limit {hard} < {need} (ulimit -Hn)"),
                    );
                }
                setrlimit(Resource::RLIMIT_NOFILE, need, hard).expect("raise RLIMIT_NOFILE");
            }
            let held: Vec<_> = (0..N)
                .map(|i| listener(&format!("127.0.0.1:{}", 40000 + i), 16))
                .collect();
            let inodes: HashSet<u64> = held
                .iter()
                .map(|fd| nix::sys::stat::fstat(fd).expect("fstat").st_ino)
                .collect();

            let (owners, gap) = backlogctl::source::procs::owners(&inodes);
            assert!(gap.is_none(), "{gap:?}");
            let me = std::process::id();
            let attributed: HashSet<u64> = owners
                .iter()
                .filter(|o| o.pid == me)
                .map(|o| o.inode)
                .collect();
            assert_eq!(
                attributed, inodes,
                "every listener attributed to this process"
            );

            let (code, out, err) = run_bin(&["doctor", "--window", "0", "--json"]);
            assert_eq!(code, 1, "warnings only: {err}");
            let r: serde_json::Value = serde_json::from_str(&out).expect("json");
            let findings = r["findings"].as_array().unwrap();
            assert_eq!(findings.len(), 1, "{findings:#?}");
            assert_eq!(findings[0]["id"], "small-app-backlog");
            let covered: HashSet<&str> = findings[0]["listeners"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            assert_eq!(covered.len(), usize::from(N));
            assert!(covered.contains("127.0.0.1:40000") && covered.contains("127.0.0.1:42999"));
            let named = r["listeners"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|l| l["owners"][0]["pid"] == me)
                .count();
            assert_eq!(named, usize::from(N), "every listener named in the report");
            drop(held);
        },
    );
}
