//! Visiting namespaces: `--all-netns`, `--netns`/`--pid` for the exporter and `metrics`, the
//! caller's own. Namespaces are per thread, so a few worker threads each enter namespace after
//! namespace (`Sources::enter`) and run the same work there on fresh sources; the calling
//! thread never changes namespace, so concurrent callers cannot race on a switch. Workers that
//! miss the deadline are abandoned, not waited for: their namespaces are reported failed. Each
//! namespace comes back with who it belongs to (its names, processes, pod), whether or not it
//! could be read.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Sources;
use crate::error::{Error, Result};
use crate::model::{Gap, Identity, Netns, Snapshot};
use crate::source::netns::{self, Member, Which};
use crate::source::pods;

/// Which namespaces a collection covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// The caller's own.
    Current,
    /// One entered by name, path or PID (`--netns`, `--pid`).
    One(Which),
    /// Every one on the host (`--all-netns`).
    All,
}

/// How long a fan-out may take: `base`, plus `per_round` for each round of namespaces a worker
/// takes in turn (a recording window: `doctor --all-netns --window 10s` over many namespaces).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub base: Duration,
    pub per_round: Duration,
}

/// What a namespace's work produced: it says which namespace it read, so that a namespace
/// entered through `/proc/PID/ns/net` whose PID was reused meanwhile is caught.
pub trait Recorded: Send + 'static {
    fn netns(&self) -> &Netns;
}

impl Recorded for Snapshot {
    fn netns(&self) -> &Netns {
        &self.netns
    }
}

/// One namespace of a fan-out.
#[derive(Debug)]
pub struct NsDone<T> {
    /// The namespace's inode: the `netns` label. None only when even that could not be read.
    pub inode: Option<u64>,
    /// Its /run/netns names.
    pub names: Vec<String>,
    /// Its processes (`--all-netns` only).
    pub processes: Vec<Member>,
    pub identity: Identity,
    /// What the work produced; None when it failed.
    pub value: Option<T>,
    /// Why it failed (could not be entered, vanished, missed the deadline).
    pub error: Option<Error>,
}

/// Stack of a namespace worker. Recording keeps its buffers on the heap; a small stack also
/// keeps what glibc caches of exited threads' stacks small in a long-running exporter.
const WORKER_STACK: usize = 512 * 1024;

/// Runs `work` in every namespace of `which`, on at most `max_workers` threads, each with
/// fresh `sources()` that entered the namespace. Fails only when the namespaces cannot even be
/// listed; a namespace that fails is reported in its `NsDone`. Ordered by inode, with the gaps
/// met while listing them. `members`: what an earlier listing learnt of each process, to
/// read again only what changed (the exporter's scrapes).
pub fn fan_out<S, T>(
    which: &Namespaces,
    deadline: Deadline,
    max_workers: usize,
    sources: Arc<dyn Fn() -> S + Send + Sync>,
    work: Arc<dyn Fn(S) -> Result<T> + Send + Sync>,
    members: Option<&mut netns::Members>,
) -> Result<(Vec<NsDone<T>>, Vec<Gap>)>
where
    S: Sources + 'static,
    T: Recorded,
{
    let started = Instant::now();
    let mut gaps = Vec::new();
    let jobs = jobs(which, &mut gaps, members)?;
    let workers = jobs.len().clamp(1, max_workers.max(1));
    let rounds = jobs.len().div_ceil(workers) as u32;
    let until = started + deadline.base + deadline.per_round * rounds;
    let results = run(&jobs, until, workers, sources, work);
    let pods = if jobs.iter().all(|j| j.processes.is_empty()) {
        HashMap::new()
    } else {
        pods::pods_by_uid(std::path::Path::new(pods::POD_LOGS))
    };
    let initial_inode = netns::initial_inode();
    let mut done: Vec<NsDone<T>> = jobs
        .into_iter()
        .zip(results)
        .map(|(job, result)| {
            let (value, error) = match result {
                // Entered through /proc/PID/ns/net: a PID reused meanwhile leads elsewhere.
                Ok(v) if job.inode.is_some() && v.netns().inode != job.inode => (
                    None,
                    Some(Error::Vanished(
                        "the namespace vanished while it was being read".into(),
                    )),
                ),
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e)),
            };
            let inode = job.inode.or(value.as_ref().and_then(|v| v.netns().inode));
            // Who it is does not depend on whether it could be read this time.
            let initial = inode.is_some() && inode == initial_inode;
            // The walk's names are this run's; a recording's may come from a cache.
            let names = match (&value, job.names.is_empty()) {
                (Some(v), true) => v.netns().names.clone(),
                _ => job.names,
            };
            NsDone {
                inode,
                identity: pods::identity(initial, &names, &job.processes, &pods),
                names,
                processes: job.processes,
                value,
                error,
            }
        })
        .collect();
    done.sort_by_key(|n| n.inode);
    Ok((done, gaps))
}

