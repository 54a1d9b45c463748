//! Interrupt slots of a served device: the device model raises vector `v` by writing
//! slot `v`'s eventfd (through its usual `IrqHandle`), and SET_IRQS makes the slot's
//! descriptor *be* the client's eventfd (dup3 onto the slot's fd number), so the
//! interrupt goes from the device thread straight into the client's irqfd.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use irq_router::IrqHandle;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::error::io_err;
use crate::{Error, Result};

/// One eventfd per vector whose file can be swapped for another process's eventfd.
pub struct IrqSlots {
    fds: Vec<Arc<EventFd>>,
}

/// True if `fd` is an eventfd (what SET_IRQS must carry).
pub fn is_eventfd(fd: RawFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .is_ok_and(|p| p.as_os_str() == "anon_inode:[eventfd]")
}

impl IrqSlots {
    /// `n` slots, each a fresh (unconnected) eventfd.
    pub fn new(n: usize) -> Result<IrqSlots> {
        let fds = (0..n)
            .map(|_| EventFd::new(EFD_NONBLOCK).map(Arc::new))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(io_err("creating interrupt slots"))?;
        Ok(IrqSlots { fds })
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// True without slots.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// The handles a device model raises its vectors with.
    pub fn handles(&self) -> Vec<IrqHandle> {
        self.fds
            .iter()
            .map(|f| IrqHandle::new(f.clone(), metrics::Counter::noop()))
            .collect()
    }

    /// Makes slot `i` deliver into `fd` (an eventfd, made non-blocking).
    pub fn connect(&self, i: usize, fd: &OwnedFd) -> Result<()> {
        let slot = self.fds.get(i).ok_or_else(|| Error::Device {
            device: "vfio-user server".into(),
            detail: format!("no interrupt slot {i}"),
        })?;
        if !is_eventfd(fd.as_raw_fd()) {
            return Err(Error::Device {
                device: "vfio-user server".into(),
                detail: "SET_IRQS carried a descriptor that is not an eventfd".into(),
            });
        }
        // SAFETY: fcntl on a descriptor we own; results are checked.
        let ok = unsafe {
            let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            fl >= 0 && libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) == 0
        };
        if !ok {
            return Err(io_err("making an interrupt fd non-blocking")(
                std::io::Error::last_os_error(),
            ));
        }
        dup_onto(fd.as_raw_fd(), slot)
    }

    /// Detaches slot `i` from whatever it delivered into (a fresh eventfd takes its
    /// place; triggers then go nowhere).
    pub fn disconnect(&self, i: usize) -> Result<()> {
        let Some(slot) = self.fds.get(i) else {
            return Ok(());
        };
        let fresh = EventFd::new(EFD_NONBLOCK).map_err(io_err("creating an interrupt slot"))?;
        dup_onto(fresh.as_raw_fd(), slot)
    }

    /// Detaches every slot.
    pub fn disconnect_all(&self) -> Result<()> {
        (0..self.fds.len()).try_for_each(|i| self.disconnect(i))
    }

    /// Raises slot `i` (SET_IRQS DATA_NONE | ACTION_TRIGGER).
    pub fn trigger(&self, i: usize) {
        if let Some(s) = self.fds.get(i) {
            let _ = s.write(1);
        }
    }
}

fn dup_onto(src: RawFd, slot: &EventFd) -> Result<()> {
    // SAFETY: `slot`'s descriptor stays open (the Arc keeps it) and dup3 atomically
    // replaces the file it refers to, so concurrent writers through the slot's number
    // write either the old or the new file; `src` is a valid descriptor we hold.
    let r = unsafe { libc::dup3(src, slot.as_raw_fd(), libc::O_CLOEXEC) };
    if r < 0 {
        return Err(io_err("dup3 onto an interrupt slot")(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::BorrowedFd;

    fn owned(e: &EventFd) -> OwnedFd {
        // SAFETY: `e` keeps its descriptor open for the duration of the borrow.
        unsafe { BorrowedFd::borrow_raw(e.as_raw_fd()) }
            .try_clone_to_owned()
            .unwrap()
    }

    #[test]
    fn a_connected_slot_writes_into_the_peer_eventfd() {
        let slots = IrqSlots::new(2).unwrap();
        let handles = slots.handles();
        let peer = EventFd::new(EFD_NONBLOCK).unwrap();
        let dup = owned(&peer);
        slots.connect(1, &dup).unwrap();
        handles[1].trigger().unwrap();
        handles[1].trigger().unwrap();
        assert_eq!(peer.read().unwrap(), 2);
        slots.disconnect(1).unwrap();
        handles[1].trigger().unwrap();
        assert!(
            peer.read().is_err(),
            "a disconnected slot must not reach the peer"
        );
    }

    #[test]
    fn a_non_eventfd_is_refused() {
        let slots = IrqSlots::new(1).unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(slots.connect(0, &OwnedFd::from(a)).is_err());
        let e = EventFd::new(0).unwrap();
        assert!(slots.connect(3, &owned(&e)).is_err());
    }
}
