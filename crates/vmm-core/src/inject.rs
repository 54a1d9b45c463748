//! The userspace interrupt path that irqfd replaces, kept for comparison: a device
//! thread posts an MSI, the VMM kicks the destination vCPU out of KVM_RUN, and that
//! vCPU's thread injects it (KVM_SIGNAL_MSI) before entering the guest again.

use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use irq_router::IrqChip;
use pci_emu::MsiMessage;

/// Per-VM queue of interrupts to inject at the next exit.
pub struct ExitInjector {
    chip: Arc<dyn IrqChip>,
    queue: Mutex<Vec<MsiMessage>>,
    posted: AtomicBool,
    threads: OnceLock<Vec<libc::pthread_t>>,
}

impl ExitInjector {
    /// An injector over `chip`.
    pub fn new(chip: Arc<dyn IrqChip>) -> ExitInjector {
        ExitInjector {
            chip,
            queue: Mutex::new(Vec::new()),
            posted: AtomicBool::new(false),
            threads: OnceLock::new(),
        }
    }

    /// Records the vCPU threads (index = APIC ID) once they run.
    pub fn set_threads<T>(&self, handles: &[std::thread::JoinHandle<T>]) {
        let _ = self
            .threads
            .set(handles.iter().map(|h| h.as_pthread_t()).collect());
    }

    /// Queues `msg` and kicks its destination vCPU (APIC ID in address bits 19:12).
    pub fn post(&self, msg: MsiMessage) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg);
        self.posted.store(true, Ordering::Release);
        let dest = ((msg.address >> 12) & 0xff) as usize;
        if let Some(t) = self.threads.get().and_then(|t| t.get(dest).or(t.first())) {
            // The vCPU threads are joined only after the devices that post here stopped.
            crate::signals::kick(*t);
        }
    }

    /// Called by a vCPU thread after every exit: injects what was posted. One relaxed
    /// load when nothing was.
    #[inline]
    pub fn drain(&self) {
        if self.posted.load(Ordering::Relaxed) && self.posted.swap(false, Ordering::Acquire) {
            let msgs = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
            for m in msgs {
                if let Err(e) = self.chip.signal_msi(m) {
                    log::warn!("injecting {m:?}: {e}");
                }
            }
        }
    }
}