#[derive(Debug, Default)]
struct Job {
    which: Option<Which>,
    inode: Option<u64>,
    names: Vec<String>,
    processes: Vec<Member>,
}

/// The namespaces to visit, with the processes of each for `All` (for pod identity).
fn jobs(
    which: &Namespaces,
    gaps: &mut Vec<Gap>,
    members: Option<&mut netns::Members>,
) -> Result<Vec<Job>> {
    match which {
        Namespaces::Current => Ok(vec![Job::default()]),
        Namespaces::One(which) => Ok(vec![Job {
            which: Some(which.clone()),
            inode: std::fs::metadata(which.path())
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m)),
            // Its name, should it fail: a failed namespace still says which it was.
            names: match which {
                Which::Named(n) if !n.contains('/') => vec![n.clone()],
                _ => Vec::new(),
            },
            processes: Vec::new(),
        }]),
        Namespaces::All => {
            let (found, found_gaps) = match members {
                Some(known) => netns::all_with(known),
                None => netns::all(),
            };
            gaps.extend(found_gaps);
            if found.is_empty() {
                return Err(Error::Permission {
                    what: "listing network namespaces".into(),
                    hint: "neither /run/netns nor /proc/*/ns/net could be read; run as root".into(),
                });
            }
            Ok(found
                .into_iter()
                .map(|f| Job {
                    which: Some(Which::Named(f.path.to_string_lossy().into_owned())),
                    inode: Some(f.inode),
                    names: f.names,
                    processes: f.processes,
                })
                .collect())
        }
    }
}

/// Jobs not yet taken by a worker: (index, namespace to enter).
type Queue = Arc<Mutex<Vec<(usize, Option<Which>)>>>;

/// A worker: takes jobs until the queue is empty or nobody waits for its results.
fn worker<S, T>(
    queue: &Queue,
    tx: &mpsc::Sender<(usize, Result<T>)>,
    sources: &dyn Fn() -> S,
    work: &dyn Fn(S) -> Result<T>,
) where
    S: Sources,
{
    loop {
        let job = queue.lock().map(|mut q| q.pop()).ok().flatten();
        let Some((i, which)) = job else { break };
        // A panic is reported as one for its namespace, not left to read as a namespace the
        // deadline cut off. The next job enters its own namespace, as after any other.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut s = sources();
            match &which {
                Some(w) => s.enter(w).and_then(|()| work(s)),
                None => work(s),
            }
        }))
        .unwrap_or_else(|p| Err(Error::panicked("reading a network namespace", p)));
        // A receiver gone (deadline passed) ends the worker.
        if tx.send((i, result)).is_err() {
            break;
        }
    }
}

