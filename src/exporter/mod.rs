//! `exporter`: serves the metrics of `backlogctl metrics` over HTTP for Prometheus, collected
//! at scrape time (no background polling, no timestamps). `/metrics`, a landing page at `/`,
//! `/healthz` for probes; 404 elsewhere, 405 for methods other than GET and HEAD.
//!
//! One thread per connection, up to a cap (past it, a 503 and close), each with a small stack:
//! an idle kept-alive connection costs a blocked thread and nothing else, so a hundred of them
//! do not delay a scrape. Scrapes are serialised on the collector, which owns the owner cache;
//! namespace switches happen only on the collector's own worker threads. SIGTERM or SIGINT:
//! stop accepting, wake idle connections, let responses in flight finish, exit 0.
//!
//! `/metrics` is gzipped, on two threads (`gzip`), for a client whose Accept-Encoding takes it
//! (`http::accepts_gzip`).
//! With `--web.config.file` (`web_config`), connections may be TLS (`tls`: the handshake on
//! the connection's thread, under the cap and the head deadline) and requests need basic auth
//! (`auth`); the HTTP code is the same over both streams (`http::Connection<S: Timed>`).

pub(crate) mod auth;
mod gzip;
pub(crate) mod http;
pub(crate) mod tls;
pub(crate) mod web_config;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Status;
use crate::collect::Collector;
use crate::error::{Error, Result};
use crate::render;
use http::{Connection, Limits, Refusal, Response, Timed};
use web_config::WebConfig;

pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Stack of a connection thread. The thread that takes a scrape also walks /proc and renders
/// (namespaces are recorded on the collector's own workers); only touched pages cost memory.
const CONNECTION_STACK: usize = 1024 * 1024;

/// How long responses in flight may take to finish after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);

/// Bodies smaller than this are sent as they are: gzip would save a few bytes at best.
const GZIP_FROM: usize = 1024;

/// flate2's level for /metrics: the fastest, chosen with benches/exporter.sh (README,
/// Performance): a 3.7 MB exposition becomes 174 kB (21×) for 3–6 ms more CPU per scrape,
/// where the default level (6) gets 118 kB (32×) for about 21 ms more and a p50 15–21% slower.
const GZIP_LEVEL: u32 = 1;

pub(crate) struct Options {
    pub listen: SocketAddr,
    pub collector: Collector,
    pub max_connections: usize,
    pub limits: Limits,
    /// From `--web.config.file`: TLS, basic auth, extra headers.
    pub web: Option<WebConfig>,
}

struct Open {
    stream: TcpStream,
    /// Waiting for a request to begin (kept alive, or never sent a byte).
    idle: Arc<AtomicBool>,
}

