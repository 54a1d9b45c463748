//! The queue thread's loop.
//!
//! Each wake-up: apply control messages, write the used entries of service replies
//! that came back, pop and dispatch everything the guest made available (built-ins
//! and bad chains are completed on the spot; other calls complete out of order as
//! their services answer), then raise the queue's vector once if anything was used
//! and the guest did not set VIRTQ_AVAIL_F_NO_INTERRUPT.
//!
//! Direct delegation: a pending delegation stops popping until every popped request
//! has its used entry, then the queue state goes to the relay thread, which hands it
//! to the backend. While the backend holds the queue this thread only watches the
//! ring: if the used index does not move for `timeout` while requests are waiting (a
//! doorbell kick at half time did not help), the backend is declared stalled. Taking
//! the queue back resumes at the used index the backend published: direct backends
//! complete in order, so every request it popped but did not complete is popped again
//! here and, its service being unavailable, answered EBUSY.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use irq_router::IrqHandle;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::{Ctl, QueueParams, QueueSetup};
use crate::abi::{Response, ISR_COMPLETION, NO_VECTOR};
use crate::backend::proto::{QueueMsg, QUEUE_HAS_IRQFD};
use crate::backend::{Handoff, RelayEvent};
use crate::metrics::{Path, Recorder};
use crate::ring::{self, Parsed, Popped};
use crate::service::{Completion, Registry, ReplyTo, RingCtx};
use crate::sys::poll_readable;

enum Deleg {
    None,
    Pending {
        conn: u64,
        events: Sender<RelayEvent>,
    },
    Held {
        conn: u64,
        events: Sender<RelayEvent>,
        last_used: u16,
        since: Instant,
        kicked: bool,
    },
}

struct Active {
    q: Queue,
    vector: u16,
    broken: bool,
}

pub(super) struct Worker {
    index: u16,
    max_size: u16,
    mem: GuestMemoryMmap,
    registry: Registry,
    irqs: Vec<IrqHandle>,
    isr: Arc<AtomicU8>,
    timeout: Duration,
    wake: Arc<EventFd>,
    doorbell: Arc<EventFd>,
    ctl: Receiver<Ctl>,
    done_tx: Sender<Completion>,
    done_rx: Receiver<Completion>,
    rec: Recorder,
    active: Option<Active>,
    gen: u64,
    inflight: usize,
    used_added: usize,
    deleg: Deleg,
    popped: Vec<Popped>,
}

impl Worker {
    pub(super) fn new(
        p: QueueParams,
        wake: Arc<EventFd>,
        doorbell: Arc<EventFd>,
        ctl: Receiver<Ctl>,
    ) -> Worker {
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        Worker {
            index: p.index,
            max_size: p.max_size,
            rec: Recorder::new(&p.vm),
            mem: p.mem,
            registry: p.registry,
            irqs: p.irqs,
            isr: p.isr,
            timeout: p.timeout,
            wake,
            doorbell,
            ctl,
            done_tx,
            done_rx,
            active: None,
            gen: 0,
            inflight: 0,
            used_added: 0,
            deleg: Deleg::None,
            popped: Vec::new(),
        }
    }

    pub(super) fn run(mut self) {
        loop {
            let held = matches!(self.deleg, Deleg::Held { .. });
            // Only a queue held by a direct backend is watched on a timer (for a stall);
            // otherwise every event (doorbell, completion, control) writes an eventfd, so
            // an idle queue sleeps without periodic wake-ups.
            let watch = held.then_some(self.timeout / 4);
            let fds = [self.wake.as_raw_fd(), self.doorbell.as_raw_fd()];
            let n = if held { 1 } else { 2 };
            let ready = poll_readable(&fds[..n], watch);
            if ready[0] {
                let _ = self.wake.read();
            }
            if !self.control() {
                return;
            }
            if n == 2 && ready[1] {
                let _ = self.doorbell.read();
            }
            self.completions();
            if matches!(self.deleg, Deleg::None) {
                self.serve();
            }
            self.notify();
            self.try_handoff();
            self.watchdog();
        }
    }

