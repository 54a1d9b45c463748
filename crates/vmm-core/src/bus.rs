//! The PIO and MMIO buses: address ranges mapped to devices.
//!
//! An access nobody claims reads all-ones, drops writes and is counted
//! (`kvmbus_unclaimed_accesses_total`). Lookups take a read lock and clone the device's
//! `Arc` out of it, so a device may remap the bus (a BAR moving) while handling an access.
//!
//! An *overlay* sits above the ordinary ranges, as a QEMU subregion of higher priority
//! does: an access that lies wholly inside it goes to it, any other access falls through
//! to the range beneath (the reset control register at 0xCF9 inside the PCI CAM ports).

use std::sync::{Arc, RwLock};

use crate::{Error, Result};

/// A device on a bus. Offsets are relative to the base of the range it was inserted at.
pub trait BusDevice: Send + Sync {
    /// Reads `data.len()` bytes at `offset`.
    fn read(&self, offset: u64, data: &mut [u8]);
    /// Writes `data` at `offset`.
    fn write(&self, offset: u64, data: &[u8]);
}

#[derive(Clone)]
struct Entry {
    base: u64,
    len: u64,
    name: String,
    device: Arc<dyn BusDevice>,
}

/// Which address space a bus serves (for names and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// x86 I/O ports.
    Pio,
    /// Memory-mapped I/O.
    Mmio,
}

impl Space {
    /// "pio" or "mmio".
    pub fn label(self) -> &'static str {
        match self {
            Space::Pio => "pio",
            Space::Mmio => "mmio",
        }
    }
}

/// Counts of accesses that no device claimed.
struct Unclaimed {
    reads: metrics::Counter,
    writes: metrics::Counter,
}

/// The ordinary ranges (disjoint, by base) and the overlays above them.
#[derive(Default)]
struct Table {
    ranges: Vec<Entry>,
    overlays: Vec<Entry>,
}

/// The entry in `v` (sorted by base, disjoint) that holds `[addr, addr + len)` wholly.
fn find(v: &[Entry], addr: u64, len: u64) -> Option<(&Entry, u64)> {
    let i = v.partition_point(|e| e.base <= addr);
    let e = v.get(i.checked_sub(1)?)?;
    let off = addr - e.base;
    (off < e.len && off + len <= e.len).then_some((e, off))
}

/// One address space's bus.
pub struct Bus {
    space: Space,
    entries: RwLock<Table>,
    unclaimed: Unclaimed,
}

