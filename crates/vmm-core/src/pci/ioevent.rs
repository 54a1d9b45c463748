//! The narrow seam to KVM_IOEVENTFD.

use std::sync::Arc;

use kvm_ioctls::{IoEventAddress, NoDatamatch, VmFd};
use vmm_sys_util::eventfd::EventFd;

use crate::error::kvm_err;
use crate::Result;

/// Registers doorbells: a guest write of `len` bytes at `addr` (optionally only of value
/// `datamatch`) signals `fd` in the kernel, with no exit to userspace.
pub trait IoEvents: Send + Sync {
    /// KVM_IOEVENTFD assign.
    fn register(
        &self,
        fd: &EventFd,
        addr: IoEventAddress,
        len: u8,
        datamatch: Option<u64>,
    ) -> Result<()>;
    /// KVM_IOEVENTFD deassign (same arguments as the registration).
    fn unregister(
        &self,
        fd: &EventFd,
        addr: IoEventAddress,
        len: u8,
        datamatch: Option<u64>,
    ) -> Result<()>;
}

/// The real [`IoEvents`] over a KVM VM.
pub struct KvmIoEvents(pub Arc<VmFd>);

macro_rules! by_width {
    ($vm:expr, $op:ident, $fd:expr, $addr:expr, $len:expr, $dm:expr) => {
        match ($len, $dm) {
            (_, None) => $vm.$op($fd, $addr, NoDatamatch),
            (1, Some(v)) => $vm.$op($fd, $addr, v as u8),
            (2, Some(v)) => $vm.$op($fd, $addr, v as u16),
            (4, Some(v)) => $vm.$op($fd, $addr, v as u32),
            (_, Some(v)) => $vm.$op($fd, $addr, v),
        }
    };
}

impl IoEvents for KvmIoEvents {
    fn register(&self, fd: &EventFd, addr: IoEventAddress, len: u8, dm: Option<u64>) -> Result<()> {
        by_width!(self.0, register_ioevent, fd, &addr, len, dm).map_err(kvm_err("KVM_IOEVENTFD"))
    }
    fn unregister(
        &self,
        fd: &EventFd,
        addr: IoEventAddress,
        len: u8,
        dm: Option<u64>,
    ) -> Result<()> {
        by_width!(self.0, unregister_ioevent, fd, &addr, len, dm)
            .map_err(kvm_err("KVM_IOEVENTFD(deassign)"))
    }
}
