//! Cost of rendering the exporter's exposition for 100 namespaces × 100 TCP listeners (each
//! with its wait read, an owner, the exported counters and sysctls): `render::metrics::write`
//! on one thread into memory, and `render::metrics::pieces` on two. Run: `cargo bench --bench
//! exposition`. Prints figures; asserts only that both give the same bytes.

use std::time::Instant;

use backlogctl::model::{Identity, Scraped, ScrapedNs, Snapshot};
use backlogctl::render::metrics;

fn namespace(n: u64) -> ScrapedNs {
    let listeners: Vec<serde_json::Value> = (0..100u64)
        .map(|i| {
            serde_json::json!({"local": format!("0.0.0.0:{}", 10000 + i), "inode": n * 1000 + i,
                "uid": 0, "recv_q": i % 3, "send_q": 128, "drops": i * 7,
                "wait": {"queued": i % 2, "queued_oldest_ms": i * 13, "unanswered": 0,
                         "unanswered_oldest_ms": 0, "unread": 0}})
        })
        .collect();
    let owners: Vec<serde_json::Value> = (0..100u64)
        .map(|i| serde_json::json!({"inode": n * 1000 + i, "pid": 4000 + n, "comm": "python3"}))
        .collect();
    let counters: serde_json::Map<String, serde_json::Value> = backlogctl::catalogue::exported()
        .enumerate()
        .map(|(i, (k, _, _))| (k.to_string(), serde_json::json!(i as u64 * 1000 + n)))
        .collect();
    let snap: Snapshot = serde_json::from_value(serde_json::json!({
        "schema_version": 5, "tool": "bench", "started_unix_ms": 0,
        "sysctls": {"somaxconn": 4096, "tcp_max_syn_backlog": 512, "tcp_syncookies": 1,
                    "tcp_abort_on_overflow": 0},
        "owners": owners,
        "samples": [{"elapsed_us": 0, "listeners": listeners, "counters": counters}]
    }))
    .expect("a snapshot");
    ScrapedNs {
        inode: Some(4026532000 + n),
        identity: Identity::default(),
        snapshot: Some(snap),
    }
}

/// The fastest of `runs` calls of `f`, in ms: this machine is shared, and the fastest is the
/// figure least disturbed.
fn fastest(runs: u32, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let scrape = Scraped {
        namespaces: (0..100).map(namespace).collect(),
        duration: Default::default(),
    };
    let runs = 100;
    let mut one = Vec::new();
    let reused = fastest(runs, || {
        one.clear();
        metrics::write(&mut one, &scrape, None).expect("write");
    });
    // As `metrics -o` writes: into a new buffer each time, of the last one's size.
    let fresh = fastest(runs, || {
        let mut fresh = Vec::with_capacity(one.len());
        metrics::write(&mut fresh, &scrape, None).expect("write");
        std::hint::black_box(fresh);
    });
    let pieces = fastest(runs, || {
        std::hint::black_box(metrics::pieces(&scrape, None));
    });
    let joined = metrics::pieces(&scrape, None).concat();
    assert_eq!(one, joined, "the pieces join into what write writes");
    println!(
        "100 namespaces x 100 listeners, {} bytes, {} lines (fastest of {runs}): write {reused:.2} ms into a buffer reused, {fresh:.2} ms into a new one; pieces (two threads, as the exporter) {pieces:.2} ms",
        one.len(),
        one.iter().filter(|b| **b == b'\n').count(),
    );
}
