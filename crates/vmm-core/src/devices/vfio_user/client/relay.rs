//! Counted interrupts (`[[device]] kind = "vfio-user"`, `interrupts = "counted"`): the
//! server gets eventfds of kvmbus's own, and a thread raises the router's vectors for
//! them, so each server interrupt is counted by vector (`kvmbus_irq_triggers_total`)
//! exactly like an in-process device's.
//!
//! The default ("direct") hands the server the vectors' irqfds themselves: its interrupts
//! reach the guest with no kvmbus thread on the way, and cannot be counted — KVM's irqfd
//! takes each write as the eventfd's priority waiter, before any other reader is woken.
//! Counting costs one thread wake-up per interrupt (or per burst: writes that arrive
//! together are read as one count and raise the vector once, as an eventfd does).

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use irq_router::IrqHandle;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::error::io_err;
use crate::Result;

/// The stop event's epoll token (vectors use their index).
const STOP: u64 = u64::MAX;
/// Events taken per epoll_wait.
const BATCH: usize = 64;

/// One relay thread for a device's vectors.
pub(crate) struct IrqRelay {
    /// What the server writes, one per vector.
    fds: Vec<Arc<EventFd>>,
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl IrqRelay {
    /// Starts relaying fresh eventfds to `handles` (same order).
    pub(crate) fn spawn(name: &str, handles: Vec<IrqHandle>) -> Result<IrqRelay> {
        let what = format!("{name}: interrupt relay");
        let epoll = Epoll::new().map_err(io_err(&what))?;
        let stop = EventFd::new(EFD_NONBLOCK).map_err(io_err(&what))?;
        let add = |fd: i32, token: u64| {
            epoll.ctl(
                ControlOperation::Add,
                fd,
                EpollEvent::new(EventSet::IN, token),
            )
        };
        add(stop.as_raw_fd(), STOP).map_err(io_err(&what))?;
        let mut fds = Vec::with_capacity(handles.len());
        for i in 0..handles.len() {
            let fd = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(io_err(&what))?);
            add(fd.as_raw_fd(), i as u64).map_err(io_err(&what))?;
            fds.push(fd);
        }
        let stop_fd = stop.try_clone().map_err(io_err(&what))?;
        let ours = fds.clone();
        let thread = std::thread::Builder::new()
            .name("vfio-user-irq".into())
            .spawn(move || relay(&epoll, &stop_fd, &ours, &handles))
            .map_err(io_err(&what))?;
        Ok(IrqRelay {
            fds,
            stop,
            thread: Some(thread),
        })
    }

    /// The eventfds to hand the server (vector order).
    pub(crate) fn fds(&self) -> &[Arc<EventFd>] {
        &self.fds
    }
}

fn relay(epoll: &Epoll, stop: &EventFd, fds: &[Arc<EventFd>], handles: &[IrqHandle]) {
    let mut events = vec![EpollEvent::default(); BATCH];
    loop {
        let n = match epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("vfio-user interrupt relay: epoll_wait: {e}");
                return;
            }
        };
        for ev in &events[..n] {
            let token = ev.data();
            if token == STOP {
                let _ = stop.read();
                return;
            }
            let i = token as usize;
            // The count of writes since the last read (coalesced, as an eventfd does).
            if let (Some(fd), Some(h)) = (fds.get(i), handles.get(i)) {
                if let Ok(count) = fd.read() {
                    if let Err(e) = h.trigger_coalesced(count) {
                        log::warn!("vfio-user interrupt relay: vector {i}: {e}");
                    }
                }
            }
        }
    }
}

impl Drop for IrqRelay {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
