//! The device as the client presents it: built from the server's config space and
//! region sizes into a local [`PciConfig`] that owns what kvmbus must own (BARs, COMMAND
//! decoding, MSI and MSI-X, the interrupt line).
//!
//! BAR existence and size come from the region info, and so does the space where the
//! BAR register cannot be right: libvfio-user sets bit 0 (I/O) in every BAR register of
//! a region not flagged as memory, even of absent ones, so its "server" sample's BAR1
//! (0x3000 bytes, mmap-able) reads as I/O. A region that is mmap-able or larger than
//! 256 bytes (the most an I/O BAR decodes) is memory; otherwise the BAR register's low
//! bits give the kind (I/O, 32- or 64-bit memory, prefetchable). PCI Express, MSI and MSI-X capabilities are re-created in the server's order
//! (so a server built on pci-emu keeps its offsets); other capabilities and
//! device-specific config registers are not passed through.

use pci_emu::{BarKind, PciConfig, PciIds};

/// What the server's config space says about one capability kvmbus re-creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cap {
    /// PCI Express; whether the function advertises Function Level Reset.
    Pcie {
        /// Device Capabilities bit 28.
        flr: bool,
    },
    /// MSI: vectors, 64-bit, per-vector masking.
    Msi(u16, bool, bool),
    /// MSI-X: vectors, table BIR/offset, PBA BIR/offset.
    Msix(u16, u8, u32, u8, u32),
}

/// The layout parsed from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) ids: PciIds,
    pub(crate) bars: Vec<(u8, BarKind, u64)>,
    pub(crate) caps: Vec<Cap>,
    pub(crate) pin: u8,
}

fn rd(cfg: &[u8], off: usize, n: usize) -> u32 {
    cfg.get(off..off + n)
        .map(|b| b.iter().rev().fold(0u32, |a, &x| a << 8 | u32::from(x)))
        .unwrap_or(0)
}

/// What the region info says of one BAR's region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BarRegion {
    /// Bytes (0: no BAR).
    pub(crate) size: u64,
    /// Offered as mmap-able (so memory space, whatever the BAR register says).
    pub(crate) mappable: bool,
}

/// Largest I/O BAR (PCI: an I/O BAR decodes at most 256 bytes).
const IO_BAR_MAX: u64 = 256;

/// Parses a server's config space (at least 256 bytes; missing bytes read 0) and its
/// BAR regions.
pub(crate) fn parse(cfg: &[u8], regions: &[BarRegion; 6]) -> Layout {
    let class_rev = rd(cfg, 0x08, 4);
    let ids = PciIds {
        vendor_id: rd(cfg, 0, 2) as u16,
        device_id: rd(cfg, 2, 2) as u16,
        class_code: class_rev >> 8,
        revision: class_rev as u8,
        subsystem_vendor_id: rd(cfg, 0x2c, 2) as u16,
        subsystem_id: rd(cfg, 0x2e, 2) as u16,
    };
    let mut bars = Vec::new();
    let mut i = 0usize;
    while i < 6 {
        let BarRegion { size, mappable } = regions[i];
        let reg = rd(cfg, 0x10 + 4 * i, 4);
        if size == 0 {
            i += 1;
            continue;
        }
        let io = reg & 1 == 1 && !mappable && size <= IO_BAR_MAX;
        let kind = if io {
            BarKind::Io
        } else if reg & 0x7 == 0x4 && i < 5 {
            BarKind::Mem64 {
                prefetchable: reg & 0x8 != 0,
            }
        } else {
            BarKind::Mem32 {
                prefetchable: reg & 0x8 != 0,
            }
        };
        // pci-emu BARs are powers of two, at least 4 (I/O) or 16 (memory) bytes.
        let min = if kind.is_memory() { 16 } else { 4 };
        let size = size.checked_next_power_of_two().unwrap_or(0).max(min);
        if size != 0 {
            bars.push((i as u8, kind, size));
        }
        i += if matches!(kind, BarKind::Mem64 { .. }) {
            2
        } else {
            1
        };
    }
    let mut caps = Vec::new();
    if rd(cfg, 0x06, 2) & 0x10 != 0 {
        let mut ptr = rd(cfg, 0x34, 1) as usize & 0xfc;
        let mut hops = 0;
        while ptr >= 0x40 && hops < 48 {
            hops += 1;
            let id = rd(cfg, ptr, 1);
            let ctrl = rd(cfg, ptr + 2, 2);
            match id {
                0x10 => caps.push(Cap::Pcie {
                    flr: rd(cfg, ptr + 4, 4) & (1 << 28) != 0,
                }),
                0x05 => {
                    let mmc = (ctrl >> 1) & 0x7;
                    caps.push(Cap::Msi(
                        1 << mmc.min(5),
                        ctrl & (1 << 7) != 0,
                        ctrl & (1 << 8) != 0,
                    ))
                }
                0x11 => {
                    let t = rd(cfg, ptr + 4, 4);
                    let p = rd(cfg, ptr + 8, 4);
                    caps.push(Cap::Msix(
                        (ctrl & 0x7ff) as u16 + 1,
                        (t & 7) as u8,
                        t & !7,
                        (p & 7) as u8,
                        p & !7,
                    ))
                }
                _ => {}
            }
            ptr = rd(cfg, ptr + 1, 1) as usize & 0xfc;
        }
    }
    Layout {
        ids,
        bars,
        caps,
        pin: rd(cfg, 0x3d, 1) as u8,
    }
}

