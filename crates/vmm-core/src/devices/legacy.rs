//! Tiny one-register devices. (Power-off is ACPI's PM1a_CNT, in `devices/pm/`.)

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::bus::BusDevice;
use crate::control::{StopReason, VmControl};

/// QEMU's `isa-debug-exit` (`hw/misc/debugexit.c`): a write of 1, 2 or 4 bytes anywhere
/// in its ports stops the VM with exit status `(value << 1) | 1`, of which the OS keeps
/// the low 8 bits (so only the value's low 7 bits matter, as on QEMU). Reads return 0,
/// as QEMU answers them (measured on 7.2).
pub struct DebugExit(pub Arc<VmControl>);

/// Where the debug-exit ports are: QEMU's `iobase` and `iosize` properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugExitPorts {
    /// The first port.
    pub iobase: u16,
    /// How many ports (1..=4 is what QEMU's device is used with; any width works).
    pub iosize: u16,
}

impl Default for DebugExitPorts {
    /// kvmbus's default is what kvm-unit-tests passes QEMU: 0xf4, 4 ports.
    fn default() -> DebugExitPorts {
        DebugExitPorts {
            iobase: super::DEBUG_EXIT_PORT,
            iosize: 4,
        }
    }
}

impl BusDevice for DebugExit {
    fn read(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&self, _offset: u64, data: &[u8]) {
        if matches!(data.len(), 1 | 2 | 4) {
            // The status keeps 8 bits of (value << 1) | 1: the value's low byte decides.
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
    fn debug_exit_takes_every_width_and_reads_zero() {
        // (offset, bytes written, process exit status as QEMU's exit() leaves it)
        for (off, data, status) in [
            (0u64, &[5u8][..], 11),
            (1, &[0xa1, 0x01][..], 0x43),
            (0, &[0xa1, 0x01, 0, 0][..], 0x43),
            (3, &[0x7f][..], 0xff),
            (0, &[0x80, 0xff, 0xff, 0xff][..], 1),
        ] {
            let c = Arc::new(VmControl::default());
            let d = DebugExit(c.clone());
            let mut r = [0xffu8; 4];
            d.read(0, &mut r);
            assert_eq!(r, [0; 4]);
            assert!(!c.stopping());
            d.write(off, data);
            let code = c.reason().expect("stopped").exit_code();
            assert_eq!(code, status, "{data:x?}");
            let full = (u32::from_le_bytes([
                data[0],
                *data.get(1).unwrap_or(&0),
                *data.get(2).unwrap_or(&0),
                *data.get(3).unwrap_or(&0),
            ]) << 1)
                | 1;
            assert_eq!(code, (full & 0xff) as i32);
        }
        let c = Arc::new(VmControl::default());
        DebugExit(c.clone()).write(0, &[1, 2, 3]);
        assert!(!c.stopping(), "3-byte writes do not exist on x86");
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
