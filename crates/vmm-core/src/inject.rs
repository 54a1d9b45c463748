//! The userspace interrupt path that irqfd replaces, kept for comparison: a device
//! thread posts an MSI, the VMM kicks the destination vCPU out of KVM_RUN, and that
//! vCPU's thread injects it (KVM_SIGNAL_MSI) before entering the guest again.
//!
//! The queue holds at most [`QUEUE_LIMIT`] messages: a poster waits (bounded, and
//! giving up when its `cancelled` check says so) until a vCPU drains it, so a guest
//! asking for billions of interrupts costs a fixed amount of memory, and a vCPU's drain
//! after one exit is bounded work, so the vCPU sees a stop request within one exit.

use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use irq_router::IrqChip;
use pci_emu::MsiMessage;

/// Messages queued at most.
pub const QUEUE_LIMIT: usize = 256;

/// Per-VM queue of interrupts to inject at the next exit.
pub struct ExitInjector {
    chip: Arc<dyn IrqChip>,
    queue: Mutex<Vec<MsiMessage>>,
    room: Condvar,
    posted: AtomicBool,
    threads: OnceLock<Vec<libc::pthread_t>>,
}

impl ExitInjector {
    /// An injector over `chip`.
    pub fn new(chip: Arc<dyn IrqChip>) -> ExitInjector {
        ExitInjector {
            chip,
            queue: Mutex::new(Vec::new()),
            room: Condvar::new(),
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
    /// While the queue is full it waits for a drain, checking `cancelled` every 50 ms;
    /// returns false (nothing queued) once `cancelled` says so.
    pub fn post(&self, msg: MsiMessage, cancelled: impl Fn() -> bool) -> bool {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        while q.len() >= QUEUE_LIMIT {
            if cancelled() {
                return false;
            }
            self.kick(msg);
            q = self
                .room
                .wait_timeout(q, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        q.push(msg);
        drop(q);
        self.posted.store(true, Ordering::Release);
        self.kick(msg);
        true
    }

    fn kick(&self, msg: MsiMessage) {
        let dest = ((msg.address >> 12) & 0xff) as usize;
        if let Some(t) = self.threads.get().and_then(|t| t.get(dest).or(t.first())) {
            // The vCPU threads are joined only after the devices that post here stopped.
            crate::signals::kick(*t);
        }
    }

    /// Messages waiting for injection.
    pub fn queued(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Called by a vCPU thread after every exit: injects what was posted (at most
    /// [`QUEUE_LIMIT`] messages). One relaxed load when nothing was.
    #[inline]
    pub fn drain(&self) {
        if self.posted.load(Ordering::Relaxed) && self.posted.swap(false, Ordering::Acquire) {
            let msgs = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
            self.room.notify_all();
            for m in msgs {
                if let Err(e) = self.chip.signal_msi(m) {
                    guard::guest_log!(log::Level::Warn, "injecting {m:?}: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use irq_router::RecordingIrqChip;
    use std::sync::atomic::AtomicU64;

    fn msg() -> MsiMessage {
        MsiMessage {
            address: 0xfee0_0000,
            data: 0x40,
        }
    }

    #[test]
    fn the_queue_is_bounded_and_a_full_post_can_be_cancelled() {
        let inj = ExitInjector::new(Arc::new(RecordingIrqChip::new()));
        for _ in 0..QUEUE_LIMIT {
            assert!(inj.post(msg(), || false));
        }
        let checks = AtomicU64::new(0);
        // Full: the post waits, then gives up when cancelled.
        assert!(!inj.post(msg(), || checks.fetch_add(1, Ordering::Relaxed) >= 2));
        assert_eq!(inj.queued(), QUEUE_LIMIT);
        inj.drain();
        assert_eq!(inj.queued(), 0);
        assert!(inj.post(msg(), || false));
    }

    #[test]
    fn a_waiting_poster_resumes_after_a_drain() {
        let inj = Arc::new(ExitInjector::new(Arc::new(RecordingIrqChip::new())));
        let i2 = inj.clone();
        let t = std::thread::spawn(move || {
            (0..QUEUE_LIMIT * 3)
                .filter(|_| i2.post(msg(), || false))
                .count()
        });
        while !t.is_finished() || inj.queued() > 0 {
            assert!(inj.queued() <= QUEUE_LIMIT);
            inj.drain();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(t.join().unwrap(), QUEUE_LIMIT * 3);
    }
}
