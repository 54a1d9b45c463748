//! Guest accesses to a [`PciConfig`]: config reads and writes, MSI-X table/PBA accesses,
//! and the events a write causes, found by comparing the function's effective state
//! (COMMAND decode bits, BAR decode addresses, vector states) before and after it.

use super::{PciConfig, BAR0, COMMAND};
use crate::regs::{valid_access, CONFIG_SIZE};
use crate::types::{BarChange, FunctionEvent, VectorChange};

/// Bytes reachable through ECAM.
const EXTENDED_SIZE: usize = 4096;

/// What a config write may change, captured before and after it.
#[derive(PartialEq)]
struct Snapshot {
    command: (bool, bool, bool),
    bars: [Option<u64>; 6],
    msi: Vec<VectorChange>,
    msix: Vec<VectorChange>,
}

fn overlaps(off: usize, len: usize, start: usize, size: usize) -> bool {
    off < start + size && start < off + len
}

impl PciConfig {
    /// Reads `data.len()` bytes at `offset`. Accesses of 1, 2 or 4 bytes, naturally
    /// aligned, below 4096; offsets 256..4096 read zero; anything else reads all-ones.
    pub fn read(&self, offset: u16, data: &mut [u8]) {
        let off = usize::from(offset);
        let len = data.len();
        if !valid_access(off, len) || off + len > EXTENDED_SIZE {
            data.fill(0xFF);
            return;
        }
        if off >= CONFIG_SIZE {
            data.fill(0);
            return;
        }
        let aligned = off & !3;
        let dword = match self.msi.and_then(|m| m.pending_off().map(|p| (m, p))) {
            Some((msi, p)) if p == aligned => msi.pending_value(self.pending.as_deref()),
            _ => self.regs.dword(aligned / 4),
        };
        let bytes = dword.to_le_bytes();
        data.copy_from_slice(&bytes[off - aligned..off - aligned + len]);
    }

    /// Writes `data` at `offset` through the write masks and returns what changed:
    /// `Command` if a decode or bus-master bit flipped, `Bar` for every BAR whose decode
    /// address changed, `Vector` for every MSI/MSI-X vector whose effective state
    /// changed. Bad accesses and writes beyond 256 are dropped.
    pub fn write(&mut self, offset: u16, data: &[u8]) -> Vec<FunctionEvent> {
        let off = usize::from(offset);
        let len = data.len();
        if !valid_access(off, len) || off >= CONFIG_SIZE {
            return Vec::new();
        }
        let before = self.snapshot(off, len);
        self.regs.guest_write(off, data);
        if let Some(msi) = self.msi {
            msi.fixup(&mut self.regs);
        }
        let after = self.snapshot(off, len);
        if before == after {
            return Vec::new();
        }
        self.diff(before, after)
    }

    fn snapshot(&self, off: usize, len: usize) -> Snapshot {
        let mut bars = [None; 6];
        if overlaps(off, len, COMMAND, 2) || overlaps(off, len, BAR0, 24) {
            for (i, b) in bars.iter_mut().enumerate() {
                *b = self.bar_address(i as u8);
            }
        }
        let msi = match self.msi {
            Some(m) if overlaps(off, len, m.offset, m.size()) => m.all_states(&self.regs),
            _ => Vec::new(),
        };
        let msix = match &self.msix {
            Some(m) if overlaps(off, len, m.offset, 4) => m.all_states(&self.regs),
            _ => Vec::new(),
        };
        Snapshot {
            command: self.command_bits(),
            bars,
            msi,
            msix,
        }
    }