    /// Applies control messages; false on Stop.
    fn control(&mut self) -> bool {
        while let Ok(c) = self.ctl.try_recv() {
            match c {
                Ctl::Stop => return false,
                Ctl::Enable(s) => self.enable(s),
                Ctl::Disable => self.disable(),
                Ctl::Delegate { conn, events } => {
                    self.deleg = Deleg::Pending { conn, events };
                }
                Ctl::Revoke { conn } => self.revoke(conn),
            }
        }
        true
    }

    fn enable(&mut self, s: QueueSetup) {
        if self.active.is_some() {
            return;
        }
        let Ok(mut q) = Queue::new(self.max_size) else {
            return;
        };
        q.set_size(s.size);
        q.set_desc_table_address(Some(s.desc as u32), Some((s.desc >> 32) as u32));
        q.set_avail_ring_address(Some(s.avail as u32), Some((s.avail >> 32) as u32));
        q.set_used_ring_address(Some(s.used as u32), Some((s.used >> 32) as u32));
        q.set_ready(true);
        self.gen += 1;
        self.inflight = 0;
        self.active = Some(Active {
            q,
            vector: s.vector,
            broken: false,
        });
    }

    fn disable(&mut self) {
        if let Deleg::Held { conn, events, .. } = &self.deleg {
            let _ = events.send(RelayEvent::Revoked { conn: *conn });
            self.deleg = Deleg::None;
        }
        self.active = None;
        self.gen += 1;
        self.inflight = 0;
    }

    fn revoke(&mut self, conn: u64) {
        match &self.deleg {
            Deleg::Pending { conn: c, .. } if *c == conn => self.deleg = Deleg::None,
            Deleg::Held { conn: c, .. } if *c == conn => self.take_back(),
            _ => {}
        }
    }

    /// Resumes serving at the used index the backend published.
    fn take_back(&mut self) {
        self.deleg = Deleg::None;
        if let Some(a) = &mut self.active {
            let used = ring::used_idx(&a.q, &self.mem).unwrap_or(a.q.next_used());
            a.q.set_next_used(used);
            a.q.set_next_avail(used);
            guard::guest_log!(
                log::Level::Info,
                "hypercall-gw: queue {} back from its direct backend",
                self.index
            );
        }
        // Serve what the backend left at once, without waiting for a doorbell.
        let _ = self.wake.write(1);
    }

    fn completions(&mut self) {
        while let Ok(c) = self.done_rx.try_recv() {
            if c.ctx.gen != self.gen {
                continue;
            }
            self.inflight = self.inflight.saturating_sub(1);
            let path = if c.path == Path::Relay {
                Path::Relay
            } else {
                Path::Ring
            };
            self.finish(c.ctx.head, Some(c.ctx.resp_addr), c.resp);
            let known = self.registry.known(c.ctx.nr);
            self.rec.record(
                c.ctx.nr,
                known,
                path,
                c.resp.status,
                1,
                c.ctx.start.elapsed(),
            );
        }
    }

    fn finish(&mut self, head: u16, resp_addr: Option<u64>, resp: Response) {
        let Some(a) = &mut self.active else { return };
        match ring::complete(&mut a.q, &self.mem, head, resp_addr, resp) {
            Ok(()) => self.used_added += 1,
            Err(e) => guard::guest_log!(
                log::Level::Error,
                "hypercall-gw: queue {}: used ring: {e}",
                self.index
            ),
        }
    }

    fn serve(&mut self) {
        let mut popped = std::mem::take(&mut self.popped);
        while let Some(a) = self.active.as_mut().filter(|a| !a.broken) {
            popped.clear();
            let more = match ring::pop_available(&mut a.q, &self.mem, &mut popped) {
                Ok(m) => m,
                Err(e) => {
                    guard::guest_log!(
                        log::Level::Error,
                        "hypercall-gw: queue {}: {e}; stopped until reset",
                        self.index
                    );
                    a.broken = true;
                    false
                }
            };
            for p in popped.drain(..) {
                self.dispatch(p);
            }
            if !more {
                break;
            }
        }
        self.popped = popped;
    }

