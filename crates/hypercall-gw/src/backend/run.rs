//! The example external backend: a key-value store (see `service::kv`) that also
//! answers the built-ins, served in relay or direct mode.
//!
//! `run_backend` connects, says HELLO, and serves until the VMM closes the connection,
//! then reconnects, until `stop` is set. In direct mode it maps guest memory from the
//! memfd it is handed and serves the queue itself: it pops chains, completes them in
//! order, raises the irqfd once per batch unless the guest set NO_INTERRUPT, and sends
//! one STATS message per (nr, status) per batch. It stops touching the queue as soon
//! as the connection closes.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use virtio_queue::{Queue, QueueT};
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::proto::{self, Msg, QueueMsg, QUEUE_HAS_IRQFD};
use crate::abi::{Request, Response, Status};
use crate::config::BackendMode;
use crate::error::{Error, Result};
use crate::ring::{self, Parsed};
use crate::service::{builtin, kv::KvStore, Service};
use crate::sys::poll_readable;

/// How to run the example backend.
#[derive(Clone, Debug)]
pub struct BackendOptions {
    /// The VMM's socket.
    pub socket: PathBuf,
    /// Relay or direct.
    pub mode: BackendMode,
    /// Set to make the backend drop its connection and return (as if killed).
    pub stop: Arc<AtomicBool>,
    /// Set to make the backend stop serving but keep its connection (a stall).
    pub stall: Arc<AtomicBool>,
}

impl BackendOptions {
    /// Options with fresh stop/stall flags.
    pub fn new(socket: impl Into<PathBuf>, mode: BackendMode) -> BackendOptions {
        BackendOptions {
            socket: socket.into(),
            mode,
            stop: Arc::new(AtomicBool::new(false)),
            stall: Arc::new(AtomicBool::new(false)),
        }
    }
}

const TICK: Duration = Duration::from_millis(50);

/// Runs the backend: connect, serve, reconnect, until `opts.stop` is set.
pub fn run_backend(opts: &BackendOptions) -> Result<()> {
    let path = opts.socket.display().to_string();
    while !opts.stop.load(Ordering::Relaxed) {
        let sock = match UnixStream::connect(&opts.socket) {
            Ok(s) => s,
            Err(_) => {
                std::thread::sleep(TICK);
                continue;
            }
        };
        match serve(opts, &sock) {
            Ok(()) => {}
            Err(Error::Protocol(m)) if m.starts_with("rejected") => {
                std::thread::sleep(TICK);
            }
            Err(e) => log::warn!("backend on {path}: {e}"),
        }
    }
    Ok(())
}

struct DirectQueue {
    q: Queue,
    mem: GuestMemoryMmap,
    doorbell: EventFd,
    irq: Option<EventFd>,
}

struct Backend {
    kv: KvStore,
    first: u32,
    count: u32,
}

impl Backend {
    fn call(&mut self, req: &Request) -> Response {
        if let Some(r) = builtin::call(req) {
            return r;
        }
        if req.nr.wrapping_sub(self.first) < self.count {
            self.kv.call(req)
        } else {
            Response::err(Status::Enosys)
        }
    }
}

fn serve(opts: &BackendOptions, sock: &UnixStream) -> Result<()> {
    let io = |e| Error::Socket(opts.socket.display().to_string(), e);
    let mode = match opts.mode {
        BackendMode::Relay => proto::MODE_RELAY,
        BackendMode::Direct => proto::MODE_DIRECT,
    };
    let hello = Msg::Hello {
        magic: proto::MAGIC,
        version: proto::PROTOCOL_VERSION,
        mode,
    };
    proto::send(sock, &hello, &[]).map_err(io)?;
    let (first, count) = match proto::recv(sock).map_err(io)?.0 {
        Msg::Welcome {
            first_nr, count, ..
        } => (first_nr, count),
        Msg::Reject { reason } => return Err(Error::Protocol(format!("rejected ({reason})"))),
        m => return Err(Error::Protocol(format!("expected WELCOME, got {m:?}"))),
    };
    let mut be = Backend {
        kv: KvStore::new(first),
        first,
        count,
    };
    let mut direct: Option<DirectQueue> = None;
    loop {
        if opts.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut fds = vec![sock.as_raw_fd()];
        if let Some(d) = &direct {
            fds.push(d.doorbell.as_raw_fd());
        }
        let ready = poll_readable(&fds, Some(TICK));
        if opts.stall.load(Ordering::Relaxed) {
            continue;
        }
        if ready[0] {
            let (msg, fds) = match proto::recv(sock) {
                Ok(m) => m,
                Err(_) => return Ok(()), // the VMM closed: stop touching the queue
            };
            match msg {
                Msg::Request { id, req } => {
                    let resp = be.call(&req);
                    proto::send(sock, &Msg::Response { id, resp }, &[]).map_err(io)?;
                }
                Msg::Queue(q) => direct = Some(map_queue(q, fds)?),
                m => return Err(Error::Protocol(format!("unexpected {m:?}"))),
            }
        }
        if let Some(d) = &mut direct {
            let _ = d.doorbell.read();
            serve_queue(d, &mut be, sock).map_err(io)?;
        }
    }
}

