//! Legacy interrupt lines (ISA IRQs / IOAPIC inputs) as a one-method seam.
//!
//! Platform devices (UART, RTC, pc-testdev, the ACPI SCI) raise interrupts through an
//! [`IrqLine`]; on a VM it is a GSI of the in-kernel IOAPIC/PIC driven with
//! KVM_IRQ_LINE ([`KvmIrqLine`]); in unit tests a [`RecordingIrqLine`] keeps the levels.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use kvm_ioctls::VmFd;

/// One interrupt input of the platform's interrupt controllers.
pub trait IrqLine: Send + Sync {
    /// Sets the line's level: `true` asserts it, `false` deasserts it.
    fn set_level(&self, high: bool);
    /// An edge: asserts then deasserts the line.
    fn pulse(&self) {
        self.set_level(true);
        self.set_level(false);
    }
}

/// A GSI of the in-kernel irqchip, driven with KVM_IRQ_LINE.
pub struct KvmIrqLine {
    vm: Arc<VmFd>,
    gsi: u32,
}

impl KvmIrqLine {
    /// The line for `gsi` (0-23: the IOAPIC pins, 0-15 also the PIC's).
    pub fn new(vm: Arc<VmFd>, gsi: u32) -> KvmIrqLine {
        KvmIrqLine { vm, gsi }
    }
}

impl IrqLine for KvmIrqLine {
    fn set_level(&self, high: bool) {
        if let Err(e) = self.vm.set_irq_line(self.gsi, high) {
            guard::guest_log!(
                log::Level::Warn,
                "KVM_IRQ_LINE gsi {} level {high}: {e}",
                self.gsi
            );
        }
    }
}

/// Records the level and counts rising edges (for tests).
#[derive(Default)]
pub struct RecordingIrqLine {
    level: AtomicBool,
    raised: AtomicU64,
}

impl RecordingIrqLine {
    /// The current level.
    pub fn level(&self) -> bool {
        self.level.load(Ordering::SeqCst)
    }
    /// How many times the line went from low to high.
    pub fn raised(&self) -> u64 {
        self.raised.load(Ordering::SeqCst)
    }
}

impl IrqLine for RecordingIrqLine {
    fn set_level(&self, high: bool) {
        if high && !self.level.swap(true, Ordering::SeqCst) {
            self.raised.fetch_add(1, Ordering::SeqCst);
        } else if !high {
            self.level.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_line_counts_rising_edges() {
        let l = RecordingIrqLine::default();
        l.set_level(true);
        l.set_level(true);
        assert!(l.level());
        l.set_level(false);
        l.pulse();
        assert!(!l.level());
        assert_eq!(l.raised(), 2);
    }
}
