//! Bus devices through which the guest reaches PCI: CAM, ECAM and BARs.
//!
//! They sit on the PIO/MMIO buses, which the platform owns, so they reach the platform
//! through a `Weak` reference (no `Arc` cycle keeps the platform alive); once it is gone
//! they read all-ones and drop writes.

use std::sync::{Arc, Mutex, Weak};

use pci_emu::{Bdf, PciBus, PciFunction};

use super::PciPlatform;
use crate::bus::BusDevice;

/// Ports 0xCF8..0xCFF (address latch and data window).
pub struct CamPort(pub Weak<PciPlatform>);

impl BusDevice for CamPort {
    fn read(&self, offset: u64, data: &mut [u8]) {
        let Some(p) = self.0.upgrade() else {
            return data.fill(0xff);
        };
        p.config_accesses.cam_read.increment(1);
        p.bus().cam_read(offset as u16, data);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        let Some(p) = self.0.upgrade() else { return };
        p.config_accesses.cam_write.increment(1);
        // The bus lock is released before the events are applied.
        let events = p.bus().cam_write(offset as u16, data);
        p.apply(&events);
    }
}

/// The ECAM window (MMIO).
pub struct EcamWindow(pub Weak<PciPlatform>);

impl BusDevice for EcamWindow {
    fn read(&self, offset: u64, data: &mut [u8]) {
        let Some(p) = self.0.upgrade() else {
            return data.fill(0xff);
        };
        p.config_accesses.ecam_read.increment(1);
        p.bus().ecam_read(offset, data);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        let Some(p) = self.0.upgrade() else { return };
        p.config_accesses.ecam_write.increment(1);
        let events = p.bus().ecam_write(offset, data);
        p.apply(&events);
    }
}

/// One decoding BAR of one function.
pub struct BarRegion {
    /// The platform (to apply events, e.g. MSI-X table writes).
    pub platform: Weak<PciPlatform>,
    /// The function.
    pub function: Arc<Mutex<dyn PciFunction>>,
    /// Its address.
    pub bdf: Bdf,
    /// The BAR index.
    pub bar: u8,
}

impl BusDevice for BarRegion {
    fn read(&self, offset: u64, data: &mut [u8]) {
        self.function
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bar_read(self.bar, offset, data);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        let events = self
            .function
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bar_write(self.bar, offset, data);
        if let (false, Some(p)) = (events.is_empty(), self.platform.upgrade()) {
            let events = PciBus::wrap(self.bdf, events);
            p.apply(&events);
        }
    }
}
