//! A minimal HTTP/1.1 server for the scrape endpoint (`GET`/`HEAD` of `/metrics` or `/`)
//! and the http_sd endpoint: one response per connection (`Connection: close`), the body
//! produced by a handler per request path.
//!
//! One thread serves the listener and every connection with `poll(2)`: request heads are
//! read without blocking (at most [`MAX_HEAD`] bytes), responses are written without
//! blocking (the unsent rest kept per connection), and each connection has a deadline
//! from its accept after which it is dropped, so an idle or slow client never holds up
//! the others. Past [`MAX_CONNECTIONS`] open connections a new one is answered 503.
//! At most [`MAX_RESPONSES_PER_WINDOW`] requests are answered per [`RATE_WINDOW`]; a
//! request beyond that waits (unread connections stay queued) for the next window, so
//! the CPU the endpoint takes (and makes its clients take) stays bounded, whatever the
//! clients do: 16 scrapers flat out must not starve the guest. The thread also runs at
//! nice [`NICE`], so under CPU contention the vCPU threads come first.

use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// The exposition format's content type.
pub(crate) const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A response body, shared between the connections sending it.
pub(crate) type Body = Arc<str>;

/// Answers a request path with `(content type, body)`, or `None` for 404. Called on the
/// server thread, one request at a time.
pub(crate) type Handler = Box<dyn FnMut(&str) -> Option<(&'static str, Body)> + Send>;

/// Open connections served at most; more are answered 503.
const MAX_CONNECTIONS: usize = 64;
/// Bytes of request head read at most.
const MAX_HEAD: usize = 8192;
/// How long a connection may take from its accept to the last byte of its response.
const DEADLINE: Duration = Duration::from_secs(5);
/// The window of the response rate cap.
pub(crate) const RATE_WINDOW: Duration = Duration::from_millis(100);
/// Requests answered at most per [`RATE_WINDOW`] (100 a second): far above any
/// scraper's need (Prometheus scrapes every few seconds), far below what a flat-out
/// client could take from the CPU the guest runs on.
const MAX_RESPONSES_PER_WINDOW: usize = 10;
/// The server thread's nice value: under CPU contention the vCPU threads come first.
const NICE: libc::c_int = 10;
/// How long the listener rests after `accept` fails (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The server's bounds (the constants above, smaller in tests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Open connections served at most.
    pub max_connections: usize,
    /// Per-connection deadline from accept.
    pub deadline: Duration,
    /// Requests answered at most per [`RATE_WINDOW`].
    pub responses_per_window: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            deadline: DEADLINE,
            responses_per_window: MAX_RESPONSES_PER_WINDOW,
        }
    }
}

/// Serves `listener` on its own thread (named `name`) for the life of the process.
pub(crate) fn spawn(listener: TcpListener, name: &'static str, handler: Handler) -> Result<()> {
    spawn_with(listener, name, handler, Limits::default())
}

/// [`spawn`] with explicit [`Limits`].
pub(crate) fn spawn_with(
    listener: TcpListener,
    name: &'static str,
    handler: Handler,
    limits: Limits,
) -> Result<()> {
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Thread(name, e))?;
    thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // SAFETY: setpriority takes no pointers; on Linux PRIO_PROCESS with who 0
            // sets the nice value of the calling thread only.
            if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) } != 0 {
                log::debug!("{name}: cannot lower the thread's priority");
            }
            Server::new(listener, name, handler, limits).run()
        })
        .map_err(|e| Error::Thread(name, e))?;
    Ok(())
}

/// A response being sent: its head, then its body (absent for HEAD and errors with
/// the body in the head), from byte `sent` of the two.
struct Out {
    head: Vec<u8>,
    body: Option<Body>,
    sent: usize,
}

impl Out {
    fn new(status: &str, content_type: &str, body: Body, head_only: bool) -> Out {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        Out {
            head: head.into_bytes(),
            body: (!head_only).then_some(body),
            sent: 0,
        }
    }

