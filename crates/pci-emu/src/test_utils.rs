//! Helpers for tests here and in other crates (feature `test-utils`): a plain PCI
//! function built on [`PciConfig`] whose BARs are RAM with an MSI-X table, and a
//! settable [`PendingBits`] source.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::config::{PciConfig, PciIds, PendingBits};
use crate::types::{BarKind, FunctionEvent, IrqSource, PciFunction};

/// IDs of the [`TestFunction::standard`] function.
pub const TEST_IDS: PciIds = PciIds {
    vendor_id: 0x1234,
    device_id: 0x5678,
    class_code: 0x08_80_00,
    revision: 1,
    subsystem_vendor_id: 0x1234,
    subsystem_id: 0x0001,
};

/// A function whose BARs are plain memory, except where its config places an MSI-X
/// table or PBA.
#[derive(Debug)]
pub struct TestFunction {
    /// Its configuration space.
    pub config: PciConfig,
    /// Contents of each BAR (sized to the BAR, at most 64 KiB; beyond reads all-ones).
    pub bar_data: Vec<Vec<u8>>,
    name: String,
}

impl TestFunction {
    /// Wraps `config`; BAR contents start as zeros.
    pub fn new(config: PciConfig, name: &str) -> Self {
        let mut bar_data = vec![Vec::new(); 6];
        for b in config.bars() {
            bar_data[usize::from(b.index)] = vec![0; b.size.min(1 << 16) as usize];
        }
        TestFunction {
            config,
            bar_data,
            name: name.to_string(),
        }
    }

    /// The config used by [`standard`](Self::standard): BAR0 I/O 64 bytes, BAR1 32-bit
    /// memory 4 KiB, BAR2 64-bit prefetchable memory 16 KiB holding an 8-vector MSI-X
    /// table at 0 and its PBA at 0x2000; MSI with 4 vectors, 64-bit, per-vector mask; a
    /// PCI Express capability; a vendor capability with payload `[1, 2, 3, 4, 5]`.
    pub fn standard_config() -> PciConfig {
        let mut c = PciConfig::new(TEST_IDS);
        let ok = "the standard test config is valid";
        c.add_bar(0, BarKind::Io, 64).expect(ok);
        c.add_bar(
            1,
            BarKind::Mem32 {
                prefetchable: false,
            },
            0x1000,
        )
        .expect(ok);
        c.add_bar(2, BarKind::Mem64 { prefetchable: true }, 0x4000)
            .expect(ok);
        c.add_msix(8, 2, 0, 2, 0x2000).expect(ok);
        c.add_msi(4, true, true).expect(ok);
        c.add_pcie_cap().expect(ok);
        c.add_vendor_cap(&[1, 2, 3, 4, 5]).expect(ok);
        c
    }

    /// A function with [`standard_config`](Self::standard_config).
    pub fn standard() -> Self {
        Self::new(Self::standard_config(), "test-function")
    }

    /// A standard function already behind the lock the bus wants.
    pub fn shared() -> Arc<Mutex<TestFunction>> {
        Arc::new(Mutex::new(Self::standard()))
    }

    fn bar_slice(&mut self, bar: u8, offset: u64, len: usize) -> Option<&mut [u8]> {
        let data = self.bar_data.get_mut(usize::from(bar))?;
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(len)?;
        data.get_mut(start..end)
    }
}

impl PciFunction for TestFunction {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        self.config.read(offset, data);
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<FunctionEvent> {
        self.config.write(offset, data)
    }

    fn bar_read(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        if self.config.msix_bar_read(bar, offset, data) {
            return;
        }
        let len = data.len();
        match self.bar_slice(bar, offset, len) {
            Some(s) => data.copy_from_slice(s),
            None => data.fill(0xFF),
        }
    }

    fn bar_write(&mut self, bar: u8, offset: u64, data: &[u8]) -> Vec<FunctionEvent> {
        let mut events = Vec::new();
        if !self.config.msix_bar_write(bar, offset, data, &mut events) {
            if let Some(s) = self.bar_slice(bar, offset, data.len()) {
                s.copy_from_slice(data);
            }
        }
        events
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// A [`PendingBits`] source whose bits tests set by hand.
#[derive(Debug, Default)]
pub struct TestPendingBits {
    bits: Mutex<HashSet<(IrqSource, u16)>>,
}

impl TestPendingBits {
    /// Sets or clears the pending bit of a vector.
    pub fn set(&self, source: IrqSource, vector: u16, pending: bool) {
        let mut bits = self.bits.lock().unwrap_or_else(|e| e.into_inner());
        if pending {
            bits.insert((source, vector));
        } else {
            bits.remove(&(source, vector));
        }
    }
}

impl PendingBits for TestPendingBits {
    fn pending(&self, source: IrqSource, vector: u16) -> bool {
        self.bits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(source, vector))
    }
}