/// A connection's place in `open` and `active`, given back however its thread ends.
struct Slot<'a> {
    server: &'a Server,
    id: u64,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut open) = self.server.open.lock() {
            open.remove(&self.id);
        }
        self.server.active.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Server {
    collector: Mutex<Collector>,
    active: AtomicUsize,
    stopping: AtomicBool,
    /// Open connections: to wake their readers at shutdown, and to close an idle one when a
    /// new client comes at the cap.
    open: Mutex<HashMap<u64, Open>>,
    next_id: AtomicU64,
    limits: Limits,
    tls: Option<tls::Reloading>,
    auth: Option<auth::BasicAuth>,
    /// Added to every response (`http_server_config.headers`).
    headers: Vec<(&'static str, String)>,
    /// /metrics answered with gzip, and without.
    gzipped: AtomicU64,
    identity: AtomicU64,
}

/// Serves until SIGTERM or SIGINT. Writes its address and its end to `log` (stderr).
pub(crate) fn run(o: Options, log: &mut dyn Write) -> Result<Status> {
    let signals = block_stop_signals()?;
    limit_arenas();
    let listener = TcpListener::bind(o.listen).map_err(|source| Error::Bind {
        addr: o.listen,
        source,
    })?;
    let addr = listener
        .local_addr()
        .map_err(io("reading the listening address"))?;
    let server = Arc::new(Server::new(o.collector, o.limits, o.web)?);
    let scheme = if server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let _ = writeln!(
        log,
        "backlogctl exporter: serving {scheme}://{addr}/metrics"
    );
    let acceptor = {
        let listener = listener
            .try_clone()
            .map_err(io("sharing the listening socket"))?;
        let server = server.clone();
        let max = o.max_connections;
        std::thread::Builder::new()
            .name("backlogctl-accept".into())
            .spawn(move || accept_loop(&server, &listener, max))
            .map_err(io("starting the acceptor thread"))?
    };
    let signal = signals.wait().map_err(|e| Error::Io {
        what: "waiting for signals",
        source: e.into(),
    })?;
    stop(&server, &listener, acceptor);
    let _ = writeln!(log, "backlogctl exporter: stopped on {signal}");
    Ok(Status::Ok)
}

/// An `Error::Io` saying `what` was being done.
fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// SIGTERM and SIGINT blocked, to be taken by `sigwait`. Called before any thread exists, so
/// that every thread inherits the mask and only sigwait sees them.
fn block_stop_signals() -> Result<nix::sys::signal::SigSet> {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block().map_err(|e| Error::Io {
        what: "blocking SIGTERM and SIGINT",
        source: e.into(),
    })?;
    Ok(signals)
}

impl Server {
    fn new(collector: Collector, limits: Limits, web: Option<WebConfig>) -> Result<Server> {
        let (path, tls, auth, headers) = match web {
            Some(w) => (w.path, w.tls, w.auth, w.headers),
            None => (Default::default(), None, None, Vec::new()),
        };
        let tls = match tls {
            // Loaded once more now: the files may have changed since the configuration was read.
            Some(t) => {
                Some(tls::Reloading::new(t).map_err(|reason| Error::web_config(path, reason))?)
            }
            None => None,
        };
        Ok(Server {
            collector: Mutex::new(collector),
            active: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            limits,
            tls,
            auth,
            headers,
            gzipped: AtomicU64::new(0),
            identity: AtomicU64::new(0),
        })
    }
}

/// Stops accepting, wakes idle connections and gives responses in flight `GRACE` to finish.
fn stop(server: &Server, listener: &TcpListener, acceptor: std::thread::JoinHandle<()>) {
    server.stopping.store(true, Ordering::SeqCst);
    // Wakes the accept() blocked on the listener (inet_shutdown disconnects a listener).
    let _ = nix::sys::socket::shutdown(listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    let _ = acceptor.join();
    if let Ok(open) = server.open.lock() {
        for o in open.values() {
            // Idle readers see end of file; a response being written still goes out.
            let _ = o.stream.shutdown(std::net::Shutdown::Read);
        }
    }
    let until = Instant::now() + GRACE;
    while server.active.load(Ordering::SeqCst) > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// glibc gives each thread that allocates its own arena (up to 8 per core), and keeps what is
/// freed in each: with threads per connection and per scrape, a long-running exporter's RSS
/// would creep up by whole expositions. Two arenas, and memory handed back after each scrape
/// (`give_back`), keep it flat (benches/exporter.sh).
fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
}

/// Returns the free memory of the arenas to the system after a scrape released its exposition.
fn give_back() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim is thread-safe and only releases free memory.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

fn accept_loop(server: &Arc<Server>, listener: &TcpListener, max: usize) {
    let busy = refuser(server.clone());
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(_) if server.stopping.load(Ordering::SeqCst) => return,
            // The client went away before we took it: nothing wrong here.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(nix::libc::ECONNABORTED | nix::libc::EINTR)
                ) =>
            {
                continue;
            }
            Err(_) => {
                // Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS): let connections close
                // before taking more, rather than spin.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if server.stopping.load(Ordering::SeqCst) {
            return;
        }
        // At the cap, an idle connection makes room (its reader sees end of file); only when
        // every connection is busy is the new one refused.
        if server.active.load(Ordering::SeqCst) >= max && !close_an_idle_one(server) {
            if let Some(busy) = &busy {
                let _ = busy.try_send(stream);
            }
            continue;
        }
        server.active.fetch_add(1, Ordering::SeqCst);
        let id = server.next_id.fetch_add(1, Ordering::Relaxed);
        // Idle once its thread waits for a first byte (Connection sets it).
        let idle = Arc::new(AtomicBool::new(false));
        if let (Ok(clone), Ok(mut open)) = (stream.try_clone(), server.open.lock()) {
            open.insert(
                id,
                Open {
                    stream: clone,
                    idle: idle.clone(),
                },
            );
        }
        let s = server.clone();
        let spawned = std::thread::Builder::new()
            .name("backlogctl-http".into())
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                let _slot = Slot { server: &s, id };
                connection(&s, stream, idle);
            });
        if spawned.is_err() {
            // The closure, and with it the slot, was never made: give the place back here.
            drop(Slot { server, id });
        }
    }
}

