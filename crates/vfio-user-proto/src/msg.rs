//! Message payloads (everything after the header), one type per message, little-endian
//! as the spec lays them out. `decode` checks sizes and never panics.

use crate::error::{malformed, Result};
use crate::{CAP_SPARSE_MMAP, REGION_CAPS};

/// A bounds-checked little-endian reader.
pub(crate) struct Reader<'a> {
    what: &'static str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(what: &'static str, b: &'a [u8]) -> Self {
        Reader { what, b, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        match end {
            Some(end) => {
                let s = &self.b[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(malformed(
                self.what,
                format!("{} bytes, need {} at offset {}", self.b.len(), n, self.pos),
            )),
        }
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from(self.u32()?) | u64::from(self.u32()?) << 32)
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        self.take(n)
    }
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.pos..];
        self.pos = self.b.len();
        s
    }
}

fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// DMA_MAP: client memory `[address, address + size)` is the fd (sent with the message)
/// from file offset `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaMap {
    /// READ / WRITE permission flags.
    pub flags: u32,
    /// Offset into the fd.
    pub offset: u64,
    /// DMA (guest-physical) address.
    pub address: u64,
    /// Size in bytes.
    pub size: u64,
}

impl DmaMap {
    const SIZE: u32 = 32;
    /// Payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::SIZE as usize);
        put32(&mut v, Self::SIZE);
        put32(&mut v, self.flags);
        put64(&mut v, self.offset);
        put64(&mut v, self.address);
        put64(&mut v, self.size);
        v
    }
    /// Parses a payload.
    pub fn decode(b: &[u8]) -> Result<DmaMap> {
        let mut r = Reader::new("DMA_MAP", b);
        let argsz = r.u32()?;
        if argsz < Self::SIZE {
            return Err(malformed("DMA_MAP", format!("argsz {argsz}")));
        }
        let m = DmaMap {
            flags: r.u32()?,
            offset: r.u64()?,
            address: r.u64()?,
            size: r.u64()?,
        };
        if m.address.checked_add(m.size).is_none() {
            return Err(malformed("DMA_MAP", "address + size overflows"));
        }
        Ok(m)
    }
}

/// DMA_UNMAP (request and reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaUnmap {
    /// UNMAP_ALL etc.
    pub flags: u32,
    /// DMA address.
    pub address: u64,
    /// Size.
    pub size: u64,
}

impl DmaUnmap {
    const SIZE: u32 = 24;
    /// Payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::SIZE as usize);
        put32(&mut v, Self::SIZE);
        put32(&mut v, self.flags);
        put64(&mut v, self.address);
        put64(&mut v, self.size);
        v
    }
    /// Parses a payload.
    pub fn decode(b: &[u8]) -> Result<DmaUnmap> {
        let mut r = Reader::new("DMA_UNMAP", b);
        let argsz = r.u32()?;
        if argsz < Self::SIZE {
            return Err(malformed("DMA_UNMAP", format!("argsz {argsz}")));
        }
        Ok(DmaUnmap {
            flags: r.u32()?,
            address: r.u64()?,
            size: r.u64()?,
        })
    }
}

/// DEVICE_GET_INFO (request: `argsz` only matters; reply: everything).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// Flags (bit 1: PCI device; bit 0 reset supported).
    pub flags: u32,
    /// Number of regions.
    pub num_regions: u32,
    /// Number of IRQ indexes.
    pub num_irqs: u32,
}

impl DeviceInfo {
    const SIZE: u32 = 16;
    /// Payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::SIZE as usize);
        put32(&mut v, Self::SIZE);
        put32(&mut v, self.flags);
        put32(&mut v, self.num_regions);
        put32(&mut v, self.num_irqs);
        v
    }
    /// Parses a payload.
    pub fn decode(b: &[u8]) -> Result<DeviceInfo> {
        let mut r = Reader::new("DEVICE_GET_INFO", b);
        let argsz = r.u32()?;
        if argsz < Self::SIZE {
            return Err(malformed("DEVICE_GET_INFO", format!("argsz {argsz}")));
        }
        Ok(DeviceInfo {
            flags: r.u32()?,
            num_regions: r.u32()?,
            num_irqs: r.u32()?,
        })
    }
}

