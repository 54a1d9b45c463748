//! Parsing KVM's binary statistics layout (`struct kvm_stats_header` and
//! `struct kvm_stats_desc` in `linux/kvm.h`), from bytes, without KVM.

use crate::{Error, Result};

/// Size of `struct kvm_stats_header`: six `__u32`.
pub(crate) const HEADER_SIZE: usize = 24;
/// Fixed part of `struct kvm_stats_desc` before the name.
pub(crate) const DESC_FIXED: usize = 16;

const TYPE_MASK: u32 = 0xF;
const UNIT_SHIFT: u32 = 4;
const UNIT_MASK: u32 = 0xF << UNIT_SHIFT;
const BASE_SHIFT: u32 = 8;
const BASE_MASK: u32 = 0xF << BASE_SHIFT;

/// `struct kvm_stats_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub name_size: u32,
    pub num_desc: u32,
    pub desc_offset: u32,
    pub data_offset: u32,
}

/// `KVM_STATS_TYPE_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatType {
    Cumulative,
    Instant,
    Peak,
    Histogram,
}

/// `KVM_STATS_UNIT_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    None,
    Bytes,
    Seconds,
    Cycles,
    Boolean,
}

/// One parsed `struct kvm_stats_desc`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Desc {
    pub name: String,
    pub stat_type: StatType,
    pub unit: Unit,
    /// Multiply the raw value by this to get the unit (`base ^ exponent`).
    pub scale: f64,
    /// Number of `u64` values.
    pub size: u16,
    /// Byte offset of the first value inside the data block.
    pub offset: u32,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| Error::StatsFormat(format!("truncated at byte {at}")))
}

fn u16_at(b: &[u8], at: usize) -> Result<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| Error::StatsFormat(format!("truncated at byte {at}")))
}

/// Parses the header (native endianness is little on x86, the only KVM target here).
pub(crate) fn parse_header(b: &[u8]) -> Result<Header> {
    if b.len() < HEADER_SIZE {
        return Err(Error::StatsFormat("header shorter than 24 bytes".into()));
    }
    let h = Header {
        name_size: u32_at(b, 4)?,
        num_desc: u32_at(b, 8)?,
        desc_offset: u32_at(b, 16)?,
        data_offset: u32_at(b, 20)?,
    };
    if h.name_size == 0 || h.name_size > 4096 || h.num_desc > 65536 {
        return Err(Error::StatsFormat(format!(
            "implausible header: name_size {} num_desc {}",
            h.name_size, h.num_desc
        )));
    }
    Ok(h)
}

/// Parses `num_desc` descriptors of `DESC_FIXED + name_size` bytes each.
pub(crate) fn parse_descs(b: &[u8], h: &Header) -> Result<Vec<Desc>> {
    let stride = DESC_FIXED + h.name_size as usize;
    (0..h.num_desc as usize)
        .map(|i| parse_desc(b, i * stride, h.name_size as usize))
        .collect()
}

fn parse_desc(b: &[u8], at: usize, name_size: usize) -> Result<Desc> {
    let flags = u32_at(b, at)?;
    let exponent = u16_at(b, at + 4)? as i16;
    let size = u16_at(b, at + 6)?;
    let offset = u32_at(b, at + 8)?;
    let raw_name = b
        .get(at + DESC_FIXED..at + DESC_FIXED + name_size)
        .ok_or_else(|| Error::StatsFormat(format!("truncated name at byte {at}")))?;
    let end = raw_name
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(raw_name.len());
    let name = String::from_utf8_lossy(&raw_name[..end]).into_owned();
    let stat_type = match flags & TYPE_MASK {
        0 => StatType::Cumulative,
        1 => StatType::Instant,
        2 => StatType::Peak,
        _ => StatType::Histogram,
    };
    let unit = match (flags & UNIT_MASK) >> UNIT_SHIFT {
        1 => Unit::Bytes,
        2 => Unit::Seconds,
        3 => Unit::Cycles,
        4 => Unit::Boolean,
        _ => Unit::None,
    };
    let base: f64 = if (flags & BASE_MASK) >> BASE_SHIFT == 1 {
        2.0
    } else {
        10.0
    };
    Ok(Desc {
        name,
        stat_type,
        unit,
        scale: base.powi(i32::from(exponent)),
        size,
        offset,
    })
}

/// Bytes the data block must hold to cover every descriptor.
pub(crate) fn data_len(descs: &[Desc]) -> usize {
    descs
        .iter()
        .map(|d| d.offset as usize + 8 * d.size as usize)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc_bytes(flags: u32, exponent: i16, size: u16, offset: u32, name: &str) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&flags.to_le_bytes());
        v.extend_from_slice(&exponent.to_le_bytes());
        v.extend_from_slice(&size.to_le_bytes());
        v.extend_from_slice(&offset.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        let mut n = name.as_bytes().to_vec();
        n.resize(16, 0);
        v.extend_from_slice(&n);
        v
    }

    #[test]
    fn parses_header_and_descriptors() {
        let mut hdr = Vec::new();
        for v in [0u32, 16, 2, 24, 40, 104] {
            hdr.extend_from_slice(&v.to_le_bytes());
        }
        let h = parse_header(&hdr).unwrap();
        assert_eq!(
            h,
            Header {
                name_size: 16,
                num_desc: 2,
                desc_offset: 40,
                data_offset: 104
            }
        );
        let mut d = desc_bytes(0, 0, 1, 0, "exits");
        d.extend(desc_bytes(2 << 4, -9, 1, 8, "halt_wait_ns"));
        let descs = parse_descs(&d, &h).unwrap();
        assert_eq!(descs[0].name, "exits");
        assert_eq!(descs[0].stat_type, StatType::Cumulative);
        assert_eq!(descs[1].unit, Unit::Seconds);
        assert!((descs[1].scale - 1e-9).abs() < 1e-20);
        assert_eq!(data_len(&descs), 16);
    }

    #[test]
    fn rejects_truncated_input() {
        assert!(parse_header(&[0; 10]).is_err());
        let h = Header {
            name_size: 16,
            num_desc: 2,
            desc_offset: 0,
            data_offset: 0,
        };
        assert!(parse_descs(&desc_bytes(0, 0, 1, 0, "exits"), &h).is_err());
    }
}