impl Layout {
    /// The local config space; capabilities that do not fit the BARs are left out
    /// (logged), never a panic.
    pub(crate) fn build(&self, name: &str) -> PciConfig {
        let mut c = PciConfig::new(self.ids);
        for &(i, kind, size) in &self.bars {
            if let Err(e) = c.add_bar(i, kind, size) {
                log::warn!("{name}: BAR{i}: {e}");
            }
        }
        for cap in &self.caps {
            let r = match *cap {
                Cap::Pcie { flr } => {
                    c.add_pcie_cap()
                        .and_then(|()| if flr { c.set_pcie_flr() } else { Ok(()) })
                }
                Cap::Msi(n, a64, pvm) => c.add_msi(n, a64, pvm),
                Cap::Msix(n, tb, to, pb, po) => c.add_msix(n, tb, to, pb, po),
            };
            if let Err(e) = r {
                log::warn!("{name}: capability {cap:?} left out: {e}");
            }
        }
        c.set_interrupt_pin(self.pin.min(4));
        c
    }

    /// True if the function advertises Function Level Reset.
    pub(crate) fn flr(&self) -> bool {
        self.caps.contains(&Cap::Pcie { flr: true })
    }

    /// MSI vectors (0 without the capability).
    pub(crate) fn msi_vectors(&self) -> u16 {
        self.caps
            .iter()
            .find_map(|c| match c {
                Cap::Msi(n, ..) => Some(*n),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// MSI-X vectors (0 without the capability).
    pub(crate) fn msix_vectors(&self) -> u16 {
        self.caps
            .iter()
            .find_map(|c| match c {
                Cap::Msix(n, ..) => Some(*n),
                _ => None,
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pci_emu::IrqSource;

    /// Regions of these sizes, none mmap-able.
    fn sized(sizes: &[u64; 6]) -> [BarRegion; 6] {
        sizes.map(|size| BarRegion {
            size,
            mappable: false,
        })
    }

    fn dump(c: &PciConfig) -> Vec<u8> {
        let mut v = vec![0u8; 256];
        for off in (0..256).step_by(4) {
            c.read(off as u16, &mut v[off..off + 4]);
        }
        v
    }

    #[test]
    fn a_pci_emu_device_round_trips_with_its_offsets() {
        let mut c = PciConfig::new(PciIds {
            vendor_id: 0x1234,
            device_id: 0x4954,
            class_code: 0x08_8000,
            revision: 1,
            subsystem_vendor_id: 0x1234,
            subsystem_id: 1,
        });
        c.add_bar(0, BarKind::Io, 32).unwrap();
        c.add_bar(
            1,
            BarKind::Mem32 {
                prefetchable: false,
            },
            4096,
        )
        .unwrap();
        c.add_bar(2, BarKind::Mem64 { prefetchable: true }, 16 << 10)
            .unwrap();
        c.add_pcie_cap().unwrap();
        c.add_msi(4, true, true).unwrap();
        c.add_msix(8, 2, 0, 2, 0x800).unwrap();
        let l = parse(&dump(&c), &sized(&[32, 4096, 16 << 10, 0, 0, 0]));
        assert_eq!(l.msi_vectors(), 4);
        assert_eq!(l.msix_vectors(), 8);
        let local = l.build("t");
        assert_eq!(dump(&local), dump(&c));
        assert_eq!(local.vector_count(IrqSource::Msix), 8);
    }

    #[test]
    fn region_sizes_decide_which_bars_exist() {
        // libvfio-user style: every BAR register reads 0x1; only BAR2 has a region.
        let mut cfg = vec![0u8; 256];
        cfg[0..4].copy_from_slice(&0x0dc8_494fu32.to_le_bytes());
        for i in 0..6 {
            cfg[0x10 + 4 * i] = 1;
        }
        cfg[0x3d] = 1;
        let l = parse(&cfg, &sized(&[0, 0, 256, 0, 0, 0]));
        assert_eq!(l.bars, vec![(2, BarKind::Io, 256)]);
        assert_eq!(l.pin, 1);
        assert_eq!(l.ids.vendor_id, 0x494f);
        // A looping capability list ends; garbage sizes do not panic.
        let mut bad = cfg.clone();
        bad[0x06] = 0x10;
        bad[0x34] = 0x40;
        bad[0x40] = 0x11;
        bad[0x41] = 0x40;
        bad[0x42] = 0xff;
        bad[0x43] = 0x07;
        let l = parse(&bad, &sized(&[u64::MAX, 3, 1 << 40, 0, 0, 0]));
        let _ = l.build("t");
        let short = parse(&[0u8; 10], &sized(&[0; 6]));
        assert!(short.bars.is_empty());
    }

    #[test]
    fn mappable_or_large_regions_are_memory_whatever_the_bar_register_says() {
        // libvfio-user's "server" sample: every BAR register reads 0x1; BAR0 is 8 bytes,
        // BAR1 0x3000 bytes with mmap-able areas.
        let mut cfg = vec![0u8; 256];
        for i in 0..6 {
            cfg[0x10 + 4 * i] = 1;
        }
        let mut regions = sized(&[8, 0x3000, 0, 0, 0, 0]);
        regions[1].mappable = true;
        let mem = BarKind::Mem32 {
            prefetchable: false,
        };
        let l = parse(&cfg, &regions);
        assert_eq!(l.bars, vec![(0, BarKind::Io, 8), (1, mem, 0x4000)]);
        // Not mmap-able but past what an I/O BAR decodes: memory too.
        let l = parse(&cfg, &sized(&[0, 0, 512, 0, 0, 0]));
        assert_eq!(l.bars, vec![(2, mem, 512)]);
        // A memory BAR register's kind is kept (64-bit prefetchable over two slots).
        cfg[0x10] = 0x0c;
        let l = parse(&cfg, &sized(&[1 << 20, 0, 0, 0, 0, 0]));
        assert_eq!(
            l.bars,
            vec![(0, BarKind::Mem64 { prefetchable: true }, 1 << 20)]
        );
    }
}