/// Closes one connection that is waiting for a request; false when there is none.
fn close_an_idle_one(server: &Server) -> bool {
    let Ok(open) = server.open.lock() else {
        return false;
    };
    let idle = open.values().find(|o| o.idle.load(Ordering::SeqCst));
    match idle {
        Some(o) => {
            o.idle.store(false, Ordering::SeqCst);
            let _ = o.stream.shutdown(std::net::Shutdown::Both);
            true
        }
        None => false,
    }
}

/// Past the connection cap: a short 503 on the refuser thread, so the acceptor never waits
/// (over TLS, after a handshake under the same short deadline).
fn refuser(server: Arc<Server>) -> Option<std::sync::mpsc::SyncSender<TcpStream>> {
    // Refusals waiting beyond this many are closed without a word.
    let (tx, rx) = std::sync::mpsc::sync_channel::<TcpStream>(64);
    let limits = Limits {
        head_time: Duration::from_millis(200),
        idle: Duration::from_millis(200),
        write_time: Duration::from_millis(200),
        ..Limits::default()
    };
    std::thread::Builder::new()
        .name("backlogctl-busy".into())
        .stack_size(CONNECTION_STACK)
        .spawn(move || {
            for stream in rx {
                match &server.tls {
                    None => refuse(Connection::new(stream, limits)),
                    Some(t) => {
                        let config = t.config(&mut std::io::stderr());
                        let deadline = Instant::now() + limits.head_time;
                        if let tls::Handshake::Done(s) =
                            tls::handshake(stream, config, deadline, &|_| {})
                        {
                            refuse(Connection::new(*s, limits));
                        }
                    }
                }
            }
        })
        .ok()?;
    Some(tx)
}

fn refuse<S: Timed>(mut conn: Connection<S>) {
    let _ = conn.read_request();
    let mut r = Response::text(503, "Service Unavailable", "too many connections\n");
    r.close = true;
    if conn.respond(false, &r).is_ok() {
        conn.close();
    }
}

/// A new connection on its own thread: the TLS handshake first when there is TLS (under the
/// head deadline, so a silent or broken client holds this thread only, and not for long).
fn connection(server: &Server, stream: TcpStream, idle: Arc<AtomicBool>) {
    let Some(t) = &server.tls else {
        return serve(
            server,
            Connection::new(stream, server.limits).with_idle_flag(idle),
        );
    };
    let config = t.config(&mut std::io::stderr());
    let deadline = Instant::now() + server.limits.head_time;
    let waiting = |w: bool| idle.store(w, Ordering::SeqCst);
    if let tls::Handshake::Done(s) = tls::handshake(stream, config, deadline, &waiting) {
        serve(
            server,
            Connection::new(*s, server.limits).with_idle_flag(idle),
        );
    }
}

