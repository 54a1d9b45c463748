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