    fn diff(&self, before: Snapshot, after: Snapshot) -> Vec<FunctionEvent> {
        let mut events = Vec::new();
        if before.command != after.command {
            let (io, memory, bus_master) = after.command;
            events.push(FunctionEvent::Command {
                io,
                memory,
                bus_master,
            });
        }
        for (i, (old, new)) in before.bars.iter().zip(after.bars.iter()).enumerate() {
            if old == new {
                continue;
            }
            if let Some(bar) = self.bars[i] {
                events.push(FunctionEvent::Bar(BarChange {
                    index: i as u8,
                    kind: bar.kind,
                    size: bar.size,
                    old: *old,
                    new: *new,
                }));
            }
        }
        for (old, new) in before
            .msi
            .iter()
            .zip(after.msi.iter())
            .chain(before.msix.iter().zip(after.msix.iter()))
        {
            if old != new {
                events.push(FunctionEvent::Vector(*new));
            }
        }
        events
    }

    /// A read inside BAR `bar` at `offset`: if it falls in the MSI-X table or PBA,
    /// fills `data` and returns true; otherwise returns false and leaves `data` alone.
    pub fn msix_bar_read(&self, bar: u8, offset: u64, data: &mut [u8]) -> bool {
        match &self.msix {
            Some(m) => m.bar_read(self.pending.as_deref(), bar, offset, data),
            None => false,
        }
    }

    /// A write inside BAR `bar` at `offset`: if it falls in the MSI-X table or PBA,
    /// handles it (the PBA is read-only), pushes a `Vector` event if the entry's
    /// effective state changed, and returns true.
    pub fn msix_bar_write(
        &mut self,
        bar: u8,
        offset: u64,
        data: &[u8],
        events: &mut Vec<FunctionEvent>,
    ) -> bool {
        match &mut self.msix {
            Some(m) => m.bar_write(&self.regs, bar, offset, data, events),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use proptest::prelude::*;

    use crate::test_utils::{TestFunction, TestPendingBits};
    use crate::types::{FunctionEvent, IrqSource, PciFunction, VectorChange};

    /// One guest access.
    #[derive(Clone, Debug)]
    enum Op {
        ConfigWrite(u16, Vec<u8>),
        ConfigRead(u16, usize),
        BarWrite(u8, u64, Vec<u8>),
        BarRead(u8, u64, usize),
    }

    fn len() -> impl Strategy<Value = usize> {
        prop_oneof![Just(1usize), Just(2), Just(4), Just(8), 0usize..10]
    }

    fn config_offset() -> impl Strategy<Value = u16> {
        prop_oneof![
            4 => (0u16..64).prop_map(|d| d * 4),
            // COMMAND, BARs, and the MSI-X and MSI capabilities of the standard config.
            4 => prop::sample::select(vec![
                0x04u16, 0x10, 0x14, 0x18, 0x1C, 0x40, 0x42, 0x4C, 0x4E, 0x50, 0x54, 0x58, 0x5C,
                0x60,
            ]),
            2 => 0u16..0x110,
            1 => any::<u16>(),
        ]
    }

    fn bar_offset() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => (0u64..0x24).prop_map(|d| d * 4),
            2 => 0x2000u64..0x2010,
            1 => 0u64..0x5000,
            1 => any::<u64>(),
        ]
    }