fn serve<S: Timed>(server: &Server, mut conn: Connection<S>) {
    loop {
        let (head_only, mut response) = match conn.read_request() {
            Ok(req) => {
                let head_only = req.method == "HEAD";
                let mut r = match &server.auth {
                    Some(a) if !a.allows(&req.path, req.authorization.as_deref()) => {
                        let mut r = Response::text(401, "Unauthorized", "Unauthorized\n");
                        r.headers.push(("WWW-Authenticate", "Basic".into()));
                        r
                    }
                    _ => route(server, &req.method, &req.path, req.gzip),
                };
                r.close |= !req.keep_alive;
                (head_only, r)
            }
            Err(Refusal::Gone) => return,
            Err(Refusal::Answer(status, reason)) => {
                let mut r = Response::text(status, reason, format!("{reason}\n"));
                r.close = true;
                (false, r)
            }
        };
        response.close |= server.stopping.load(Ordering::SeqCst);
        for (name, value) in &server.headers {
            response.headers.push((name, value.clone().into()));
        }
        let written = conn.respond(head_only, &response);
        let close = response.close;
        if response.content_type == CONTENT_TYPE {
            drop(response);
            give_back();
        }
        if written.is_err() {
            return;
        }
        if close {
            conn.close();
            return;
        }
    }
}

const LANDING: &str = "<!DOCTYPE html>\n<html><head><title>backlogctl exporter</title></head>\n\
<body><h1>backlogctl exporter</h1>\n\
<p>Listen-queue overflow, per listener and per network namespace.</p>\n\
<ul><li><a href=\"/metrics\">/metrics</a>: Prometheus text format 0.0.4</li>\n\
<li><a href=\"/healthz\">/healthz</a>: liveness</li></ul>\n\
<p>On a host that drops connections: <code>backlogctl doctor</code>.</p>\n</body></html>\n";

fn route(server: &Server, method: &str, path: &str, gzip: bool) -> Response {
    if !matches!(path, "/" | "/metrics" | "/healthz") {
        return Response::text(404, "Not Found", "not found: try /metrics\n");
    }
    if method != "GET" && method != "HEAD" {
        let mut r = Response::text(405, "Method Not Allowed", "GET or HEAD only\n");
        r.headers.push(("Allow", "GET, HEAD".into()));
        return r;
    }
    match path {
        "/metrics" => metrics(server, gzip),
        "/healthz" => Response::text(200, "OK", "ok\n"),
        _ => Response {
            content_type: "text/html; charset=utf-8",
            ..Response::text(200, "OK", LANDING)
        },
    }
}

/// A scrape, gzipped when the client takes it. HEAD comes here too, so that its headers
/// (Content-Encoding, Content-Length) are those a GET would get.
fn metrics(server: &Server, gzip: bool) -> Response {
    // Serialised: one collection at a time, each with the cache the last one left.
    let mut collector = server
        .collector
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let scrape: crate::model::Scraped = match collector.scrape() {
        Ok(s) => s.into(),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "backlogctl exporter: scrape failed: {e}");
            return Response::text(500, "Internal Server Error", format!("error: {e}\n"));
        }
    };
    drop(collector);
    // Counted before it is written, so that a scrape sees itself.
    let counter = if gzip {
        &server.gzipped
    } else {
        &server.identity
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let exporter = render::metrics::Exporter {
        version: env!("CARGO_PKG_VERSION"),
        scrapes: [
            ("gzip", server.gzipped.load(Ordering::Relaxed)),
            ("identity", server.identity.load(Ordering::Relaxed)),
        ],
    };
    let mut r = Response {
        content_type: CONTENT_TYPE,
        body: render::metrics::pieces(&scrape, Some(&exporter)),
        ..Response::text(200, "OK", "")
    };
    // Caches must not hand a gzipped body to a client that did not ask for one, or the
    // reverse: every /metrics answer varies by Accept-Encoding, compressed or not.
    r.headers.push(("Vary", "Accept-Encoding".into()));
    if gzip && r.body.iter().map(Vec::len).sum::<usize>() >= GZIP_FROM {
        match gzip::gzip(&r.body, GZIP_LEVEL) {
            Ok(z) => {
                r.body = vec![z];
                r.headers.push(("Content-Encoding", "gzip".into()));
            }
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "backlogctl exporter: gzip failed: {e}");
            }
        }
    }
    r
}
