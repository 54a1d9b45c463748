//! The host bridge at 00:00.0: an Intel Q35 MCH by its IDs (0x8086:0x29c0, class
//! 0x060000), with no BARs and no capabilities. Guests expect a host bridge at device 0
//! before they scan the rest of bus 0.

use crate::config::{PciConfig, PciIds};
use crate::types::{FunctionEvent, PciFunction};

/// The Q35 MCH host bridge.
#[derive(Debug)]
pub struct HostBridge {
    config: PciConfig,
}

impl HostBridge {
    /// Vendor ID (Intel).
    pub const VENDOR_ID: u16 = 0x8086;
    /// Device ID (Q35 MCH).
    pub const DEVICE_ID: u16 = 0x29c0;
    /// Class code (bridge, host bridge).
    pub const CLASS_CODE: u32 = 0x06_00_00;

    /// A host bridge.
    pub fn new() -> Self {
        HostBridge {
            config: PciConfig::new(PciIds {
                vendor_id: Self::VENDOR_ID,
                device_id: Self::DEVICE_ID,
                class_code: Self::CLASS_CODE,
                revision: 0,
                subsystem_vendor_id: 0x1af4,
                subsystem_id: 0x1100,
            }),
        }
    }

    /// Its configuration space.
    pub fn config(&self) -> &PciConfig {
        &self.config
    }
}

impl Default for HostBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl PciFunction for HostBridge {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        self.config.read(offset, data);
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<FunctionEvent> {
        self.config.write(offset, data)
    }

    fn bar_read(&mut self, _bar: u8, _offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
    }

    fn bar_write(&mut self, _bar: u8, _offset: u64, _data: &[u8]) -> Vec<FunctionEvent> {
        Vec::new()
    }

    fn name(&self) -> &str {
        "host-bridge"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_class() {
        let mut hb = HostBridge::new();
        let mut d = [0u8; 4];
        hb.config_read(0, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x29c0_8086);
        hb.config_read(8, &mut d);
        assert_eq!(u32::from_le_bytes(d) >> 8, 0x06_00_00);
        hb.config_read(0x0C, &mut d);
        assert_eq!(d[2], 0, "type-0 header, single function");
        hb.bar_read(0, 0, &mut d);
        assert_eq!(d, [0xFF; 4]);
        assert!(hb.bar_write(0, 0, &d).is_empty());
        assert_eq!(hb.name(), "host-bridge");
    }
}
