//! The PIO and MMIO buses: address ranges mapped to devices.
//!
//! An access nobody claims reads all-ones, drops writes and is counted
//! (`kvmbus_unclaimed_accesses_total`). Lookups take a read lock and clone the device's
//! `Arc` out of it, so a device may remap the bus (a BAR moving) while handling an access.

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

/// One address space's bus.
pub struct Bus {
    space: Space,
    entries: RwLock<Vec<Entry>>,
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
            entries: RwLock::new(Vec::new()),
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
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(Error::BusRange {
                space: self.space.label(),
                base,
                len,
            })?;
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
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

    /// Unmaps the range that starts at `base`; returns whether one was there.
    pub fn remove(&self, base: u64) -> bool {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let before = entries.len();
        entries.retain(|e| e.base != base);
        entries.len() != before
    }

    /// The name of the range containing `addr`, if any.
    pub fn owner(&self, addr: u64) -> Option<String> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let i = entries.partition_point(|e| e.base <= addr);
        let e = entries.get(i.checked_sub(1)?)?;
        (addr - e.base < e.len).then(|| e.name.clone())
    }

    /// The device at `addr` with the offset into its range, if the `len`-byte access
    /// fits in that range. Clones only the device's `Arc` (the hot path: no allocation).
    fn lookup(&self, addr: u64, len: usize) -> Option<(Arc<dyn BusDevice>, u64)> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let i = entries.partition_point(|e| e.base <= addr);
        let e = entries.get(i.checked_sub(1)?)?;
        let off = addr - e.base;
        (off < e.len && off + len as u64 <= e.len).then(|| (e.device.clone(), off))
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

    /// (base, len, name) of every mapped range, in address order.
    pub fn ranges(&self) -> Vec<(u64, u64, String)> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .map(|e| (e.base, e.len, e.name.clone()))
            .collect()
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
}
