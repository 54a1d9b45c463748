//! The reset control register at port 0xCF9, the FADT's reset register (QEMU's PIIX3
//! and ICH9 "RCR", `hw/isa/piix3.c` `rcr_write`): one byte. A write with bit 2
//! (RST_CPU) set requests a reset; any other write keeps bit 1 (SYS_RST, the reset
//! type) and drops the rest; reads return what was kept.
//!
//! kvmbus has no machine reset, so a reset request ends the VM as QEMU's `-no-reboot`
//! does, with exit code 4 (as a triple fault, which is a reset on a PC).
//!
//! The register is one byte inside the PCI CAM ports 0xCF8..0xCFF; it is mapped as a bus
//! overlay, so only a 1-byte access at 0xCF9 reaches it and a dword at 0xCF8 is still
//! the CAM address latch (QEMU maps it as a subregion above the CAM ports likewise).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::bus::BusDevice;
use crate::control::{StopReason, VmControl};

/// The port (as the FADT names it).
pub const RESET_CONTROL_PORT: u16 = crate::arch::acpi::RESET_PORT;
/// RST_CPU: writing it set performs the reset.
const RST_CPU: u8 = 1 << 2;
/// SYS_RST: hard (1) or soft (0) reset type; the only bit the register keeps.
const SYS_RST: u8 = 1 << 1;

/// The register.
pub struct ResetControl {
    value: AtomicU8,
    control: Arc<VmControl>,
}

impl ResetControl {
    /// A register reading 0 that stops the VM through `control` on a reset request.
    pub fn new(control: Arc<VmControl>) -> ResetControl {
        ResetControl {
            value: AtomicU8::new(0),
            control,
        }
    }
}

impl BusDevice for ResetControl {
    fn read(&self, _offset: u64, data: &mut [u8]) {
        data.fill(self.value.load(Ordering::Relaxed));
    }
    fn write(&self, _offset: u64, data: &[u8]) {
        let &[v] = data else { return };
        if v & RST_CPU != 0 {
            self.control.request_stop(StopReason::Reset(format!(
                "the guest wrote {v:#04x} to the reset control register {RESET_CONTROL_PORT:#x}"
            )));
            return;
        }
        self.value.store(v & SYS_RST, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_reset_type_and_resets_on_rst_cpu() {
        let control = Arc::new(VmControl::default());
        let rcr = ResetControl::new(control.clone());
        let mut d = [0u8];
        rcr.read(0, &mut d);
        assert_eq!(d, [0]);
        rcr.write(0, &[0x0b]); // SYS_RST kept, bits 0 and 3 dropped, no RST_CPU
        rcr.read(0, &mut d);
        assert_eq!(d, [0x02]);
        rcr.write(0, &[0x02, 0x04]); // not a byte: ignored
        assert_eq!(control.reason(), None);
        rcr.write(0, &[0x06]);
        let reason = control.reason().expect("a reset stops the VM");
        assert_eq!(reason.exit_code(), 4);
        assert!(reason.describe().contains("0x06"), "{}", reason.describe());
        rcr.read(0, &mut d);
        assert_eq!(d, [0x02], "a reset request does not change the register");
    }
}
