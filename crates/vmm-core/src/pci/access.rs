//! Bus devices through which the guest reaches PCI: CAM, ECAM and BARs.
//!
//! They sit on the PIO/MMIO buses, which the platform owns, so they reach the platform
//! through a `Weak` reference (no `Arc` cycle keeps the platform alive); once it is gone
//! they read all-ones and drop writes.

use std::sync::{Arc, Mutex, Weak};

use pci_emu::{Bdf, PciBus, PciFunction, UnlockedBar};

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
        // The bus lock is held only to resolve the access, not across the function.
        let access = p.bus().cam_resolve_read(offset as u16, data.len());
        access.read(data);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        let Some(p) = self.0.upgrade() else { return };
        p.config_accesses.cam_write.increment(1);
        let access = p.bus().cam_resolve_write(offset as u16, data);
        let events = access.write(data);
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
        let access = p.bus().ecam_resolve(offset, data.len());
        access.read(data);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        let Some(p) = self.0.upgrade() else { return };
        p.config_accesses.ecam_write.increment(1);
        let access = p.bus().ecam_resolve(offset, data.len());
        let events = access.write(data);
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
    /// Registers the function serves without its lock (tried first).
    pub unlocked: Option<Arc<dyn UnlockedBar>>,
}

impl BusDevice for BarRegion {
    fn read(&self, offset: u64, data: &mut [u8]) {
        if self.unlocked.as_ref().is_some_and(|u| u.read(offset, data)) {
            return;
        }
        self.function
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bar_read(self.bar, offset, data);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        if self
            .unlocked
            .as_ref()
            .is_some_and(|u| u.write(offset, data))
        {
            return;
        }
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
