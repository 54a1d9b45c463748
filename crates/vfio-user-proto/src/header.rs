//! The message header: id, command, size, flags, errno.

use crate::error::{malformed, Result};

/// Bytes in a header.
pub const HEADER_SIZE: usize = 16;
/// Flags type field (bits 0-3): a command.
pub const TYPE_COMMAND: u32 = 0;
/// Flags type field: a reply.
pub const TYPE_REPLY: u32 = 1;
/// Flag: the sender wants no reply.
pub const FLAG_NO_REPLY: u32 = 1 << 4;
/// Flag: the reply is an error; `error` holds the errno.
pub const FLAG_ERROR: u32 = 1 << 5;

/// Commands of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Command {
    /// Version and capability negotiation.
    Version = 1,
    /// Map client memory for server DMA.
    DmaMap = 2,
    /// Unmap it.
    DmaUnmap = 3,
    /// Device info (regions, IRQ types).
    DeviceGetInfo = 4,
    /// One region's info.
    DeviceGetRegionInfo = 5,
    /// Region ioeventfds (not used here).
    DeviceGetRegionIoFds = 6,
    /// One IRQ index's info.
    DeviceGetIrqInfo = 7,
    /// Set IRQ fds, mask, unmask, trigger.
    DeviceSetIrqs = 8,
    /// Read a region.
    RegionRead = 9,
    /// Write a region.
    RegionWrite = 10,
    /// Server reads client memory.
    DmaRead = 11,
    /// Server writes client memory.
    DmaWrite = 12,
    /// Reset the device.
    DeviceReset = 13,
    /// Dirty page tracking (not used here).
    DirtyPages = 14,
}

impl Command {
    /// The command with this number.
    pub fn from_u16(v: u16) -> Option<Command> {
        use Command::*;
        Some(match v {
            1 => Version,
            2 => DmaMap,
            3 => DmaUnmap,
            4 => DeviceGetInfo,
            5 => DeviceGetRegionInfo,
            6 => DeviceGetRegionIoFds,
            7 => DeviceGetIrqInfo,
            8 => DeviceSetIrqs,
            9 => RegionRead,
            10 => RegionWrite,
            11 => DmaRead,
            12 => DmaWrite,
            13 => DeviceReset,
            14 => DirtyPages,
            _ => return None,
        })
    }

    /// Whether the spec's reply to this command never carries fds: the region and DMA
    /// accesses, the hot path, whose replies are then read without a control buffer.
    pub fn reply_has_no_fds(self) -> bool {
        matches!(
            self,
            Command::RegionRead | Command::RegionWrite | Command::DmaRead | Command::DmaWrite
        )
    }
}

/// The header of every message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    /// Message id; a reply carries its request's.
    pub msg_id: u16,
    /// Command number (kept raw so unknown commands can be answered with an error).
    pub command: u16,
    /// Size of the whole message, header included.
    pub size: u32,
    /// Type (bits 0-3), no-reply, error.
    pub flags: u32,
    /// The errno of an error reply.
    pub error: u32,
}

impl Header {
    /// True for a reply.
    pub fn is_reply(&self) -> bool {
        self.flags & 0xf == TYPE_REPLY
    }
    /// True for an error reply.
    pub fn is_error(&self) -> bool {
        self.flags & FLAG_ERROR != 0
    }
    /// True if the sender wants no reply.
    pub fn no_reply(&self) -> bool {
        self.flags & FLAG_NO_REPLY != 0
    }
    /// Little-endian bytes.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..2].copy_from_slice(&self.msg_id.to_le_bytes());
        b[2..4].copy_from_slice(&self.command.to_le_bytes());
        b[4..8].copy_from_slice(&self.size.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.error.to_le_bytes());
        b
    }
    /// Parses the first 16 bytes of `b`.
    pub fn decode(b: &[u8]) -> Result<Header> {
        if b.len() < HEADER_SIZE {
            return Err(malformed("header", format!("{} bytes", b.len())));
        }
        let mut r = crate::msg::Reader::new("header", b);
        Ok(Header {
            msg_id: r.u16()?,
            command: r.u16()?,
            size: r.u32()?,
            flags: r.u32()?,
            error: r.u32()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_reads_flags() {
        let h = Header {
            msg_id: 0xbeef,
            command: 9,
            size: 40,
            flags: TYPE_REPLY | FLAG_ERROR,
            error: 22,
        };
        let d = Header::decode(&h.encode()).unwrap();
        assert_eq!(d, h);
        assert!(d.is_reply() && d.is_error() && !d.no_reply());
        assert!(Header::decode(&[0u8; 15]).is_err());
    }

    #[test]
    fn every_command_number_maps_back() {
        for v in 1..=14u16 {
            assert_eq!(Command::from_u16(v).map(|c| c as u16), Some(v));
        }
        assert_eq!(Command::from_u16(0), None);
        assert_eq!(Command::from_u16(15), None);
    }
}