    fn bar() -> impl Strategy<Value = u8> {
        prop_oneof![3 => Just(2u8), 1 => 0u8..7]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (config_offset(), len())
                .prop_flat_map(|(o, l)| prop::collection::vec(any::<u8>(), l)
                    .prop_map(move |d| Op::ConfigWrite(o, d))),
            1 => (config_offset(), len()).prop_map(|(o, l)| Op::ConfigRead(o, l)),
            3 => (bar(), bar_offset(), len())
                .prop_flat_map(|(b, o, l)| prop::collection::vec(any::<u8>(), l)
                    .prop_map(move |d| Op::BarWrite(b, o, d))),
            1 => (bar(), bar_offset(), len()).prop_map(|(b, o, l)| Op::BarRead(b, o, l)),
        ]
    }

    /// The bytes a guest must never be able to change: IDs, class, revision, header
    /// type, subsystem IDs, the capabilities pointer, every capability's ID and next
    /// pointer, the vendor payload, the MSI-X table/PBA registers, the BAR type bits.
    fn read_only_bytes(f: &mut TestFunction) -> Vec<u8> {
        let mut offsets: Vec<u16> =
            vec![0, 1, 2, 3, 8, 9, 10, 11, 0x0E, 0x2C, 0x2D, 0x2E, 0x2F, 0x34];
        for c in f.config.capabilities() {
            let o = u16::from(c.offset);
            offsets.extend([o, o + 1]);
            match c.id {
                0x09 => offsets.extend(o + 2..o + 8),
                0x11 => offsets.extend(o + 4..o + 12),
                _ => {}
            }
        }
        let mut bytes: Vec<u8> = offsets
            .iter()
            .map(|&o| {
                let mut b = [0u8];
                f.config_read(o, &mut b);
                b[0]
            })
            .collect();
        for bar in 0..3u16 {
            let mut b = [0u8];
            f.config_read(0x10 + 4 * bar, &mut b);
            bytes.push(b[0] & 0xF);
        }
        bytes
    }

    fn all_vectors(f: &TestFunction) -> HashMap<(IrqSource, u16), VectorChange> {
        let mut m = HashMap::new();
        for src in [IrqSource::Msi, IrqSource::Msix] {
            for v in 0..f.config.vector_count(src) {
                m.insert((src, v), f.config.vector_state(src, v));
            }
        }
        m
    }

    proptest! {
        #[test]
        fn random_accesses_keep_pci_semantics(ops in prop::collection::vec(op(), 1..80)) {
            let mut f = TestFunction::standard();
            let pending = Arc::new(TestPendingBits::default());
            pending.set(IrqSource::Msix, 2, true);
            pending.set(IrqSource::Msi, 1, true);
            f.config.set_pending_bits(pending);
            let ro = read_only_bytes(&mut f);
            let mut vectors = all_vectors(&f);
            let mut bars: Vec<Option<u64>> = (0..6).map(|i| f.config.bar_address(i)).collect();
            let mut command = f.config.command_bits();

            for op in ops {
                let events = match op {
                    Op::ConfigWrite(o, d) => f.config_write(o, &d),
                    Op::BarWrite(b, o, d) => f.bar_write(b, o, &d),
                    Op::ConfigRead(o, l) => {
                        let mut d = vec![0u8; l];
                        f.config_read(o, &mut d);
                        let valid = matches!(l, 1 | 2 | 4) && o % l as u16 == 0
                            && usize::from(o) + l <= 4096;
                        if !valid {
                            prop_assert!(d.iter().all(|&b| b == 0xFF));
                        } else if o >= 256 {
                            prop_assert!(d.iter().all(|&b| b == 0));
                        }
                        Vec::new()
                    }
                    Op::BarRead(b, o, l) => {
                        let mut d = vec![0u8; l];
                        f.bar_read(b, o, &mut d);
                        Vec::new()
                    }
                };
                // Every event is a real change, and the events account for every change.
                for e in events {
                    match e {
                        FunctionEvent::Vector(v) => {
                            let old = vectors.insert((v.source, v.vector), v);
                            prop_assert_ne!(old, Some(v));
                        }
                        FunctionEvent::Bar(c) => {
                            prop_assert_eq!(bars[usize::from(c.index)], c.old);
                            prop_assert_ne!(c.old, c.new);
                            bars[usize::from(c.index)] = c.new;
                        }
                        FunctionEvent::Command { io, memory, bus_master } => {
                            prop_assert_ne!(command, (io, memory, bus_master));
                            command = (io, memory, bus_master);
                        }
                    }
                }
                prop_assert_eq!(&vectors, &all_vectors(&f));
                let now: Vec<Option<u64>> = (0..6).map(|i| f.config.bar_address(i)).collect();
                prop_assert_eq!(&bars, &now);
                prop_assert_eq!(command, f.config.command_bits());
                prop_assert_eq!(&ro, &read_only_bytes(&mut f));
            }
            prop_assert_eq!(f.config.ids(), crate::test_utils::TEST_IDS);
            prop_assert_eq!(f.config.capabilities().len(), 4);
        }
    }
}
