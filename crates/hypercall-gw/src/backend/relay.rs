//! The VMM side of one external service: an acceptor thread on the listening socket
//! and a relay thread that owns the connection.
//!
//! The relay thread forwards jobs as REQUESTs with fresh ids and matches RESPONSEs to
//! them (completions may come in any order). Every job gets exactly one reply: the
//! backend's response, or EBUSY when no backend is connected, when the connection
//! breaks, or when a request waits longer than the timeout, which also closes the
//! connection (a stalled backend) so that late responses cannot be mistaken. A new
//! backend may connect as soon as the old connection is gone.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::proto::{self, Msg};
use super::RelayEvent;
use crate::abi::{Response, Status};
use crate::config::{BackendMode, GuestMemoryShare};
use crate::error::{Error, Result};
use crate::metrics::{Path, Recorder};
use crate::queue::{Ctl, QueuePort};
use crate::service::Job;
use crate::sys::poll_readable;

/// What a relay needs.
pub(crate) struct RelayParams {
    pub vm: String,
    pub first_nr: u32,
    pub count: u32,
    pub socket: PathBuf,
    pub mode: BackendMode,
    pub queue: Option<QueuePort>,
    pub share: Option<GuestMemoryShare>,
    pub timeout: Duration,
}

/// The gateway's handle on a relay.
pub(crate) struct RelayHandle {
    /// Where jobs for the backend go.
    pub jobs: Sender<Job>,
    events: Sender<RelayEvent>,
    stop: Arc<EventFd>,
    threads: Vec<JoinHandle<()>>,
    /// The socket file, removed once the acceptor has stopped.
    socket: Option<PathBuf>,
}

impl RelayHandle {
    /// Stops both threads and removes the socket file.
    pub fn stop(&mut self) {
        let _ = self.stop.write(1);
        let _ = self.events.send(RelayEvent::Stop);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(p) = self.socket.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Longest time a connecting backend may take to say HELLO (or the backend timeout,
/// if shorter). Each connection is read on its own thread, so a silent client delays
/// nobody else.
pub(crate) const HELLO_DEADLINE: Duration = Duration::from_secs(2);
/// Connections that may be saying HELLO at once; more are closed at once.
pub(crate) const MAX_HANDSHAKES: usize = 16;

/// Binds the socket (mode 0600, never over a live listener or a non-socket) and starts
/// the acceptor and relay threads.
pub(crate) fn spawn_relay(p: RelayParams) -> Result<RelayHandle> {
    let path = p.socket.display().to_string();
    let listener = guard::bind_private(&p.socket).map_err(Error::Bind)?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Socket(path.clone(), e))?;
    let stop = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?);
    let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
    let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
    let name = format!("hcgw-accept-{:#x}", p.first_nr);
    let (stop2, ev2, timeout) = (stop.clone(), ev_tx.clone(), p.timeout);
    let check = guard::PeerCheck::new(&path);
    let acceptor = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || accept_loop(listener, stop2, ev2, timeout.min(HELLO_DEADLINE), check))
        .map_err(|e| Error::Spawn(name, e))?;
    let name = format!("hcgw-relay-{:#x}", p.first_nr);
    let socket = Some(p.socket.clone());
    let relay = Relay {
        rec: Recorder::new(&p.vm),
        p,
        events: ev_tx.clone(),
        conn: None,
        next_conn: 1,
        next_id: 1,
        pending: HashMap::new(),
    };
    let main = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || relay.run(jobs_rx, ev_rx))
        .map_err(|e| Error::Spawn(name, e))?;
    Ok(RelayHandle {
        jobs: jobs_tx,
        events: ev_tx,
        stop,
        threads: vec![acceptor, main],
        socket,
    })
}

