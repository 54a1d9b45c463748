//! Gateway tests without KVM: real guest memory, rings built by a test driver, irqfds
//! as plain eventfds.

mod backends;
mod regs;
mod rings;
mod sync;

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use irq_router::IrqHandle;
use pci_emu::PciFunction;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::abi::reg;
use crate::ring::test_driver::RingDriver;
use crate::{GatewayConfig, GuestMemoryShare};

pub(crate) const MEM: u64 = 4 << 20;

pub(crate) fn irqs(n: usize) -> Vec<IrqHandle> {
    (0..n)
        .map(|_| {
            IrqHandle::new(
                Arc::new(EventFd::new(EFD_NONBLOCK).unwrap()),
                metrics::Counter::noop(),
            )
        })
        .collect()
}

pub(crate) fn anon_mem() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM as usize)]).unwrap()
}

/// Guest memory in a memfd, as vmm-core makes it.
pub(crate) fn memfd_mem() -> (GuestMemoryMmap, GuestMemoryShare) {
    // SAFETY: a valid NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"hcgw-test".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: `fd` was just created and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let file = File::from(owned.try_clone().unwrap());
    file.set_len(MEM).unwrap();
    let mem = GuestMemoryMmap::from_ranges_with_files([(
        GuestAddress(0),
        MEM as usize,
        Some(FileOffset::new(file, 0)),
    )])
    .unwrap();
    let share = GuestMemoryShare {
        memfd: Arc::new(owned),
        regions: vec![(0, MEM, 0)],
    };
    (mem, share)
}

pub(crate) fn config() -> GatewayConfig {
    GatewayConfig {
        vm: "test".into(),
        queues: 2,
        queue_size: 256,
        msix_vectors: 2,
        ..GatewayConfig::default()
    }
}

/// A 32-bit BAR0 write as the platform performs it: the function's unlocked registers
/// first, then under its lock.
pub(crate) fn w32(f: &Arc<Mutex<dyn PciFunction>>, off: u64, v: u32) {
    let unlocked = f.lock().unwrap().unlocked_bar(0);
    if !unlocked.is_some_and(|u| u.write(off, &v.to_le_bytes())) {
        f.lock().unwrap().bar_write(0, off, &v.to_le_bytes());
    }
}

/// A 32-bit BAR0 read as the platform performs it.
pub(crate) fn r32(f: &Arc<Mutex<dyn PciFunction>>, off: u64) -> u32 {
    let mut b = [0u8; 4];
    let unlocked = f.lock().unwrap().unlocked_bar(0);
    if !unlocked.is_some_and(|u| u.read(off, &mut b)) {
        f.lock().unwrap().bar_read(0, off, &mut b);
    }
    u32::from_le_bytes(b)
}

/// Programs queue `q` with the driver's ring and enables it on `vector`.
pub(crate) fn setup_queue(f: &Arc<Mutex<dyn PciFunction>>, q: u32, d: &RingDriver, vector: u32) {
    w32(f, reg::QUEUE_SEL, q);
    w32(f, reg::QUEUE_SIZE, u32::from(d.size));
    w32(f, reg::QUEUE_DESC, d.desc as u32);
    w32(f, reg::QUEUE_AVAIL, d.avail as u32);
    w32(f, reg::QUEUE_USED, d.used as u32);
    w32(f, reg::QUEUE_ADDR_HI, 0);
    w32(f, reg::QUEUE_VECTOR, vector);
    w32(f, reg::QUEUE_ENABLE, 1);
    assert_eq!(r32(f, reg::QUEUE_ENABLE), 1);
}