/// One mmap-able area of a region (sparse mmap capability).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SparseArea {
    /// Offset in the region.
    pub offset: u64,
    /// Size.
    pub size: u64,
}

/// Most sparse mmap areas accepted in one region info (over all its capabilities).
const MAX_SPARSE_AREAS: usize = 1024;

/// DEVICE_GET_REGION_INFO (request: `argsz` and `index`; reply: all, with the sparse
/// mmap areas when the client's `argsz` left room for them).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RegionInfo {
    /// The size of the reply buffer the client offers (request), or what the full
    /// answer needs (reply).
    pub argsz: u32,
    /// READ / WRITE / MMAP / CAPS.
    pub flags: u32,
    /// Region index.
    pub index: u32,
    /// Offset of the first capability from the start of the payload (0 = none).
    pub cap_offset: u32,
    /// Region size.
    pub size: u64,
    /// Offset to pass to mmap on the region's fd.
    pub offset: u64,
    /// Sparse mmap areas (empty: the whole region, if MMAP).
    pub sparse: Vec<SparseArea>,
}

impl RegionInfo {
    /// Size of the fixed part.
    pub const SIZE: u32 = 32;

    /// Payload bytes; the sparse areas are appended as a capability (and `argsz`,
    /// `cap_offset`, `CAPS` set) when there are any.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        let caps = !self.sparse.is_empty();
        let full = Self::SIZE
            + if caps {
                16 + 16 * self.sparse.len() as u32
            } else {
                0
            };
        put32(&mut v, self.argsz.max(if caps { full } else { Self::SIZE }));
        put32(
            &mut v,
            if caps {
                self.flags | REGION_CAPS
            } else {
                self.flags
            },
        );
        put32(&mut v, self.index);
        put32(&mut v, if caps { Self::SIZE } else { 0 });
        put64(&mut v, self.size);
        put64(&mut v, self.offset);
        if caps {
            v.extend_from_slice(&CAP_SPARSE_MMAP.to_le_bytes());
            v.extend_from_slice(&1u16.to_le_bytes()); // version
            put32(&mut v, 0); // next
            put32(&mut v, self.sparse.len() as u32);
            put32(&mut v, 0);
            for a in &self.sparse {
                put64(&mut v, a.offset);
                put64(&mut v, a.size);
            }
        }
        v
    }

    /// Parses a payload, following the capability chain (bounded, loop-safe).
    pub fn decode(b: &[u8]) -> Result<RegionInfo> {
        const W: &str = "DEVICE_GET_REGION_INFO";
        let mut r = Reader::new(W, b);
        let mut info = RegionInfo {
            argsz: r.u32()?,
            flags: r.u32()?,
            index: r.u32()?,
            cap_offset: r.u32()?,
            size: r.u64()?,
            offset: r.u64()?,
            sparse: Vec::new(),
        };
        if info.flags & REGION_CAPS == 0 || info.cap_offset == 0 || b.len() <= Self::SIZE as usize {
            return Ok(info);
        }
        let mut next = info.cap_offset as usize;
        let mut hops = 0;
        while next != 0 {
            hops += 1;
            if hops > 16 || next < Self::SIZE as usize {
                return Err(malformed(W, format!("capability chain at {next}")));
            }
            let mut c = Reader::new(W, b.get(next..).unwrap_or_default());
            let id = c.u16()?;
            let _version = c.u16()?;
            let following = c.u32()? as usize;
            if id == CAP_SPARSE_MMAP {
                let n = c.u32()? as usize;
                let _reserved = c.u32()?;
                // Counted over the whole chain, so that what decodes re-encodes (as one
                // capability) to something that decodes.
                if info.sparse.len() + n > MAX_SPARSE_AREAS {
                    return Err(malformed(
                        W,
                        format!("{} sparse areas", info.sparse.len() + n),
                    ));
                }
                for _ in 0..n {
                    let area = SparseArea {
                        offset: c.u64()?,
                        size: c.u64()?,
                    };
                    if area
                        .offset
                        .checked_add(area.size)
                        .is_none_or(|e| e > info.size)
                    {
                        return Err(malformed(W, "sparse area beyond the region"));
                    }
                    info.sparse.push(area);
                }
            }
            // The next capability starts after this one's bytes: a chain that goes
            // backwards or into this capability (re-reading its bytes) is malformed.
            let end = next + c.pos;
            if following != 0 && following < end {
                return Err(malformed(
                    W,
                    format!("capability at {following} overlaps the one at {next}..{end}"),
                ));
            }
            next = following;
        }
        Ok(info)
    }

    /// A request for region `index`, offering `argsz` bytes for the reply.
    pub fn request(index: u32, argsz: u32) -> Vec<u8> {
        RegionInfo {
            argsz,
            index,
            ..Default::default()
        }
        .encode()
    }
}

