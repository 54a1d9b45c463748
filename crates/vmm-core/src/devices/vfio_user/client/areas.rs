//! A device's mmap-able BAR areas as one set, kept with its connection: placed as KVM
//! memory slots at their BAR's address while the server is connected; taken out of the
//! guest while it is away (accesses then exit and read all-ones, as forwarded ones do),
//! and mapped again from the new server's fds when it comes back.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use vfio_user_proto as vu;

use super::mapping::{Area, GuestMapper};

/// The areas and where their BARs are.
pub(crate) struct Areas {
    list: Vec<Area>,
    mapper: Option<Arc<dyn GuestMapper>>,
    /// Where each BAR decodes now (`None`: nowhere), whether or not its areas are placed.
    bases: [Option<u64>; 6],
    /// False while the server is away: no area is placed or used.
    live: bool,
}

impl Areas {
    /// No areas (before the device is built, or without a mapper).
    pub(crate) fn none() -> Areas {
        Areas::new(Vec::new(), None)
    }

    /// `list`, placed through `mapper` as their BARs are placed.
    pub(crate) fn new(list: Vec<Area>, mapper: Option<Arc<dyn GuestMapper>>) -> Areas {
        Areas {
            list,
            mapper,
            bases: [None; 6],
            live: true,
        }
    }

    /// BAR `bar` now decodes at `base` (or nowhere): its areas follow while live.
    pub(crate) fn place(&mut self, bar: u8, base: Option<u64>) {
        let Some(b) = self.bases.get_mut(usize::from(bar)) else {
            return;
        };
        *b = base;
        if self.live {
            self.place_bar(bar, base);
        }
    }

    fn place_bar(&mut self, bar: u8, base: Option<u64>) {
        let Some(mapper) = self.mapper.clone() else {
            return;
        };
        for a in self.list.iter_mut().filter(|a| a.bar == bar) {
            a.place(mapper.as_ref(), base);
        }
    }

    fn unplace_all(&mut self) {
        if let Some(mapper) = self.mapper.clone() {
            for a in &mut self.list {
                a.place(mapper.as_ref(), None);
            }
        }
    }

    /// The server is away: the areas leave the guest (their memory is the old
    /// server's; nothing reads what the guest would write there).
    pub(crate) fn suspend(&mut self) {
        if self.live {
            self.unplace_all();
            self.live = false;
        }
    }

    /// The server is back: its areas (`list`, of the same shape) replace the old ones
    /// and are placed where their BARs are.
    pub(crate) fn resume_with(&mut self, list: Vec<Area>) {
        self.unplace_all();
        self.list = list;
        self.live = true;
        for bar in 0..6u8 {
            if self.bases[usize::from(bar)].is_some() {
                self.place_bar(bar, self.bases[usize::from(bar)]);
            }
        }
    }

    /// The live area that holds `[offset, offset + len)` of BAR `bar`.
    pub(crate) fn find(&self, bar: u8, offset: u64, len: usize) -> Option<&Area> {
        if !self.live {
            return None;
        }
        self.list.iter().find(|a| a.covers(bar, offset, len))
    }

    /// (BAR, offset, size, memory slot) of every area.
    pub(crate) fn summary(&self) -> Vec<(u8, u64, u64, Option<u32>)> {
        self.list
            .iter()
            .map(|a| (a.bar, a.offset, a.size, a.slot))
            .collect()
    }

    /// True with a mapper: mmap-able regions are then mapped, not forwarded.
    pub(crate) fn maps(&self) -> bool {
        self.mapper.is_some()
    }
}

impl Drop for Areas {
    fn drop(&mut self) {
        // Slots go before the memory they map (an Area's drop unmaps it).
        self.unplace_all();
    }
}

/// The areas of the mmap-able regions among `regions` (BARs 0-5 with their fds) whose
/// BAR `present` says the function has; areas that are not page-aligned are left to be
/// forwarded (logged).
pub(crate) fn map_regions(
    name: &str,
    regions: Vec<(vu::RegionInfo, Option<OwnedFd>)>,
    present: &[bool; 6],
) -> Vec<Area> {
    let mut areas = Vec::new();
    for (ri, fd) in regions.into_iter().take(6) {
        let (Some(fd), true) = (fd, ri.flags & vu::REGION_MMAP != 0) else {
            continue;
        };
        if !present.get(ri.index as usize).copied().unwrap_or(false) {
            continue;
        }
        let fd = Arc::new(fd);
        let parts = if ri.sparse.is_empty() {
            vec![vu::SparseArea {
                offset: 0,
                size: ri.size,
            }]
        } else {
            ri.sparse.clone()
        };
        for p in parts {
            match Area::new(
                fd.clone(),
                ri.index as u8,
                p.offset,
                p.size,
                ri.offset + p.offset,
            ) {
                Some(a) => areas.push(a),
                None => log::info!(
                    "{name}: BAR{} area {:#x}+{:#x} is not page-aligned; forwarded",
                    ri.index,
                    p.offset,
                    p.size
                ),
            }
        }
    }
    areas
}

/// True if a reconnected server's region `new` is the one the device was built from:
/// same size, access flags and mmap-able areas (the mmap offset may differ).
pub(crate) fn same_shape(old: &vu::RegionInfo, new: &vu::RegionInfo) -> bool {
    let access = vu::REGION_READ | vu::REGION_WRITE | vu::REGION_MMAP;
    old.index == new.index
        && old.size == new.size
        && old.flags & access == new.flags & access
        && old.sparse == new.sparse
}