    /// Writes what the socket takes; `Ok(true)` once everything is sent. Head and body
    /// go out together (one `writev`): a process that exits (the VM ended) while a
    /// scrape is in flight leaves the client nothing or everything the socket took, not
    /// a header announcing a body that never comes.
    fn write(&mut self, stream: &mut impl Write) -> std::io::Result<bool> {
        loop {
            let body = self.body.as_deref().map_or(&[][..], str::as_bytes);
            let (head, body) = match self.sent.checked_sub(self.head.len()) {
                None => (&self.head[self.sent..], body),
                Some(off) if off < body.len() => (&[][..], &body[off..]),
                Some(_) => return Ok(true),
            };
            match stream.write_vectored(&[IoSlice::new(head), IoSlice::new(body)]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

struct Conn {
    stream: TcpStream,
    deadline: Instant,
    head: Vec<u8>,
    out: Option<Out>,
    /// Past the connection cap: answered 503.
    refused: bool,
    /// Its request is read and waits for the rate cap.
    waiting: bool,
}

/// What became of a connection after some progress.
enum Progress {
    Open,
    Done,
}

struct Server {
    listener: TcpListener,
    name: &'static str,
    handler: Handler,
    limits: Limits,
    conns: Vec<Conn>,
    accept_after: Option<Instant>,
    /// The current rate window's start and the responses begun in it.
    window: (Instant, usize),
}

impl Server {
    fn new(listener: TcpListener, name: &'static str, handler: Handler, limits: Limits) -> Self {
        Server {
            listener,
            name,
            handler,
            limits,
            conns: Vec::new(),
            accept_after: None,
            window: (Instant::now(), 0),
        }
    }

    fn run(mut self) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        loop {
            let now = Instant::now();
            if self.accept_after.is_some_and(|t| t <= now) {
                self.accept_after = None;
            }
            fds.clear();
            fds.push(libc::pollfd {
                fd: self.listener.as_raw_fd(),
                events: if self.accept_after.is_none() {
                    libc::POLLIN
                } else {
                    0
                },
                revents: 0,
            });
            fds.extend(self.conns.iter().map(|c| libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: if c.out.is_some() {
                    libc::POLLOUT
                } else if c.waiting {
                    0
                } else {
                    libc::POLLIN
                },
                revents: 0,
            }));
            let wake = self
                .conns
                .iter()
                .map(|c| c.deadline)
                .chain(self.accept_after)
                .chain(
                    self.conns
                        .iter()
                        .any(|c| c.waiting)
                        .then_some(self.window.0 + RATE_WINDOW),
                )
                .min();
            let timeout = wake.map_or(-1, |t| {
                // Round up so a wake-up never comes just before the deadline it is for.
                let ms = t.saturating_duration_since(now).as_micros().div_ceil(1000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            });
            // SAFETY: `fds` is a live, initialised array of `fds.len()` pollfd structs
            // that poll may write `revents` into; every fd in it is owned by
            // `self.listener` or a connection in `self.conns`, open for the whole call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != ErrorKind::Interrupted {
                    log::warn!("{}: poll failed: {e}", self.name);
                    thread::sleep(ACCEPT_BACKOFF);
                }
                continue;
            }
            let now = Instant::now();
            // Connections first (slot i + 1 of `fds` is connection i until accept adds
            // more), then the listener.
            let mut drop_conn = Vec::with_capacity(self.conns.len());
            for i in 0..self.conns.len() {
                let revents = fds[i + 1].revents;
                let hung_up = revents & (libc::POLLHUP | libc::POLLERR) != 0;
                let open = if self.conns[i].waiting && hung_up {
                    false
                } else if revents != 0 || self.conns[i].waiting {
                    matches!(self.progress(i), Progress::Open)
                } else {
                    true
                };
                let late = open && self.conns[i].deadline <= now;
                if late {
                    log::debug!("{}: a connection passed its deadline", self.name);
                }
                drop_conn.push(!open || late);
            }
            let mut gone = drop_conn.into_iter();
            self.conns.retain(|_| !gone.next().unwrap_or(false));
            if fds[0].revents != 0 {
                self.accept(now);
            }
        }
    }

    /// Accepts every pending connection.
    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let served = self.conns.iter().filter(|c| !c.refused).count();
                    let refused = served >= self.limits.max_connections;
                    // Refused connections still read their request before the 503 (a
                    // close with the request unread would reset the answer away), up to
                    // as many again; past that a connection is closed at once.
                    if self.conns.len() >= 2 * self.limits.max_connections
                        || stream.set_nonblocking(true).is_err()
                    {
                        continue;
                    }
                    let conn = Conn {
                        stream,
                        deadline: now + self.limits.deadline,
                        head: Vec::new(),
                        out: None,
                        refused,
                        waiting: false,
                    };
                    self.conns.push(conn);
                    // Most requests are already there: serve at once.
                    let i = self.conns.len() - 1;
                    if let Progress::Done = self.progress(i) {
                        self.conns.pop();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{}: accept failed: {e}", self.name);
                    self.accept_after = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    /// Reads the request head or writes the response of connection `i`, as far as the
    /// socket allows without blocking.
    fn progress(&mut self, i: usize) -> Progress {
        let now = Instant::now();
        if now.saturating_duration_since(self.window.0) >= RATE_WINDOW {
            self.window = (now, 0);
        }
        let conn = &mut self.conns[i];
        if conn.out.is_none() {
            match read_head(&mut conn.stream, &mut conn.head) {
                Ok(false) => return Progress::Open,
                Ok(true) if conn.head.is_empty() => return Progress::Done,
                Ok(true) if conn.refused => {
                    conn.out = Some(Out::new(
                        "503 Service Unavailable",
                        TEXT_FORMAT,
                        "busy\n".into(),
                        false,
                    ));
                }
                Ok(true) if self.window.1 >= self.limits.responses_per_window => {
                    conn.waiting = true;
                    return Progress::Open;
                }
                Ok(true) => {
                    self.window.1 += 1;
                    conn.waiting = false;
                    let out = respond(&conn.head, &mut *self.handler);
                    conn.head = Vec::new();
                    conn.out = Some(out);
                }
                Err(e) => {
                    log::debug!("{}: reading a request failed: {e}", self.name);
                    return Progress::Done;
                }
            }
        }
        let out = conn.out.as_mut().expect("a response is set above");
        match out.write(&mut conn.stream) {
            Ok(false) => Progress::Open,
            Ok(true) => {
                let _ = conn.stream.shutdown(std::net::Shutdown::Write);
                Progress::Done
            }
            Err(e) => {
                log::debug!("{}: writing a response failed: {e}", self.name);
                Progress::Done
            }
        }
    }
}

/// Reads what is there of a request head into `head`; `Ok(true)` once it is complete
/// (blank line), at its size cap, or the peer has finished sending.
fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() >= MAX_HEAD {
            return Ok(true);
        }
        let room = (MAX_HEAD - head.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Ok(true),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The response to request `head`.
fn respond(
    head: &[u8],
    handler: &mut (dyn FnMut(&str) -> Option<(&'static str, Body)> + Send),
) -> Out {
    let head = String::from_utf8_lossy(head);
    let request_line = head.lines().next().unwrap_or("");
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if !matches!(method, "GET" | "HEAD") {
        return Out::new(
            "405 Method Not Allowed",
            TEXT_FORMAT,
            "GET only\n".into(),
            false,
        );
    }
    match handler(path) {
        Some((kind, body)) => Out::new("200 OK", kind, body, method == "HEAD"),
        None => Out::new("404 Not Found", TEXT_FORMAT, "not found\n".into(), false),
    }
}

#[cfg(test)]
#[path = "http_server_tests.rs"]
mod tests;