/// Accepts connections; each one's HELLO is read on its own thread within `deadline`.
fn accept_loop(
    listener: UnixListener,
    stop: Arc<EventFd>,
    events: Sender<RelayEvent>,
    deadline: Duration,
    check: guard::PeerCheck,
) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let ready = poll_readable(&[listener.as_raw_fd(), stop.as_raw_fd()], None);
        if ready[1] {
            return;
        }
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        if !check.allow(&stream) {
            guard::guest_log!(
                log::Level::Warn,
                "hypercall-gw: refused a backend connection from another uid"
            );
            continue;
        }
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_HANDSHAKES {
            active.fetch_sub(1, Ordering::AcqRel);
            guard::guest_log!(
                log::Level::Warn,
                "hypercall-gw: too many backend connections saying nothing; one closed"
            );
            continue;
        }
        let (active, events) = (active.clone(), events.clone());
        let spawned = std::thread::Builder::new()
            .name("hcgw-hello".into())
            .spawn(move || {
                handshake(stream, &events, deadline);
                active.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            guard::guest_log!(log::Level::Warn, "hypercall-gw: cannot read a HELLO");
        }
    }
}

/// Reads one connection's HELLO within `deadline` and hands it to the relay thread.
fn handshake(stream: UnixStream, events: &Sender<RelayEvent>, deadline: Duration) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(deadline));
    let _ = stream.set_write_timeout(Some(deadline));
    match proto::recv(&stream) {
        Ok((
            Msg::Hello {
                magic: proto::MAGIC,
                version: proto::PROTOCOL_VERSION,
                mode,
            },
            _,
        )) => {
            let _ = stream.set_read_timeout(None);
            let _ = events.send(RelayEvent::Connected { stream, mode });
        }
        Ok((Msg::Hello { .. }, _)) => {
            let reject = Msg::Reject {
                reason: proto::REJECT_VERSION,
            };
            let _ = proto::send(&stream, &reject, &[]);
        }
        Ok(_) | Err(_) => guard::guest_log!(
            log::Level::Warn,
            "hypercall-gw: backend connection without HELLO"
        ),
    }
}

struct Conn {
    id: u64,
    sock: Arc<UnixStream>,
}

struct Relay {
    p: RelayParams,
    rec: Recorder,
    events: Sender<RelayEvent>,
    conn: Option<Conn>,
    next_conn: u64,
    next_id: u64,
    pending: HashMap<u64, (Job, Instant)>,
}

impl Relay {
    fn run(mut self, jobs: Receiver<Job>, events: Receiver<RelayEvent>) {
        loop {
            let wait = self
                .pending
                .values()
                .map(|(_, t)| (*t + self.p.timeout).saturating_duration_since(Instant::now()))
                .min()
                .unwrap_or(Duration::from_millis(500));
            select! {
                recv(jobs) -> j => match j {
                    Ok(job) => self.forward(job),
                    Err(_) => break,
                },
                recv(events) -> e => match e {
                    Ok(RelayEvent::Stop) | Err(_) => break,
                    Ok(ev) => self.event(ev),
                },
                default(wait) => {},
            }
            self.expire();
        }
        self.drop_conn("gateway shutting down");
        for job in jobs.try_iter() {
            job.reply.send(Response::err(Status::Ebusy), Path::Relay);
        }
    }

