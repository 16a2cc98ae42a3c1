//! The HTTP/1.1 the exporter needs, on `std::net`: request heads (their syntax checked by
//! httparse) read under a size limit, a header-count limit and one deadline for the whole head
//! (a client sending a byte every few seconds is cut off, not waited for), keep-alive, and
//! fixed-length responses. No bodies are accepted: every endpoint is a GET. Generic over the
//! stream so tests drive it from memory.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// What a client may send and how long it may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Request line plus headers.
    pub head_bytes: usize,
    pub headers: usize,
    /// From the first byte of a request to the end of its head.
    pub head_time: Duration,
    /// Between requests on a kept-alive connection (before the first: `head_time`).
    pub idle: Duration,
    /// For writing a whole response.
    pub write_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            head_bytes: 8 * 1024,
            headers: 64,
            head_time: Duration::from_secs(10),
            idle: Duration::from_secs(90),
            write_time: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// Whether the client wants the connection kept open after the response.
    pub keep_alive: bool,
    /// Whether its Accept-Encoding takes gzip (`accepts_gzip`).
    pub gzip: bool,
    /// Its `Authorization` header, for basic auth.
    pub authorization: Option<String>,
}

/// Why a request could not be read: the status to answer with (then close), or nothing to say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The client closed, went idle or was too slow: close without a word.
    Gone,
    Answer(u16, &'static str),
}