impl Bus {
    /// An empty bus; `vm` labels its metrics.
    pub fn new(space: Space, vm: &str) -> Bus {
        let c = |dir: &'static str| {
            metrics::counter!(monitor::names::UNCLAIMED_ACCESSES,
                "vm" => vm.to_string(), "space" => space.label(), "dir" => dir)
        };
        Bus {
            space,
            entries: RwLock::new(Table::default()),
            unclaimed: Unclaimed {
                reads: c("read"),
                writes: c("write"),
            },
        }
    }

    /// Maps `[base, base+len)` to `device`; overlapping an existing range is an error.
    pub fn insert(
        &self,
        base: u64,
        len: u64,
        name: &str,
        device: Arc<dyn BusDevice>,
    ) -> Result<()> {
        self.insert_in(false, base, len, name, device)
    }

    /// Maps `[base, base+len)` to `device` above the ordinary ranges (see the module
    /// docs); overlapping another overlay is an error.
    pub fn insert_overlay(
        &self,
        base: u64,
        len: u64,
        name: &str,
        device: Arc<dyn BusDevice>,
    ) -> Result<()> {
        self.insert_in(true, base, len, name, device)
    }

    fn insert_in(
        &self,
        overlay: bool,
        base: u64,
        len: u64,
        name: &str,
        device: Arc<dyn BusDevice>,
    ) -> Result<()> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(Error::BusRange {
                space: self.space.label(),
                base,
                len,
            })?;
        let mut table = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let entries = if overlay {
            &mut table.overlays
        } else {
            &mut table.ranges
        };
        if let Some(o) = entries
            .iter()
            .find(|e| base < e.base + e.len && e.base < end)
        {
            return Err(Error::BusOverlap {
                space: self.space.label(),
                name: name.to_string(),
                base,
                other: o.name.clone(),
                other_base: o.base,
            });
        }
        let at = entries.partition_point(|e| e.base < base);
        entries.insert(
            at,
            Entry {
                base,
                len,
                name: name.to_string(),
                device,
            },
        );
        Ok(())
    }

    /// Unmaps the ordinary range that starts at `base`; returns whether one was there.
    pub fn remove(&self, base: u64) -> bool {
        let mut table = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let before = table.ranges.len();
        table.ranges.retain(|e| e.base != base);
        table.ranges.len() != before
    }

    /// The name of the range (an overlay first) containing `addr`, if any.
    pub fn owner(&self, addr: u64) -> Option<String> {
        let t = self.entries.read().unwrap_or_else(|e| e.into_inner());
        find(&t.overlays, addr, 1)
            .or_else(|| find(&t.ranges, addr, 1))
            .map(|(e, _)| e.name.clone())
    }

    /// The device at `addr` with the offset into its range, if the `len`-byte access
    /// fits in an overlay or else in an ordinary range. Clones only the device's `Arc`
    /// (the hot path: no allocation; with no overlays, one emptiness check more).
    fn lookup(&self, addr: u64, len: usize) -> Option<(Arc<dyn BusDevice>, u64)> {
        let t = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let hit = if t.overlays.is_empty() {
            None
        } else {
            find(&t.overlays, addr, len as u64)
        };
        hit.or_else(|| find(&t.ranges, addr, len as u64))
            .map(|(e, off)| (e.device.clone(), off))
    }

    /// Dispatches a read; unclaimed reads return all-ones. Returns whether it was claimed.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.lookup(addr, data.len()) {
            Some((device, off)) => {
                device.read(off, data);
                true
            }
            _ => {
                data.fill(0xff);
                self.unclaimed.reads.increment(1);
                false
            }
        }
    }

    /// Dispatches a write; unclaimed writes are dropped. Returns whether it was claimed.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.lookup(addr, data.len()) {
            Some((device, off)) => {
                device.write(off, data);
                true
            }
            _ => {
                self.unclaimed.writes.increment(1);
                false
            }
        }
    }

    /// (base, len, name) of every mapped range and overlay, in address order.
    pub fn ranges(&self) -> Vec<(u64, u64, String)> {
        let t = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = (t.ranges.iter().chain(&t.overlays))
            .map(|e| (e.base, e.len, e.name.clone()))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Rec(Mutex<Vec<(u64, Vec<u8>)>>);
    impl BusDevice for Rec {
        fn read(&self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&self, offset: u64, data: &[u8]) {
            self.0.lock().unwrap().push((offset, data.to_vec()));
        }
    }

    #[test]
    fn dispatches_by_range_with_relative_offsets() {
        let bus = Bus::new(Space::Pio, "t");
        let a = Arc::new(Rec::default());
        let b = Arc::new(Rec::default());
        bus.insert(0x100, 0x10, "a", a.clone()).unwrap();
        bus.insert(0x80, 0x10, "b", b.clone()).unwrap();
        assert!(bus.write(0x105, &[1, 2]));
        assert!(bus.write(0x80, &[3]));
        assert_eq!(a.0.lock().unwrap().as_slice(), &[(5, vec![1, 2])]);
        assert_eq!(b.0.lock().unwrap().as_slice(), &[(0, vec![3])]);
        let mut d = [0u8; 1];
        assert!(bus.read(0x10f, &mut d));
        assert_eq!(d, [0xf]);
        assert_eq!(bus.owner(0x8f).as_deref(), Some("b"));
        assert_eq!(bus.owner(0x90), None);
    }

    #[test]
    fn unclaimed_reads_all_ones_and_drops_writes() {
        let bus = Bus::new(Space::Mmio, "t");
        let a = Arc::new(Rec::default());
        bus.insert(0x1000, 0x10, "a", a.clone()).unwrap();
        let mut d = [0u8; 4];
        assert!(!bus.read(0x2000, &mut d));
        assert_eq!(d, [0xff; 4]);
        assert!(!bus.write(0xfff, &[9]));
        // An access straddling the end of a range is not claimed either.
        assert!(!bus.write(0x100e, &[1, 2, 3, 4]));
        assert!(a.0.lock().unwrap().is_empty());
    }

    #[test]
    fn overlaps_are_rejected_and_remove_frees() {
        let bus = Bus::new(Space::Pio, "t");
        bus.insert(0x100, 0x10, "a", Arc::new(Rec::default()))
            .unwrap();
        for (base, len) in [(0x100, 1), (0xf8, 0x10), (0x10f, 4), (0x90, 0x100)] {
            let e = bus
                .insert(base, len, "b", Arc::new(Rec::default()))
                .unwrap_err();
            assert!(e.to_string().contains("overlaps"), "{e}");
        }
        bus.insert(0x110, 0x10, "c", Arc::new(Rec::default()))
            .unwrap();
        assert!(bus.insert(0, 0, "z", Arc::new(Rec::default())).is_err());
        assert!(bus.remove(0x100));
        assert!(!bus.remove(0x100));
        bus.insert(0xf8, 0x10, "b", Arc::new(Rec::default()))
            .unwrap();
        assert_eq!(bus.ranges().len(), 2);
    }

    #[test]
    fn an_overlay_takes_the_accesses_that_fit_in_it() {
        let bus = Bus::new(Space::Pio, "t");
        let cam = Arc::new(Rec::default());
        let rcr = Arc::new(Rec::default());
        bus.insert(0xcf8, 8, "cam", cam.clone()).unwrap();
        bus.insert_overlay(0xcf9, 1, "rcr", rcr.clone()).unwrap();
        assert!(bus
            .insert_overlay(0xcf9, 2, "x", Arc::new(Rec::default()))
            .is_err());
        assert!(bus.write(0xcf9, &[6]));
        assert!(bus.write(0xcf8, &[1, 2, 3, 4]));
        assert!(bus.write(0xcf9, &[7, 8]));
        assert_eq!(rcr.0.lock().unwrap().as_slice(), &[(0, vec![6])]);
        assert_eq!(
            cam.0.lock().unwrap().as_slice(),
            &[(0, vec![1, 2, 3, 4]), (1, vec![7, 8])]
        );
        assert_eq!(bus.owner(0xcf9).as_deref(), Some("rcr"));
        assert_eq!(bus.owner(0xcfa).as_deref(), Some("cam"));
        let names: Vec<String> = bus.ranges().into_iter().map(|r| r.2).collect();
        assert_eq!(names, ["cam", "rcr"]);
    }
}
