//! The SignalMsi fallback: a thread that polls vector eventfds and injects each
//! interrupt with KVM_SIGNAL_MSI (or pulses a legacy line with KVM_IRQ_LINE), for hosts
//! where irqfd routing is unavailable.
//!
//! Pending semantics are those of an irqfd: a vector is in the epoll set only while it is
//! live (enabled and unmasked). While masked its eventfd is *removed* from the set, so a
//! trigger stays in the counter (the pending bit, see [`crate::IrqHandle::is_pending`])
//! and the thread does not spin on it; unmasking adds it back, epoll is level-triggered,
//! so the thread sees the pending trigger at once and delivers it exactly once (reading
//! the eventfd consumes every trigger accumulated since, as a single MSI).

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use pci_emu::MsiMessage;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::{Error, IrqChip, Result};

/// Where a polled eventfd's trigger goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// KVM_SIGNAL_MSI with this message.
    Msi(MsiMessage),
    /// KVM_IRQ_LINE pulse (high then low) on this GSI, as an irqfd on an irqchip route does.
    Line(u32),
}

struct Slot {
    fd: Arc<EventFd>,
    target: Target,
}

/// Token of the stop eventfd; vector tokens count up from 0 and are never reused, so a
/// stale epoll event for a removed vector finds no slot and is dropped.
const STOP: u64 = u64::MAX;

type Slots = Arc<Mutex<HashMap<u64, Slot>>>;

fn lock(slots: &Slots) -> MutexGuard<'_, HashMap<u64, Slot>> {
    // A panic elsewhere must not take interrupt delivery down with it.
    slots.lock().unwrap_or_else(|e| e.into_inner())
}

/// The delivery thread and its epoll set.
pub(crate) struct Dispatcher {
    epoll: Arc<Epoll>,
    slots: Slots,
    next: u64,
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl Dispatcher {
    /// Starts the thread.
    pub(crate) fn start(chip: Arc<dyn IrqChip>, vm: &str) -> Result<Self> {
        let epoll = Arc::new(Epoll::new().map_err(Error::Delivery)?);
        let stop = EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?;
        epoll
            .ctl(
                ControlOperation::Add,
                stop.as_raw_fd(),
                EpollEvent::new(EventSet::IN, STOP),
            )
            .map_err(Error::Delivery)?;
        let slots: Slots = Arc::default();
        let thread = std::thread::Builder::new()
            .name(format!("irq-router-{vm}"))
            .spawn({
                let epoll = epoll.clone();
                let slots = slots.clone();
                move || run(&epoll, &slots, chip.as_ref())
            })
            .map_err(Error::Delivery)?;
        Ok(Dispatcher {
            epoll,
            slots,
            next: 0,
            stop,
            thread: Some(thread),
        })
    }

    /// Starts delivering `fd`'s triggers to `target`; a trigger already pending is
    /// delivered once, right away. Returns the token for [`Dispatcher::update`] and
    /// [`Dispatcher::remove`].
    pub(crate) fn add(&mut self, fd: &Arc<EventFd>, target: Target) -> Result<u64> {
        let token = self.next;
        self.next += 1;
        let mut slots = lock(&self.slots);
        slots.insert(
            token,
            Slot {
                fd: fd.clone(),
                target,
            },
        );
        if let Err(e) = self.epoll.ctl(
            ControlOperation::Add,
            fd.as_raw_fd(),
            EpollEvent::new(EventSet::IN, token),
        ) {
            slots.remove(&token);
            return Err(Error::Delivery(e));
        }
        Ok(token)
    }

    /// Changes where `token`'s triggers go; the next one uses the new target.
    pub(crate) fn update(&self, token: u64, target: Target) {
        if let Some(slot) = lock(&self.slots).get_mut(&token) {
            slot.target = target;
        }
    }

    /// Stops delivering `token`'s triggers; later ones stay pending in the eventfd.
    /// Holding the lock, this waits for a delivery in progress to finish, so no
    /// interrupt is delivered for this vector once it returns.
    pub(crate) fn remove(&self, token: u64) -> Result<()> {
        let mut slots = lock(&self.slots);
        let Some(slot) = slots.remove(&token) else {
            return Ok(());
        };
        self.epoll
            .ctl(
                ControlOperation::Delete,
                slot.fd.as_raw_fd(),
                EpollEvent::default(),
            )
            .map_err(Error::Delivery)
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        if let Err(e) = self.stop.write(1) {
            log::error!("cannot stop the interrupt delivery thread: {e}");
            return;
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(epoll: &Epoll, slots: &Slots, chip: &dyn IrqChip) {
    let mut events = vec![EpollEvent::default(); 64];
    loop {
        let n = match epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("interrupt delivery thread stops: epoll_wait failed: {e}");
                return;
            }
        };
        for event in &events[..n] {
            let token = event.data();
            if token == STOP {
                return;
            }
            // The lock is held across read and delivery so that a mask or retarget
            // (which takes it too) is never overtaken by a delivery that started before.
            let slots = lock(slots);
            let Some(slot) = slots.get(&token) else {
                continue; // removed after epoll_wait returned: leave it pending.
            };
            match slot.fd.read() {
                Ok(_) => deliver(chip, slot.target),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => log::error!("cannot read an interrupt eventfd: {e}"),
            }
        }
    }
}

fn deliver(chip: &dyn IrqChip, target: Target) {
    let result = match target {
        Target::Msi(message) => chip.signal_msi(message),
        Target::Line(gsi) => chip
            .set_irq_line(gsi, true)
            .and_then(|()| chip.set_irq_line(gsi, false)),
    };
    if let Err(e) = result {
        guard::guest_log!(log::Level::Warn, "interrupt to {target:?} lost: {e}");
    }
}