    fn forward(&mut self, job: Job) {
        let Some(c) = &self.conn else {
            job.reply.send(Response::err(Status::Ebusy), Path::Relay);
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        let msg = Msg::Request { id, req: job.req };
        if let Err(e) = proto::send(&c.sock, &msg, &[]) {
            job.reply.send(Response::err(Status::Ebusy), Path::Relay);
            self.drop_conn(&format!("write failed: {e}"));
            return;
        }
        self.pending.insert(id, (job, Instant::now()));
    }

    fn is_current(&self, conn: u64) -> bool {
        self.conn.as_ref().is_some_and(|c| c.id == conn)
    }

    fn event(&mut self, ev: RelayEvent) {
        match ev {
            RelayEvent::Connected { stream, mode } => self.connected(stream, mode),
            RelayEvent::Message { conn, msg } if self.is_current(conn) => match msg {
                Msg::Response { id, resp } => {
                    if let Some((job, _)) = self.pending.remove(&id) {
                        job.reply.send(resp, Path::Relay);
                    }
                }
                Msg::Stats {
                    nr,
                    status,
                    count,
                    total_ns,
                } => {
                    let t = Duration::from_nanos(total_ns);
                    self.rec.record(nr, true, Path::Direct, status, count, t);
                }
                other => self.drop_conn(&format!("unexpected message {other:?}")),
            },
            RelayEvent::Closed { conn } if self.is_current(conn) => {
                self.drop_conn("backend closed the connection")
            }
            RelayEvent::Stalled { conn } if self.is_current(conn) => {
                self.drop_conn("direct backend stalled")
            }
            RelayEvent::Revoked { conn } if self.is_current(conn) => {
                self.drop_conn("the guest reset the backend's queue")
            }
            RelayEvent::Handoff { conn, info } => {
                if !self.is_current(conn) {
                    if let Some(q) = &self.p.queue {
                        send_ctl(q, Ctl::Revoke { conn });
                    }
                    return;
                }
                self.handoff(info);
            }
            _ => {}
        }
    }

    fn connected(&mut self, stream: UnixStream, mode: u32) {
        let want = match self.p.mode {
            BackendMode::Relay => proto::MODE_RELAY,
            BackendMode::Direct => proto::MODE_DIRECT,
        };
        let reason = if self.conn.is_some() {
            Some(proto::REJECT_BUSY)
        } else if mode != want {
            Some(proto::REJECT_MODE)
        } else {
            None
        };
        if let Some(reason) = reason {
            let _ = proto::send(&stream, &Msg::Reject { reason }, &[]);
            return;
        }
        let welcome = Msg::Welcome {
            version: proto::PROTOCOL_VERSION,
            mode,
            first_nr: self.p.first_nr,
            count: self.p.count,
            timeout_ms: self.p.timeout.as_millis() as u32,
        };
        if proto::send(&stream, &welcome, &[]).is_err() {
            return;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        let sock = Arc::new(stream);
        let (reader, events) = (sock.clone(), self.events.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("hcgw-read-{:#x}", self.p.first_nr))
            .spawn(move || loop {
                match proto::recv(&reader) {
                    Ok((msg, _)) => {
                        if events.send(RelayEvent::Message { conn: id, msg }).is_err() {
                            return;
                        }
                    }
                    Err(_) => {
                        let _ = events.send(RelayEvent::Closed { conn: id });
                        return;
                    }
                }
            });
        if spawned.is_err() {
            proto::shutdown(&sock);
            return;
        }
        guard::guest_log!(
            log::Level::Info,
            "hypercall-gw: backend for {:#x} connected ({:?})",
            self.p.first_nr,
            self.p.mode
        );
        self.conn = Some(Conn { id, sock });
        if let (BackendMode::Direct, Some(q)) = (self.p.mode, &self.p.queue) {
            send_ctl(
                q,
                Ctl::Delegate {
                    conn: id,
                    events: self.events.clone(),
                },
            );
        }
    }

    fn handoff(&mut self, info: super::Handoff) {
        let (Some(c), Some(share)) = (&self.conn, &self.p.share) else {
            return;
        };
        let mut msg = info.msg;
        msg.regions = share.regions.clone();
        let mut fds = vec![share.memfd.as_raw_fd(), info.doorbell.as_raw_fd()];
        if let Some(irq) = &info.irq {
            fds.push(irq.as_raw_fd());
        }
        if let Err(e) = proto::send(&c.sock, &Msg::Queue(msg), &fds) {
            self.drop_conn(&format!("cannot hand over the queue: {e}"));
        }
    }

    /// A request older than the timeout means the backend stalled.
    fn expire(&mut self) {
        let timeout = self.p.timeout;
        if self.pending.values().any(|(_, t)| t.elapsed() >= timeout) {
            self.drop_conn("backend did not answer within the timeout");
        }
    }

    /// Closes the connection; everything outstanding gets EBUSY.
    fn drop_conn(&mut self, why: &str) {
        if let Some(c) = self.conn.take() {
            guard::guest_log!(
                log::Level::Warn,
                "hypercall-gw: backend for {:#x}: {why}",
                self.p.first_nr
            );
            proto::shutdown(&c.sock);
            if let Some(q) = &self.p.queue {
                send_ctl(q, Ctl::Revoke { conn: c.id });
            }
        }
        for (_, (job, _)) in self.pending.drain() {
            job.reply.send(Response::err(Status::Ebusy), Path::Relay);
        }
    }
}

fn send_ctl(q: &QueuePort, c: Ctl) {
    if q.ctl.send(c).is_ok() {
        let _ = q.wake.write(1);
    }
}