/// Runs every job on `workers` threads. A job without a result by `until` fails with a
/// deadline error.
fn run<S, T>(
    jobs: &[Job],
    until: Instant,
    workers: usize,
    sources: Arc<dyn Fn() -> S + Send + Sync>,
    work: Arc<dyn Fn(S) -> Result<T> + Send + Sync>,
) -> Vec<Result<T>>
where
    S: Sources + 'static,
    T: Send + 'static,
{
    let queue: Queue = Arc::new(Mutex::new(
        jobs.iter()
            .enumerate()
            .rev()
            .map(|(i, j)| (i, j.which.clone()))
            .collect(),
    ));
    let (tx, rx) = mpsc::channel();
    let mut spawn_error = None;
    let mut started = 0;
    for _ in 0..workers {
        let (queue, tx, sources, work) = (queue.clone(), tx.clone(), sources.clone(), work.clone());
        let spawned = std::thread::Builder::new()
            .name("backlogctl-ns".into())
            .stack_size(WORKER_STACK)
            .spawn(move || worker(&queue, &tx, &*sources, &*work));
        match spawned {
            Ok(_) => started += 1,
            Err(e) => {
                // Fewer workers; the deadline still bounds the run.
                spawn_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let mut results: Vec<Option<Result<T>>> = (0..jobs.len()).map(|_| None).collect();
    let mut pending = jobs.len();
    while pending > 0 {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok((i, r)) => {
                results[i] = Some(r);
                pending -= 1;
            }
            Err(_) => break, // deadline, or every worker gone
        }
    }
    // Workers still running drop their results when they next send; nobody waits for them.
    if let Ok(mut q) = queue.lock() {
        q.clear();
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| match &spawn_error {
                Some(e) if started == 0 => Err(Error::Io {
                    what: "starting a namespace worker thread",
                    source: std::io::Error::new(e.kind(), e.to_string()),
                }),
                _ => Err(Error::Deadline("not recorded before the deadline".into())),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fake::Fake;

    /// One sample of the fake's namespace.
    fn snapshot_of(s: Fake) -> Result<Snapshot> {
        let once = &crate::collect::Sampling::ONCE;
        Ok(crate::collect::record(s, &crate::model::Scope::default(), once)?.0)
    }

    #[test]
    fn a_slow_or_failing_namespace_fails_alone_and_the_deadline_holds() {
        let jobs: Vec<Job> = ["ns:1", "slow", "bad", "ns:4"]
            .iter()
            .map(|n| Job {
                which: Some(Which::Named(n.to_string())),
                ..Job::default()
            })
            .collect();
        let until = Instant::now() + Duration::from_millis(200);
        let results = run(
            &jobs,
            until,
            4,
            Arc::new(Fake::default),
            Arc::new(snapshot_of),
        );
        let told: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(s) => format!("ok {:?}", s.netns.inode),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            told,
            [
                "ok Some(1)",
                "not recorded before the deadline",
                "vanished",
                "ok Some(4)"
            ]
        );
    }

    #[test]
    fn a_namespace_whose_reading_panics_is_told_so_and_the_next_is_read() {
        let jobs: Vec<Job> = ["panics", "ns:2"]
            .iter()
            .map(|n| Job {
                which: Some(Which::Named(n.to_string())),
                ..Job::default()
            })
            .collect();
        // One worker: the one that panicked reads the next namespace too.
        let until = Instant::now() + Duration::from_secs(5);
        let results = run(
            &jobs,
            until,
            1,
            Arc::new(Fake::default),
            Arc::new(snapshot_of),
        );
        assert!(
            matches!(&results[0], Err(Error::Panicked { what: "reading a network namespace", message: Some(m) })
                if m == "the fake panics"),
            "{:?}",
            results[0].as_ref().err()
        );
        assert!(matches!(&results[1], Ok(s) if s.netns.inode == Some(2)));
    }

    #[test]
    fn the_current_namespace_is_one_job_that_enters_nothing() {
        let (done, gaps) = fan_out(
            &Namespaces::Current,
            Deadline {
                base: Duration::from_secs(5),
                per_round: Duration::ZERO,
            },
            4,
            Arc::new(Fake::default),
            Arc::new(snapshot_of),
            None,
        )
        .unwrap();
        assert!(gaps.is_empty());
        assert_eq!(done.len(), 1);
        assert!(done[0].value.is_some() && done[0].error.is_none());
    }
}