/// DEVICE_GET_IRQ_INFO (request: `index`; reply: all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IrqInfo {
    /// EVENTFD / MASKABLE / AUTOMASKED / NORESIZE.
    pub flags: u32,
    /// IRQ index (INTx, MSI, MSI-X, ...).
    pub index: u32,
    /// Number of IRQs in it.
    pub count: u32,
}

impl IrqInfo {
    const SIZE: u32 = 16;
    /// Payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::SIZE as usize);
        put32(&mut v, Self::SIZE);
        put32(&mut v, self.flags);
        put32(&mut v, self.index);
        put32(&mut v, self.count);
        v
    }
    /// Parses a payload.
    pub fn decode(b: &[u8]) -> Result<IrqInfo> {
        let mut r = Reader::new("DEVICE_GET_IRQ_INFO", b);
        let argsz = r.u32()?;
        if argsz < Self::SIZE {
            return Err(malformed("DEVICE_GET_IRQ_INFO", format!("argsz {argsz}")));
        }
        Ok(IrqInfo {
            flags: r.u32()?,
            index: r.u32()?,
            count: r.u32()?,
        })
    }
}

/// DEVICE_SET_IRQS: with DATA_EVENTFD the fds travel by SCM_RIGHTS, `count` of them
/// (none with count 0: disable); with DATA_BOOL, `data` holds one byte per IRQ.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SetIrqs {
    /// DATA_* | ACTION_*.
    pub flags: u32,
    /// IRQ index.
    pub index: u32,
    /// First IRQ.
    pub start: u32,
    /// Number of IRQs.
    pub count: u32,
    /// DATA_BOOL bytes.
    pub data: Vec<u8>,
}

impl SetIrqs {
    const SIZE: u32 = 20;
    /// Payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::SIZE as usize + self.data.len());
        put32(&mut v, Self::SIZE + self.data.len() as u32);
        put32(&mut v, self.flags);
        put32(&mut v, self.index);
        put32(&mut v, self.start);
        put32(&mut v, self.count);
        v.extend_from_slice(&self.data);
        v
    }
    /// Parses a payload; checks the flags name exactly one data type and one action and
    /// that DATA_BOOL carries `count` bytes.
    pub fn decode(b: &[u8]) -> Result<SetIrqs> {
        const W: &str = "DEVICE_SET_IRQS";
        let mut r = Reader::new(W, b);
        let argsz = r.u32()?;
        let mut s = SetIrqs {
            flags: r.u32()?,
            index: r.u32()?,
            start: r.u32()?,
            count: r.u32()?,
            data: Vec::new(),
        };
        if argsz < Self::SIZE || argsz as usize > b.len() {
            return Err(malformed(W, format!("argsz {argsz} of {} bytes", b.len())));
        }
        let data_bits = s.flags & 0x7;
        let action_bits = (s.flags >> 3) & 0x7;
        if data_bits.count_ones() != 1 || action_bits.count_ones() != 1 || s.flags >> 6 != 0 {
            return Err(malformed(W, format!("flags {:#x}", s.flags)));
        }
        if s.start.checked_add(s.count).is_none() {
            return Err(malformed(W, "start + count overflows"));
        }
        if s.flags & crate::IRQ_SET_DATA_BOOL != 0 {
            s.data = r.bytes(s.count as usize)?.to_vec();
        }
        Ok(s)
    }
}