    fn dispatch(&mut self, p: Popped) {
        let start = Instant::now();
        match p.parsed {
            Parsed::Call { req, resp_addr } => {
                let ctx = RingCtx {
                    gen: self.gen,
                    head: p.head,
                    resp_addr,
                    nr: req.nr,
                    start,
                };
                let (tx, wake) = (&self.done_tx, &self.wake);
                let reply = || ReplyTo::Ring {
                    tx: tx.clone(),
                    wake: wake.clone(),
                    ctx,
                };
                match self.registry.dispatch(req, reply) {
                    Some(resp) => {
                        self.finish(p.head, Some(resp_addr), resp);
                        let known = self.registry.known(req.nr);
                        let t = start.elapsed();
                        self.rec
                            .record(req.nr, known, Path::Ring, resp.status, 1, t);
                    }
                    None => self.inflight += 1,
                }
            }
            Parsed::Bad { status, resp_addr } => {
                self.finish(p.head, resp_addr, Response::err(status));
                self.rec
                    .record(0, false, Path::Ring, status, 1, start.elapsed());
            }
        }
    }

    /// Raises the completion interrupt once for everything used since the last call.
    fn notify(&mut self) {
        if self.used_added == 0 {
            return;
        }
        self.used_added = 0;
        let Some(a) = &self.active else { return };
        if !ring::wants_interrupt(&a.q, &self.mem) {
            return;
        }
        self.isr.fetch_or(ISR_COMPLETION, Ordering::SeqCst);
        if a.vector != NO_VECTOR {
            if let Some(irq) = self.irqs.get(usize::from(a.vector)) {
                if let Err(e) = irq.trigger() {
                    guard::guest_log!(
                        log::Level::Warn,
                        "hypercall-gw: queue {}: interrupt: {e}",
                        self.index
                    );
                }
            }
        }
    }

    fn try_handoff(&mut self) {
        let Deleg::Pending { conn, events } = &self.deleg else {
            return;
        };
        let Some(a) = self.active.as_ref().filter(|a| !a.broken) else {
            return;
        };
        if self.inflight != 0 {
            return;
        }
        let irq = self
            .irqs
            .get(usize::from(a.vector))
            .filter(|_| a.vector != NO_VECTOR)
            .map(|h| h.eventfd().clone());
        let msg = QueueMsg {
            queue: self.index,
            size: a.q.size(),
            vector: a.vector,
            flags: if irq.is_some() { QUEUE_HAS_IRQFD } else { 0 },
            desc: a.q.desc_table(),
            avail: a.q.avail_ring(),
            used: a.q.used_ring(),
            next_avail: a.q.next_avail(),
            next_used: a.q.next_used(),
            regions: Vec::new(),
        };
        let info = Handoff {
            msg,
            doorbell: self.doorbell.clone(),
            irq,
        };
        let (conn, events) = (*conn, events.clone());
        if events.send(RelayEvent::Handoff { conn, info }).is_err() {
            self.deleg = Deleg::None;
            return;
        }
        self.deleg = Deleg::Held {
            conn,
            events,
            last_used: a.q.next_used(),
            since: Instant::now(),
            kicked: false,
        };
    }

    fn watchdog(&mut self) {
        let timeout = self.timeout;
        let Some(a) = &self.active else { return };
        let Deleg::Held {
            conn,
            events,
            last_used,
            since,
            kicked,
        } = &mut self.deleg
        else {
            return;
        };
        let (Some(avail), Some(used)) = (
            ring::avail_idx(&a.q, &self.mem),
            ring::used_idx(&a.q, &self.mem),
        ) else {
            return;
        };
        if used != *last_used || avail == used {
            *last_used = used;
            *since = Instant::now();
            *kicked = false;
            return;
        }
        let waited = since.elapsed();
        if waited >= timeout {
            guard::guest_log!(
                log::Level::Warn,
                "hypercall-gw: queue {}: direct backend made no progress for {:?}; taking the queue back",
                self.index,
                waited
            );
            let _ = events.send(RelayEvent::Stalled { conn: *conn });
            self.take_back();
        } else if waited >= timeout / 2 && !*kicked {
            *kicked = true;
            let _ = self.doorbell.write(1);
        }
    }
}
