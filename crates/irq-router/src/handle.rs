//! [`IrqHandle`]: one interrupt vector as a file descriptor.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use crate::{Error, Result};

/// A cloneable handle that raises one device vector.
///
/// Writing the eventfd raises the interrupt through KVM_IRQFD while the vector is routed
/// and unmasked; while it is masked or unrouted the write stays in the eventfd counter,
/// which is the vector's pending bit, and KVM delivers it once when the irqfd is bound
/// again. The raw fd can be handed to another process, which then raises the interrupt
/// with no VMM involvement.
#[derive(Clone)]
pub struct IrqHandle {
    fd: Arc<EventFd>,
    triggers: metrics::Counter,
}

impl IrqHandle {
    /// Wraps an eventfd; `triggers` counts [`IrqHandle::trigger`] calls (use
    /// `metrics::Counter::noop()` when not counted).
    pub fn new(fd: Arc<EventFd>, triggers: metrics::Counter) -> Self {
        IrqHandle { fd, triggers }
    }

    /// Raises the interrupt (or marks it pending while masked).
    pub fn trigger(&self) -> Result<()> {
        self.triggers.increment(1);
        self.fd.write(1).map_err(Error::EventFd)
    }

    /// Raises the interrupt once for `count` requests that arrived together (an
    /// eventfd's coalesced count), counting all of them.
    pub fn trigger_coalesced(&self, count: u64) -> Result<()> {
        self.triggers.increment(count);
        self.fd.write(1).map_err(Error::EventFd)
    }

    /// True if a trigger is waiting in the eventfd (not yet consumed by KVM): the
    /// vector's pending bit. Does not consume it.
    pub fn is_pending(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd for the duration of the call, the count is 1,
        // and a zero timeout makes the call non-blocking; the result is checked.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n == 1 && pfd.revents & libc::POLLIN != 0
    }

    /// The eventfd itself (to bind with KVM_IRQFD or pass to another process).
    pub fn eventfd(&self) -> &Arc<EventFd> {
        &self.fd
    }
}

impl AsRawFd for IrqHandle {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl std::fmt::Debug for IrqHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrqHandle")
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}

/// The MSI/MSI-X pending bits of a device whose vectors are `IrqHandle`s (index = vector):
/// a vector is pending while its eventfd holds an undelivered trigger.
pub struct HandlesPending(pub Vec<IrqHandle>);

impl pci_emu::PendingBits for HandlesPending {
    fn pending(&self, _source: pci_emu::IrqSource, vector: u16) -> bool {
        self.0
            .get(usize::from(vector))
            .is_some_and(IrqHandle::is_pending)
    }
}