/// REGION_READ / REGION_WRITE: request and reply. A read request and a write reply
/// carry no data; a read reply and a write request carry `count` bytes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RegionAccess {
    /// Offset in the region.
    pub offset: u64,
    /// Region index.
    pub region: u32,
    /// Bytes.
    pub count: u32,
    /// The bytes (when the message carries them).
    pub data: Vec<u8>,
}

impl RegionAccess {
    /// Size of the fixed part.
    pub const SIZE: usize = 16;
    /// Payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::SIZE + self.data.len());
        put64(&mut v, self.offset);
        put32(&mut v, self.region);
        put32(&mut v, self.count);
        v.extend_from_slice(&self.data);
        v
    }
    /// Parses a payload; data, if present, must be exactly `count` bytes.
    pub fn decode(b: &[u8]) -> Result<RegionAccess> {
        const W: &str = "REGION_READ/WRITE";
        let mut r = Reader::new(W, b);
        let mut a = RegionAccess {
            offset: r.u64()?,
            region: r.u32()?,
            count: r.u32()?,
            data: Vec::new(),
        };
        let rest = r.rest();
        if !rest.is_empty() && rest.len() != a.count as usize {
            return Err(malformed(
                W,
                format!("{} data bytes, count {}", rest.len(), a.count),
            ));
        }
        a.data = rest.to_vec();
        Ok(a)
    }
}

/// DMA_READ / DMA_WRITE (server to client): like [`RegionAccess`] with an address.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DmaAccess {
    /// DMA address.
    pub address: u64,
    /// Bytes.
    pub count: u64,
    /// The bytes (read reply, write request).
    pub data: Vec<u8>,
}

