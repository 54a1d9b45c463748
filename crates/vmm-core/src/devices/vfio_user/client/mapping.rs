//! Regions a server offers as mmap-able fds, mapped into the guest as KVM memory slots
//! at the BAR's current address (so accesses cause no exit); they move with the BAR.

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;

use crate::{Error, Result};

/// Maps host memory at guest-physical addresses (KVM_SET_USER_MEMORY_REGION).
pub trait GuestMapper: Send + Sync {
    /// Maps `size` bytes at host address `host` at `gpa`; returns the slot.
    fn map(&self, gpa: u64, size: u64, host: u64) -> Result<u32>;
    /// Removes a slot.
    fn unmap(&self, slot: u32);
}

/// The KVM mapper: slots from 16 up (below are the VM's RAM).
pub struct KvmGuestMapper {
    vm: Arc<VmFd>,
    used: Mutex<BTreeSet<u32>>,
}

/// First memory slot given to device regions.
const FIRST_SLOT: u32 = 16;

impl KvmGuestMapper {
    /// A mapper on `vm`.
    pub fn new(vm: Arc<VmFd>) -> KvmGuestMapper {
        KvmGuestMapper {
            vm,
            used: Mutex::new(BTreeSet::new()),
        }
    }
}

impl GuestMapper for KvmGuestMapper {
    fn map(&self, gpa: u64, size: u64, host: u64) -> Result<u32> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let slot = (FIRST_SLOT..)
            .find(|s| !used.contains(s))
            .unwrap_or(FIRST_SLOT);
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: host,
        };
        // SAFETY: `host` is a live MAP_SHARED mapping of `size` bytes owned by the
        // device's Mapped area, which removes this slot before it unmaps the memory.
        unsafe { self.vm.set_user_memory_region(region) }.map_err(|e| Error::Kvm {
            op: "KVM_SET_USER_MEMORY_REGION (vfio-user region)",
            source: e,
        })?;
        used.insert(slot);
        Ok(slot)
    }

    fn unmap(&self, slot: u32) {
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: 0,
            userspace_addr: 0,
        };
        // SAFETY: a zero-sized region deletes the slot; no memory is referenced.
        if let Err(e) = unsafe { self.vm.set_user_memory_region(region) } {
            log::error!("removing memory slot {slot}: {e}");
        }
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&slot);
    }
}

/// One mmap-ed area of a BAR.
pub(crate) struct Area {
    pub(crate) bar: u8,
    pub(crate) offset: u64,
    pub(crate) size: u64,
    host: *mut libc::c_void,
    pub(crate) slot: Option<u32>,
    _fd: Arc<OwnedFd>,
}

// SAFETY: the mapping is plain shared memory; the pointer is only handed to KVM and
// munmap-ed on drop, never dereferenced here.
unsafe impl Send for Area {}

impl Area {
    /// mmaps `size` bytes of `fd` at `file_offset`; page-aligned sizes only.
    pub(crate) fn new(
        fd: Arc<OwnedFd>,
        bar: u8,
        offset: u64,
        size: u64,
        file_offset: u64,
    ) -> Option<Area> {
        let page = 4096;
        if size == 0 || size % page != 0 || offset % page != 0 || file_offset % page != 0 {
            return None;
        }
        // SAFETY: a new shared mapping of a file we hold; the kernel checks the fd,
        // offset and size; the result is checked.
        let host = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                file_offset as libc::off_t,
            )
        };
        if host == libc::MAP_FAILED {
            log::warn!(
                "mmap of a vfio-user region: {}",
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(Area {
            bar,
            offset,
            size,
            host,
            slot: None,
            _fd: fd,
        })
    }

    /// Places the area for a BAR now at `base` (or nowhere).
    pub(crate) fn place(&mut self, mapper: &dyn GuestMapper, base: Option<u64>) {
        if let Some(s) = self.slot.take() {
            mapper.unmap(s);
        }
        if let Some(b) = base {
            match mapper.map(b + self.offset, self.size, self.host as u64) {
                Ok(s) => self.slot = Some(s),
                Err(e) => log::warn!("BAR{} area at {:#x}: {e}", self.bar, b + self.offset),
            }
        }
    }

    /// True if `[offset, offset + len)` of the BAR lies in this area.
    pub(crate) fn covers(&self, bar: u8, offset: u64, len: usize) -> bool {
        bar == self.bar && offset >= self.offset && offset + len as u64 <= self.offset + self.size
    }

    /// Reads through the mapping (an access KVM sent to userspace anyway: the area is
    /// not placed).
    pub(crate) fn read(&self, offset: u64, data: &mut [u8]) {
        let at = (offset - self.offset) as usize;
        // SAFETY: `covers` was checked by the caller: the bytes lie inside the live
        // mapping of `size` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (self.host as *const u8).add(at),
                data.as_mut_ptr(),
                data.len(),
            )
        };
    }

    /// Writes through the mapping.
    pub(crate) fn write(&self, offset: u64, data: &[u8]) {
        let at = (offset - self.offset) as usize;
        // SAFETY: as for `read`; the mapping is writable.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), (self.host as *mut u8).add(at), data.len())
        };
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: `host` is our mapping of `size` bytes; its KVM slot (if any) was removed
        // by the owner before dropping (see VfioUserDevice's Drop).
        unsafe { libc::munmap(self.host, self.size as usize) };
    }
}
