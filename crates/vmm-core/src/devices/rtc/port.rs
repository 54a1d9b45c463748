//! The RTC's two ports on the PIO bus. Wider accesses are taken a byte at a time, each
//! byte to its own port, as the memory core splits them for QEMU's 1-byte ports.

use std::sync::Arc;

use super::Rtc;
use crate::bus::BusDevice;

/// Ports 0x70-0x71.
pub struct RtcPort(pub Arc<Rtc>);

impl BusDevice for RtcPort {
    fn read(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = self.0.read_port(offset + i as u64);
        }
    }
    fn write(&self, offset: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            self.0.write_port(offset + i as u64, *b);
        }
    }
}