impl DmaAccess {
    /// Payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16 + self.data.len());
        put64(&mut v, self.address);
        put64(&mut v, self.count);
        v.extend_from_slice(&self.data);
        v
    }
    /// Parses a payload; data, if present, must be exactly `count` bytes.
    pub fn decode(b: &[u8]) -> Result<DmaAccess> {
        const W: &str = "DMA_READ/WRITE";
        let mut r = Reader::new(W, b);
        let mut a = DmaAccess {
            address: r.u64()?,
            count: r.u64()?,
            data: Vec::new(),
        };
        let rest = r.rest();
        if !rest.is_empty() && rest.len() as u64 != a.count {
            return Err(malformed(
                W,
                format!("{} data bytes, count {}", rest.len(), a.count),
            ));
        }
        if a.address.checked_add(a.count).is_none() {
            return Err(malformed(W, "address + count overflows"));
        }
        a.data = rest.to_vec();
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    #[test]
    fn fixed_messages_round_trip() {
        let m = DmaMap {
            flags: DMA_READ | DMA_WRITE,
            offset: 0x1000,
            address: 0x10_0000,
            size: 0x20_0000,
        };
        assert_eq!(m.encode().len(), 32);
        assert_eq!(DmaMap::decode(&m.encode()).unwrap(), m);
        let u = DmaUnmap {
            flags: 0,
            address: 0x10_0000,
            size: 0x1000,
        };
        assert_eq!(DmaUnmap::decode(&u.encode()).unwrap(), u);
        let d = DeviceInfo {
            flags: 3,
            num_regions: 9,
            num_irqs: 5,
        };
        assert_eq!(DeviceInfo::decode(&d.encode()).unwrap(), d);
        let i = IrqInfo {
            flags: IRQ_INFO_EVENTFD | IRQ_INFO_MASKABLE,
            index: IRQ_MSIX,
            count: 8,
        };
        assert_eq!(IrqInfo::decode(&i.encode()).unwrap(), i);
    }

    #[test]
    fn region_info_round_trips_with_and_without_sparse_areas() {
        let plain = RegionInfo {
            argsz: 32,
            flags: REGION_READ | REGION_WRITE,
            index: 2,
            cap_offset: 0,
            size: 256,
            offset: 0,
            sparse: vec![],
        };
        assert_eq!(RegionInfo::decode(&plain.encode()).unwrap(), plain);
        let sparse = RegionInfo {
            argsz: 0,
            flags: REGION_READ | REGION_MMAP,
            index: 1,
            cap_offset: 0,
            size: 0x4000,
            offset: 0x1000,
            sparse: vec![
                SparseArea {
                    offset: 0,
                    size: 0x1000,
                },
                SparseArea {
                    offset: 0x2000,
                    size: 0x2000,
                },
            ],
        };
        let bytes = sparse.encode();
        let d = RegionInfo::decode(&bytes).unwrap();
        assert_eq!(d.sparse, sparse.sparse);
        assert_eq!(d.argsz as usize, bytes.len());
        assert_eq!(d.cap_offset, 32);
        assert_ne!(d.flags & REGION_CAPS, 0);
    }

    #[test]
    fn region_info_rejects_bad_capability_chains() {
        let mut b = RegionInfo {
            flags: REGION_MMAP,
            index: 1,
            size: 0x1000,
            sparse: vec![SparseArea {
                offset: 0,
                size: 0x1000,
            }],
            ..Default::default()
        }
        .encode();
        // An area beyond the region.
        let mut beyond = b.clone();
        beyond[48..56].copy_from_slice(&0x800u64.to_le_bytes());
        assert!(RegionInfo::decode(&beyond).is_err());
        // A chain pointing at itself.
        b[36..40].copy_from_slice(&32u32.to_le_bytes());
        assert!(RegionInfo::decode(&b).is_err());
        // A cap offset past the end.
        let mut past = b.clone();
        past[12..16].copy_from_slice(&4000u32.to_le_bytes());
        assert!(RegionInfo::decode(&past).is_err());
    }

    /// A region info whose capability chain holds one sparse capability per entry of
    /// `counts`, laid out one after the other (areas of 16 bytes from offset 0).
    fn chained_sparse_caps(counts: &[usize]) -> Vec<u8> {
        let mut b = RegionInfo {
            flags: REGION_MMAP | REGION_CAPS,
            index: 1,
            cap_offset: RegionInfo::SIZE,
            size: 1 << 40,
            ..Default::default()
        }
        .encode();
        b[12..16].copy_from_slice(&RegionInfo::SIZE.to_le_bytes());
        for (i, &n) in counts.iter().enumerate() {
            let next = if i + 1 == counts.len() {
                0
            } else {
                (b.len() + 16 + 16 * n) as u32
            };
            b.extend_from_slice(&CAP_SPARSE_MMAP.to_le_bytes());
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&next.to_le_bytes());
            b.extend_from_slice(&(n as u32).to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            for k in 0..n as u64 {
                b.extend_from_slice(&(k * 16).to_le_bytes());
                b.extend_from_slice(&16u64.to_le_bytes());
            }
        }
        b
    }

    #[test]
    fn sparse_areas_are_bounded_over_the_whole_chain() {
        // 512 + 512 areas in two capabilities decode, and re-encode (as one) to bytes
        // that decode to the same areas.
        let ok = RegionInfo::decode(&chained_sparse_caps(&[512, 512])).unwrap();
        assert_eq!(ok.sparse.len(), MAX_SPARSE_AREAS);
        assert_eq!(RegionInfo::decode(&ok.encode()).unwrap().sparse, ok.sparse);
        // 600 + 600 used to decode to 1200 areas that re-encoded to one capability the
        // decoder refuses; now the chain itself is refused.
        let e = RegionInfo::decode(&chained_sparse_caps(&[600, 600])).unwrap_err();
        assert!(e.to_string().contains("1200 sparse areas"), "{e}");
    }

    #[test]
    fn set_irqs_round_trips_and_checks_flags() {
        let s = SetIrqs {
            flags: IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_TRIGGER,
            index: IRQ_MSIX,
            start: 4,
            count: 2,
            data: vec![],
        };
        assert_eq!(SetIrqs::decode(&s.encode()).unwrap(), s);
        let b = SetIrqs {
            flags: IRQ_SET_DATA_BOOL | IRQ_SET_ACTION_MASK,
            index: IRQ_MSI,
            start: 0,
            count: 3,
            data: vec![1, 0, 1],
        };
        assert_eq!(SetIrqs::decode(&b.encode()).unwrap(), b);
        let two_data = SetIrqs {
            flags: IRQ_SET_DATA_NONE | IRQ_SET_DATA_BOOL | IRQ_SET_ACTION_UNMASK,
            ..s.clone()
        };
        assert!(SetIrqs::decode(&two_data.encode()).is_err());
        let no_action = SetIrqs {
            flags: IRQ_SET_DATA_NONE,
            ..s.clone()
        };
        assert!(SetIrqs::decode(&no_action.encode()).is_err());
        // DATA_BOOL promising more bytes than sent.
        let mut short = b.encode();
        short.pop();
        short[0..4].copy_from_slice(&22u32.to_le_bytes());
        assert!(SetIrqs::decode(&short).is_err());
    }

    #[test]
    fn accesses_round_trip_and_check_data_length() {
        let rd = RegionAccess {
            offset: 8,
            region: 0,
            count: 4,
            data: vec![],
        };
        assert_eq!(RegionAccess::decode(&rd.encode()).unwrap(), rd);
        let wr = RegionAccess {
            data: vec![1, 2, 3, 4],
            ..rd.clone()
        };
        assert_eq!(RegionAccess::decode(&wr.encode()).unwrap(), wr);
        let mut bad = wr.encode();
        bad.push(5);
        assert!(RegionAccess::decode(&bad).is_err());
        let dma = DmaAccess {
            address: 0x1000,
            count: 3,
            data: vec![7, 8, 9],
        };
        assert_eq!(DmaAccess::decode(&dma.encode()).unwrap(), dma);
        let wrap = DmaAccess {
            address: u64::MAX,
            count: 2,
            data: vec![],
        };
        assert!(DmaAccess::decode(&wrap.encode()).is_err());
    }

    #[test]
    fn every_decoder_survives_every_truncation() {
        let samples: Vec<Vec<u8>> = vec![
            DmaMap {
                flags: 3,
                offset: 1,
                address: 2,
                size: 3,
            }
            .encode(),
            DmaUnmap {
                flags: 0,
                address: 1,
                size: 2,
            }
            .encode(),
            DeviceInfo::default().encode(),
            RegionInfo {
                size: 0x100,
                sparse: vec![SparseArea {
                    offset: 0,
                    size: 0x100,
                }],
                ..Default::default()
            }
            .encode(),
            IrqInfo::default().encode(),
            SetIrqs {
                flags: IRQ_SET_DATA_BOOL | IRQ_SET_ACTION_TRIGGER,
                count: 2,
                data: vec![1, 1],
                ..Default::default()
            }
            .encode(),
            RegionAccess {
                count: 2,
                data: vec![1, 2],
                ..Default::default()
            }
            .encode(),
            DmaAccess {
                count: 1,
                data: vec![1],
                ..Default::default()
            }
            .encode(),
        ];
        for s in &samples {
            for n in 0..s.len() {
                let t = &s[..n];
                // Must not panic; whatever they return for a prefix is fine, but the
                // fixed parts must be complete.
                let _ = DmaMap::decode(t);
                let _ = DmaUnmap::decode(t);
                let _ = DeviceInfo::decode(t);
                let _ = RegionInfo::decode(t);
                let _ = IrqInfo::decode(t);
                let _ = SetIrqs::decode(t);
                let _ = RegionAccess::decode(t);
                let _ = DmaAccess::decode(t);
            }
        }
        assert!(DmaMap::decode(&samples[0][..31]).is_err());
        assert!(RegionAccess::decode(&samples[6][..15]).is_err());
    }
}