/// A stream whose blocking reads can be bounded in time.
pub(crate) trait Timed: Read + Write {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    /// Sends FIN: the peer sees the end of the response.
    fn shutdown_write(&self) -> io::Result<()>;
    /// Before the FIN, what the protocol says at its end (TLS: close_notify).
    fn close_notify(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Timed for std::net::TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, t)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        std::net::TcpStream::set_write_timeout(self, t)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

/// How much of what a refused client still sends is read and thrown away before closing, and
/// for how long: closing a socket with unread data sends RST, which can destroy the response
/// before the client has read it.
const LINGER_BYTES: usize = 64 * 1024;
const LINGER_TIME: Duration = Duration::from_millis(500);

/// Reads requests off one connection; bytes past a head (a pipelined request) are kept.
pub(crate) struct Connection<S> {
    stream: S,
    buf: Vec<u8>,
    limits: Limits,
    /// Whether a request was read: a new connection gets `head_time` for its first byte, a
    /// kept-alive one `idle` between requests.
    served: bool,
    /// Set while waiting for the first byte of a request, for a server that makes room by
    /// closing idle connections; a connection halfway through a head is not idle.
    idle: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl<S: Timed> Connection<S> {
    pub(crate) fn new(stream: S, limits: Limits) -> Self {
        Connection {
            stream,
            buf: Vec::with_capacity(1024),
            limits,
            served: false,
            idle: None,
        }
    }

    /// Keeps `flag` set while this connection waits for a request to begin.
    pub(crate) fn with_idle_flag(
        mut self,
        flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        self.idle = Some(flag);
        self
    }

    fn set_idle(&self, idle: bool) {
        if let Some(f) = &self.idle {
            f.store(idle, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// The next request's head.
    pub(crate) fn read_request(&mut self) -> Result<Request, Refusal> {
        let end = self.read_head();
        self.set_idle(false);
        let end = end?;
        let head = self.buf.drain(..end).collect::<Vec<u8>>();
        self.served = true;
        parse(&head, self.limits.headers)
    }

    fn read_head(&mut self) -> Result<usize, Refusal> {
        // Idle between requests; once a byte has come, the whole head has one deadline.
        skip_leading_newlines(&mut self.buf);
        let mut deadline = (!self.buf.is_empty()).then(|| Instant::now() + self.limits.head_time);
        loop {
            if let Some(end) = find_end(&self.buf) {
                return Ok(end);
            }
            if self.buf.len() >= self.limits.head_bytes {
                return Err(Refusal::Answer(431, "Request Header Fields Too Large"));
            }
            let wait = match deadline {
                None if self.served => self.limits.idle,
                // A connection that never sends anything holds a slot: not for long.
                None => self.limits.head_time,
                Some(d) => d.saturating_duration_since(Instant::now()),
            };
            if wait.is_zero() {
                return Err(Refusal::Answer(408, "Request Timeout"));
            }
            self.set_idle(self.buf.is_empty());
            self.stream
                .set_read_timeout(Some(wait))
                .map_err(|_| Refusal::Gone)?;
            let mut chunk = [0u8; 1024];
            let room = (self.limits.head_bytes - self.buf.len()).min(chunk.len());
            match self.stream.read(&mut chunk[..room]) {
                Ok(0) => return Err(Refusal::Gone),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    skip_leading_newlines(&mut self.buf);
                    if !self.buf.is_empty() {
                        deadline.get_or_insert_with(|| Instant::now() + self.limits.head_time);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) && !self.buf.is_empty() =>
                {
                    return Err(Refusal::Answer(408, "Request Timeout"));
                }
                Err(_) => return Err(Refusal::Gone),
            }
        }
    }

    /// Ends the connection after a response: FIN first, then what the client still sends is
    /// drained (bounded in bytes and time) so that the close does not turn into a reset.
    pub(crate) fn close(mut self) {
        let _ = self.stream.close_notify();
        linger(&mut self.stream);
    }

    /// Writes one response; HEAD gets the headers only.
    pub(crate) fn respond(&mut self, head_only: bool, r: &Response) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            r.status,
            r.reason,
            r.content_type,
            r.body.iter().map(Vec::len).sum::<usize>()
        );
        for (k, v) in &r.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(if r.close {
            "Connection: close\r\n\r\n"
        } else {
            "Connection: keep-alive\r\n\r\n"
        });
        // One deadline for the whole response: a socket timeout alone bounds each send(), and
        // a client reading a few bytes at a time would hold the thread and the body for ever.
        let deadline = Instant::now() + self.limits.write_time;
        self.write_by(head.as_bytes(), deadline)?;
        if !head_only {
            for piece in &r.body {
                self.write_by(piece, deadline)?;
            }
        }
        self.stream.flush()
    }

    fn write_by(&mut self, mut data: &[u8], deadline: Instant) -> io::Result<()> {
        while !data.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.stream.set_write_timeout(Some(left))?;
            match self.stream.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Sends FIN, then reads and drops what the peer still sends (bounded in bytes and time), so
/// that the close does not turn into a reset that destroys the response.
pub(crate) fn linger<S: Timed>(stream: &mut S) {
    if stream.shutdown_write().is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut drained = 0;
    let mut chunk = [0u8; 4096];
    while drained < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

/// Whether an Accept-Encoding value (every such header of a request, joined by commas) takes
/// gzip: `gzip` (or `x-gzip`) with a q-value above 0, or else `*` above 0 (RFC 9110 §12.5.3).
/// `gzip;q=0` refuses it even after a `*`; an element with a malformed q-value is ignored.
pub(crate) fn accepts_gzip(value: &str) -> bool {
    let mut gzip = None;
    let mut star = None;
    for element in value.split(',') {
        let mut parts = element.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let mut q = Some(true);
        for param in parts {
            if let Some((k, v)) = param.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = qvalue(v.trim());
            }
        }
        let Some(positive) = q else { continue };
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(positive);
        } else if coding == "*" {
            star = Some(positive);
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// A q-value (`0`, `0.5`, `1`, `1.000`): whether it is above zero; None when malformed.
fn qvalue(v: &str) -> Option<bool> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    match int {
        "0" if frac.len() <= 3 && digits(frac) => Some(frac.bytes().any(|b| b != b'0')),
        "1" if frac.len() <= 3 && frac.bytes().all(|b| b == b'0') => Some(true),
        _ => None,
    }
}

/// A response with a body of known length.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    pub reason: &'static str,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, std::borrow::Cow<'static, str>)>,
    /// Sent one piece after the other (the exposition comes in pieces).
    pub body: Vec<Vec<u8>>,
    /// Close the connection after it.
    pub close: bool,
}

impl Response {
    pub(crate) fn text(status: u16, reason: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: vec![body.into()],
            close: false,
        }
    }
}

/// End of the head: just past its blank line, `\r\n\r\n` or a bare `\n\n`, whichever
/// comes first (a pipelined request may use the other).
fn find_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Empty lines before a request line are ignored (RFC 9112 §2.2): a client may send a CRLF
/// after a request.
fn skip_leading_newlines(buf: &mut Vec<u8>) {
    let n = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    buf.drain(..n);
}

/// The request's head, its syntax checked by httparse (RFC 9112 §3: a token method, one
/// space each side of the target, `HTTP/1.0` or `HTTP/1.1`, token header names), its meaning
/// here: a Host exactly once on HTTP/1.1 (§3.2), one Authorization, no body, and the target in
/// origin form or, as a server must take it, absolute form (§3.2.2).
fn parse(head: &[u8], max_headers: usize) -> Result<Request, Refusal> {
    const BAD: Refusal = Refusal::Answer(400, "Bad Request");
    std::str::from_utf8(head).map_err(|_| BAD)?;
    let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(BAD),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::Answer(431, "Request Header Fields Too Large"));
        }
        Err(httparse::Error::Version) if names_http_version(head) => {
            return Err(Refusal::Answer(505, "HTTP Version Not Supported"));
        }
        Err(_) => return Err(BAD),
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(BAD);
    };
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(BAD);
    }
    let mut keep_alive = minor == 1;
    let mut accept_encoding = String::new();
    let mut authorization = None;
    let mut hosts = 0;
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| BAD)?.trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            // Repeated headers are one list (RFC 9110 §5.3).
            accept_encoding.push(',');
            accept_encoding.push_str(value);
        } else if name.eq_ignore_ascii_case("authorization") {
            // Two sets of credentials: which one would be checked is not for us to guess.
            if authorization.replace(value.to_string()).is_some() {
                return Err(BAD);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("content-length") && value != "0")
        {
            // Nothing here takes a body; reading one past its head is not worth the risk.
            return Err(Refusal::Answer(413, "Content Too Large"));
        }
    }
    if (minor == 1 && hosts != 1) || hosts > 1 {
        return Err(BAD);
    }
    Ok(Request {
        method: method.to_string(),
        path: target_path(target).ok_or(BAD)?.to_string(),
        keep_alive,
        gzip: accepts_gzip(&accept_encoding),
        authorization,
    })
}

