//! Queue threads: one per gateway queue, serving its ring.
//!
//! The PCI function sends a queue thread [`Ctl`] messages (enable, disable) and wakes
//! it through `wake`; the guest's QUEUE_NOTIFY signals `doorbell` (an ioeventfd).
//! Relay threads of direct-mode backends send `Delegate`/`Revoke`: while a direct
//! backend holds the queue the thread does not touch the ring, only watches it for
//! progress (see `worker.rs`).

mod worker;

use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use irq_router::IrqHandle;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::backend::RelayEvent;
use crate::error::{Error, Result};
pub(crate) use crate::function::QueuePort;
use crate::service::Registry;

/// A queue's configuration as the guest programmed it, latched at QUEUE_ENABLE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueueSetup {
    /// Queue size (power of two).
    pub size: u16,
    /// Descriptor table address.
    pub desc: u64,
    /// Available ring address.
    pub avail: u64,
    /// Used ring address.
    pub used: u64,
    /// Completion vector (0xFFFF none).
    pub vector: u16,
}

/// Control messages for a queue thread.
#[derive(Debug)]
pub(crate) enum Ctl {
    /// The guest enabled the queue (addresses already checked).
    Enable(QueueSetup),
    /// The guest disabled (reset) the queue.
    Disable,
    /// A direct backend (connection `conn`) wants the queue.
    Delegate {
        conn: u64,
        events: Sender<RelayEvent>,
    },
    /// Connection `conn` is gone: take the queue back.
    Revoke { conn: u64 },
    /// Exit.
    Stop,
}

/// What a queue thread needs.
pub(crate) struct QueueParams {
    pub index: u16,
    pub max_size: u16,
    pub vm: String,
    pub mem: GuestMemoryMmap,
    pub registry: Registry,
    pub irqs: Vec<IrqHandle>,
    pub isr: Arc<AtomicU8>,
    pub timeout: Duration,
}

/// The gateway's handle on a queue thread.
#[derive(Debug)]
pub(crate) struct QueueHandle {
    /// Control channel.
    pub ctl: Sender<Ctl>,
    /// Wakes the thread after a control message.
    pub wake: Arc<EventFd>,
    join: Option<JoinHandle<()>>,
}

impl QueueHandle {
    /// Sends a control message and wakes the thread.
    pub fn send(&self, ctl: Ctl) {
        if self.ctl.send(ctl).is_ok() {
            let _ = self.wake.write(1);
        }
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.send(Ctl::Stop);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Creates a queue's channels and eventfds before its thread exists.
pub(crate) fn port() -> Result<(QueuePort, Receiver<Ctl>)> {
    let wake = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?);
    let doorbell = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?);
    let (ctl, rx) = crossbeam_channel::unbounded();
    Ok((
        QueuePort {
            ctl,
            wake,
            doorbell,
        },
        rx,
    ))
}

/// Starts the thread of one queue.
pub(crate) fn spawn(p: QueueParams, port: QueuePort, rx: Receiver<Ctl>) -> Result<QueueHandle> {
    let QueuePort {
        ctl: tx,
        wake,
        doorbell,
    } = port;
    let name = format!("hcgw-q{}", p.index);
    let w = worker::Worker::new(p, wake.clone(), doorbell.clone(), rx);
    let join = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || w.run())
        .map_err(|e| Error::Spawn(name, e))?;
    Ok(QueueHandle {
        ctl: tx,
        wake,
        join: Some(join),
    })
}
