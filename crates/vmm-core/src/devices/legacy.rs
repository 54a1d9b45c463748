//! Tiny one-register devices. (Power-off is ACPI's PM1a_CNT, in `devices/pm/`.)

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::bus::BusDevice;
use crate::control::{StopReason, VmControl};

/// QEMU's isa-debug-exit: a 1-byte write of `v` stops the VM with exit code
/// `(v << 1) | 1`. Reads return all-ones; other widths are ignored.
pub struct DebugExit(pub Arc<VmControl>);

impl BusDevice for DebugExit {
    fn read(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        if offset == 0 && data.len() == 1 {
            self.0.request_stop(StopReason::DebugExit(data[0]));
        }
    }
}

/// The POST diagnostic port 0x80: keeps the last byte written, as a POST card shows it.
#[derive(Default)]
pub struct PostPort(AtomicU8);

impl PostPort {
    /// The last value written.
    pub fn last(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }
}

impl BusDevice for PostPort {
    fn read(&self, _offset: u64, data: &mut [u8]) {
        data.fill(self.last());
    }
    fn write(&self, _offset: u64, data: &[u8]) {
        if let Some(v) = data.first() {
            self.0.store(*v, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_exit_takes_one_byte_writes_only() {
        let c = Arc::new(VmControl::default());
        let d = DebugExit(c.clone());
        d.write(0, &[1, 2]);
        assert!(!c.stopping());
        d.write(0, &[5]);
        assert_eq!(c.reason(), Some(StopReason::DebugExit(5)));
        assert_eq!(c.reason().unwrap().exit_code(), 11);
    }

    #[test]
    fn post_port_latches() {
        let p = PostPort::default();
        p.write(0, &[0x42]);
        let mut d = [0u8];
        p.read(0, &mut d);
        assert_eq!(d, [0x42]);
    }
}