/// The path of a request target, without its query: `/metrics?x` (origin form) or
/// `http://host:9100/metrics` (absolute form, `/` when it has no path); None for the other
/// forms (`*`, `host:port`), which no endpoint here takes.
fn target_path(target: &str) -> Option<&str> {
    let path = if target.starts_with('/') {
        target
    } else {
        let scheme = target.find("://")?;
        let name = &target[..scheme];
        if !name.eq_ignore_ascii_case("http") && !name.eq_ignore_ascii_case("https") {
            return None;
        }
        let rest = &target[scheme + 3..];
        if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
            return None;
        }
        rest.find(['/', '?', '#']).map_or("/", |i| &rest[i..])
    };
    let path = path.split(['?', '#']).next().unwrap_or("/");
    Some(if path.is_empty() { "/" } else { path })
}

/// Whether the request line ends in `HTTP/x.y`, of a version httparse does not take.
fn names_http_version(head: &[u8]) -> bool {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.rsplit(|b| *b == b' ')
        .next()
        .is_some_and(|v| v.starts_with(b"HTTP/") && v.len() > 5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A stream from scripted reads: data, or a timeout.
    struct Script {
        reads: VecDeque<Option<Vec<u8>>>,
        written: Vec<u8>,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.reads.pop_front() {
                None => Ok(0),
                Some(None) => Err(io::ErrorKind::WouldBlock.into()),
                Some(Some(mut data)) => {
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    if n < data.len() {
                        self.reads.push_front(Some(data.split_off(n)));
                    }
                    Ok(n)
                }
            }
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Timed for Script {
        fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
        fn set_write_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
        fn shutdown_write(&self) -> io::Result<()> {
            Ok(())
        }
    }

    fn conn(reads: Vec<Option<&[u8]>>) -> Connection<Script> {
        Connection::new(
            Script {
                reads: reads.into_iter().map(|r| r.map(<[u8]>::to_vec)).collect(),
                written: Vec::new(),
            },
            Limits::default(),
        )
    }

    #[test]
    fn a_prometheus_scrape_and_a_pipelined_second_request() {
        let mut c = conn(vec![Some(
            b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\nUser-Agent: Prometheus/2.53\r\n\r\nHEAD / HTTP/1.0\r\n\r\n",
        )]);
        let r = c.read_request().unwrap();
        assert_eq!(
            r,
            Request {
                method: "GET".into(),
                path: "/metrics".into(),
                keep_alive: true,
                gzip: true,
                authorization: None,
            }
        );
        let r = c.read_request().unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("HEAD", "/"));
        assert!(!r.keep_alive, "HTTP/1.0 closes by default");
        assert_eq!(c.read_request(), Err(Refusal::Gone));
    }

    #[test]
    fn blank_lines_between_requests_and_mixed_terminators() {
        // A CRLF after a request, then the next one; a bare-LF head before a CRLF one.
        let mut c = conn(vec![Some(
            b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n\r\nGET /b HTTP/1.1\nHost: a\n\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n",
        )]);
        for path in ["/a", "/b", "/c"] {
            assert_eq!(c.read_request().unwrap().path, path);
        }
        // A trailing CRLF alone is not the start of a request: the connection stays idle.
        let mut idle = conn(vec![Some(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\n"), None]);
        idle.read_request().unwrap();
        assert_eq!(idle.read_request(), Err(Refusal::Gone));
    }

    #[test]
    fn absolute_form_targets_are_taken_as_rfc_9112_says() {
        for (target, path) in [
            ("http://x:9100/metrics?a=1", "/metrics"),
            ("HTTP://x", "/"),
            ("https://x?q", "/"),
            ("/healthz#f", "/healthz"),
        ] {
            let head = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
            let got = conn(vec![Some(head.as_bytes())]).read_request();
            assert_eq!(got.map(|r| r.path), Ok(path.to_string()), "{target}");
        }
    }

    #[test]
    fn heads_arriving_in_pieces_are_assembled() {
        let mut c = conn(vec![
            Some(b"GE"),
            Some(b"T /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r"),
            Some(b"\n\r\n"),
        ]);
        let r = c.read_request().unwrap();
        assert_eq!(r.path, "/healthz");
        assert!(!r.keep_alive);
    }

    #[test]
    fn limits_and_malformed_heads_are_refused_with_a_status() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
        let many: String = (0..100).map(|i| format!("H{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let cases: [(&[u8], u16); 16] = [
            (big.as_bytes(), 431),
            (many.as_bytes(), 431),
            (b"GET /\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"get / HTTP/1.1\r\n\r\n", 400),
            (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 413),
            (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 413),
            // RFC 9112 §3.2: HTTP/1.1 needs exactly one Host.
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400),
            // Two sets of credentials, and a header name that is no token.
            (b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic YTpi\r\nAuthorization: Basic Yjpj\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX\x01: x\r\n\r\n", 400),
            (b"GET ftp://x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ];
        for (input, status) in cases {
            let got = conn(vec![Some(input)]).read_request();
            assert!(
                matches!(got, Err(Refusal::Answer(s, _)) if s == status),
                "{:?} -> {got:?}",
                String::from_utf8_lossy(&input[..input.len().min(40)])
            );
        }
    }

    #[test]
    fn a_slow_head_times_out_and_an_idle_connection_just_closes() {
        let mut slow = conn(vec![Some(b"GET / HTTP/1.1\r\n"), None]);
        assert_eq!(
            slow.read_request(),
            Err(Refusal::Answer(408, "Request Timeout"))
        );
        let mut idle = conn(vec![None]);
        assert_eq!(idle.read_request(), Err(Refusal::Gone));
    }

    #[test]
    fn responses_carry_length_and_connection_and_head_has_no_body() {
        let mut c = conn(vec![]);
        let mut r = Response::text(200, "OK", "ok\n");
        c.respond(false, &r).unwrap();
        r.close = true;
        r.headers.push(("Allow", "GET, HEAD".into()));
        c.respond(true, &r).unwrap();
        let out = String::from_utf8(c.stream.written).unwrap();
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\
             Connection: keep-alive\r\n\r\nok\n\
             HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\
             Allow: GET, HEAD\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn accept_encoding_takes_gzip_only_when_its_q_value_is_above_zero() {
        let cases = [
            ("gzip", true),
            ("GZIP", true),
            ("x-gzip", true),
            ("gzip, deflate, br", true),
            ("identity;q=1, gzip;q=0.001", true),
            ("gzip;q=1.000", true),
            ("gzip ; q=0.5", true),
            ("*", true),
            ("br, *;q=0.1", true),
            ("", false),
            ("identity", false),
            ("deflate, br", false),
            ("gzip;q=0", false),
            ("gzip;q=0.000", false),
            ("gzip;Q=0", false),
            ("*, gzip;q=0", false),
            ("gzip;q=0, *", false),
            ("*;q=0", false),
            ("gzip;q=2", false),
            ("gzip;q=0.0001", false),
            ("gzip;q=abc", false),
            ("gzip;q=abc, *", true),
            (",,gzip", true),
            ("gzipped", false),
        ];
        for (value, want) in cases {
            assert_eq!(accepts_gzip(value), want, "{value:?}");
        }
    }

    #[test]
    fn repeated_accept_encoding_headers_are_one_list_and_authorization_is_kept() {
        let mut c = conn(vec![Some(
            b"GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: br\r\naccept-encoding: gzip;q=0.8\r\n\
              Authorization: Basic YTpi\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip;q=0\r\n\r\n",
        )]);
        let r = c.read_request().unwrap();
        assert!(r.gzip);
        assert_eq!(r.authorization.as_deref(), Some("Basic YTpi"));
        let r = c.read_request().unwrap();
        assert!(!r.gzip && r.authorization.is_none());
    }
}