fn map_queue(m: QueueMsg, fds: Vec<OwnedFd>) -> Result<DirectQueue> {
    let want = if m.flags & QUEUE_HAS_IRQFD != 0 { 3 } else { 2 };
    if fds.len() != want {
        return Err(Error::Protocol(format!(
            "QUEUE came with {} fds, expected {want}",
            fds.len()
        )));
    }
    let mut fds = fds.into_iter();
    let memfd = File::from(
        fds.next()
            .ok_or_else(|| Error::Protocol("no memfd".into()))?,
    );
    let mut ranges = Vec::new();
    for (gpa, size, off) in &m.regions {
        let f = memfd
            .try_clone()
            .map_err(|e| Error::Memory(e.to_string()))?;
        ranges.push((
            GuestAddress(*gpa),
            *size as usize,
            Some(FileOffset::new(f, *off)),
        ));
    }
    let mem = GuestMemoryMmap::from_ranges_with_files(ranges)
        .map_err(|e| Error::Memory(e.to_string()))?;
    let to_eventfd = |fd: OwnedFd| {
        // SAFETY: the fd is an eventfd the VMM sent us and we own it exclusively.
        unsafe { EventFd::from_raw_fd(fd.into_raw_fd()) }
    };
    let doorbell = to_eventfd(
        fds.next()
            .ok_or_else(|| Error::Protocol("no doorbell".into()))?,
    );
    let irq = fds.next().map(to_eventfd);
    let mut q = Queue::new(m.size).map_err(|e| Error::Protocol(e.to_string()))?;
    q.set_desc_table_address(Some(m.desc as u32), Some((m.desc >> 32) as u32));
    q.set_avail_ring_address(Some(m.avail as u32), Some((m.avail >> 32) as u32));
    q.set_used_ring_address(Some(m.used as u32), Some((m.used >> 32) as u32));
    q.set_next_avail(m.next_avail);
    q.set_next_used(m.next_used);
    q.set_ready(true);
    if !q.is_valid(&mem) {
        return Err(Error::Protocol("handed queue is outside the memory".into()));
    }
    Ok(DirectQueue {
        q,
        mem,
        doorbell,
        irq,
    })
}

/// Drains the queue; in-order completion; one interrupt and STATS per batch.
fn serve_queue(d: &mut DirectQueue, be: &mut Backend, sock: &UnixStream) -> std::io::Result<()> {
    let mut popped = Vec::new();
    let mut stats: HashMap<(u32, Status), (u64, Duration)> = HashMap::new();
    let mut used = 0;
    loop {
        popped.clear();
        let more = match ring::pop_available(&mut d.q, &d.mem, &mut popped) {
            Ok(m) => m,
            Err(_) => return Ok(()), // broken ring: leave it to the VMM's watchdog
        };
        for p in popped.drain(..) {
            let start = Instant::now();
            let (nr, addr, resp) = match p.parsed {
                Parsed::Call { req, resp_addr } => (req.nr, Some(resp_addr), be.call(&req)),
                Parsed::Bad { status, resp_addr } => (0, resp_addr, Response::err(status)),
            };
            if ring::complete(&mut d.q, &d.mem, p.head, addr, resp).is_ok() {
                used += 1;
            }
            let e = stats.entry((nr, resp.status)).or_default();
            e.0 += 1;
            e.1 += start.elapsed();
        }
        if !more {
            break;
        }
    }
    if used > 0 && ring::wants_interrupt(&d.q, &d.mem) {
        if let Some(irq) = &d.irq {
            let _ = irq.write(1);
        }
    }
    for ((nr, status), (count, total)) in stats {
        let total_ns = total.as_nanos() as u64;
        let msg = Msg::Stats {
            nr,
            status,
            count,
            total_ns,
        };
        proto::send(sock, &msg, &[])?;
    }
    Ok(())
}
