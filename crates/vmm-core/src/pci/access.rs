//! Bus devices through which the guest reaches PCI: CAM, ECAM and BARs.

use std::sync::{Arc, Mutex};

use pci_emu::{Bdf, PciBus, PciFunction};

use super::PciPlatform;
use crate::bus::BusDevice;

/// Ports 0xCF8..0xCFF (address latch and data window).
pub struct CamPort(pub Arc<PciPlatform>);

impl BusDevice for CamPort {
    fn read(&self, offset: u64, data: &mut [u8]) {
        self.0.config_accesses.cam_read.increment(1);
        self.0.bus().cam_read(offset as u16, data);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        self.0.config_accesses.cam_write.increment(1);
        // The bus lock is released before the events are applied.
        let events = self.0.bus().cam_write(offset as u16, data);
        self.0.apply(&events);
    }
}

/// The ECAM window (MMIO).
pub struct EcamWindow(pub Arc<PciPlatform>);

impl BusDevice for EcamWindow {
    fn read(&self, offset: u64, data: &mut [u8]) {
        self.0.config_accesses.ecam_read.increment(1);
        self.0.bus().ecam_read(offset, data);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        self.0.config_accesses.ecam_write.increment(1);
        let events = self.0.bus().ecam_write(offset, data);
        self.0.apply(&events);
    }
}

/// One decoding BAR of one function.
pub struct BarRegion {
    /// The platform (to apply events, e.g. MSI-X table writes).
    pub platform: Arc<PciPlatform>,
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
        if !events.is_empty() {
            let events = PciBus::wrap(self.bdf, events);
            self.platform.apply(&events);
            self.platform.bus().publish(&events);
        }
    }
}
