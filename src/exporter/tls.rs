//! TLS for the exporter: the handshake runs on the connection's own thread, under the
//! connection cap and the head deadline, never on the acceptor, so a client that connects and
//! sends nothing, half a ClientHello or garbage holds one slot for at most `head_time` and
//! never delays another scrape. A client speaking plain HTTP to the TLS port gets a plain-text
//! 400 and a close, as Go's servers answer it.
//!
//! Certificate reload: before each new connection's handshake, the certificate and key files'
//! modification times are compared with those last loaded; when one changed, both are read
//! again (a renewal by cert-manager or certbot is picked up by the next scrape, no signal
//! needed). A new pair that does not load is reported once on stderr and the last good one is
//! kept: a half-written renewal never takes the exporter down.

use std::io::{self, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::http::Timed;
use super::web_config::TlsSettings;
use crate::error::WebConfigError;

/// A TLS stream over TCP, as the HTTP layer reads and writes it.
pub(crate) type TlsStream = StreamOwned<ServerConnection, TcpStream>;

impl Timed for TlsStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(t)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_write_timeout(t)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.sock.shutdown(std::net::Shutdown::Write)
    }
    fn close_notify(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.sock)?;
        }
        Ok(())
    }
}

/// The server configuration in use, and what it was loaded from.
pub(crate) struct Reloading {
    settings: TlsSettings,
    current: Mutex<Loaded>,
}

struct Loaded {
    config: Arc<ServerConfig>,
    stamps: Vec<Option<SystemTime>>,
    /// The reason the files on disk did not load, already reported.
    failed: Option<String>,
}

fn stamps(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

impl Reloading {
    /// Loads the certificate and key now; the error is the file's problem.
    pub(crate) fn new(settings: TlsSettings) -> Result<Reloading, WebConfigError> {
        let stamps = stamps(&settings.files());
        let config = settings.build()?;
        Ok(Reloading {
            settings,
            current: Mutex::new(Loaded {
                config,
                stamps,
                failed: None,
            }),
        })
    }

    /// The configuration for a new connection: reloaded first when the files changed.
    pub(crate) fn config(&self, log: &mut dyn Write) -> Arc<ServerConfig> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let files = self.settings.files();
        if !files.is_empty() {
            let now = stamps(&files);
            if now != current.stamps {
                match self.settings.build() {
                    Ok(config) => {
                        current.config = config;
                        current.stamps = now;
                        current.failed = None;
                        let _ = writeln!(log, "backlogctl exporter: TLS certificate reloaded");
                    }
                    Err(e) => {
                        let e = e.to_string();
                        if current.failed.as_deref() != Some(e.as_str()) {
                            let _ = writeln!(
                                log,
                                "backlogctl exporter: keeping the last TLS certificate: {e}"
                            );
                            current.failed = Some(e);
                        }
                    }
                }
            }
        }
        current.config.clone()
    }
}

/// What became of a connection's handshake.
pub(crate) enum Handshake {
    Done(Box<TlsStream>),
    /// Plain HTTP on the TLS port: answered with a 400 in clear, then closed.
    PlainHttp,
    /// Timed out, closed, or not TLS: nothing to say.
    Failed,
}

/// The answer Go's servers give to HTTP on a TLS port.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; \
charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Completes the TLS handshake on `sock` by `deadline`. `waiting` is told while no byte has
/// come yet (such a connection may be closed to make room at the cap).
pub(crate) fn handshake(
    sock: TcpStream,
    config: Arc<ServerConfig>,
    deadline: Instant,
    waiting: &dyn Fn(bool),
) -> Handshake {
    // The first byte tells TLS (a handshake record, 0x16) from a request line.
    waiting(true);
    let mut first = [0u8; 1];
    let peeked = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
            break None;
        }
        match sock.peek(&mut first) {
            Ok(1) => break Some(first[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            _ => break None,
        }
    };
    waiting(false);
    match peeked {
        Some(0x16) => {}
        Some(b'A'..=b'Z') => {
            let mut sock = sock;
            let _ = sock.set_write_timeout(Some(Duration::from_secs(1)));
            if sock.write_all(PLAIN_HTTP_ANSWER).is_ok() {
                super::http::linger(&mut sock);
            }
            return Handshake::PlainHttp;
        }
        Some(_) => {
            // Not TLS: closed at once, but with a FIN, not the reset unread bytes would cause.
            let mut sock = sock;
            super::http::linger(&mut sock);
            return Handshake::Failed;
        }
        None => return Handshake::Failed,
    }
    let Ok(conn) = ServerConnection::new(config) else {
        return Handshake::Failed;
    };
    let mut stream = StreamOwned::new(conn, sock);
    while stream.conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero()
            || stream.sock.set_read_timeout(Some(left)).is_err()
            || stream.sock.set_write_timeout(Some(left)).is_err()
        {
            return Handshake::Failed;
        }
        match stream.conn.complete_io(&mut stream.sock) {
            Ok((0, 0)) if stream.conn.is_handshaking() => return Handshake::Failed,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                // A failed handshake may leave an alert to send; a best effort.
                let _ = stream.conn.write_tls(&mut stream.sock);
                return Handshake::Failed;
            }
        }
    }
    Handshake::Done(Box::new(stream))
}
