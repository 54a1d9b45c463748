//! Server connections kept across a machine reset.
//!
//! kvmbus reboots (`[vm] on_reset = "reboot"`) by building a fresh VM from the same
//! configuration ([`crate::reboot`]). A vfio-user server may serve one connection only
//! and exit when it closes (libvfio-user's samples, the rust-vmm gpio example), so a
//! device's connection is not closed with its VM: it is parked here when the device is
//! dropped, and the device of the next boot takes it by socket path. That device then
//! unmaps the old guest memory (DMA_UNMAP), resets the device (DEVICE_RESET) and wires it
//! to the new VM as at start: a machine reset, as QEMU's client does it, on one
//! connection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vfio_user_proto as vu;

/// A connection between two boots.
pub(crate) struct Held {
    /// The negotiated channel.
    pub(crate) chan: vu::Channel,
    /// What the server accepts (negotiated once).
    pub(crate) peer: vu::Capabilities,
    /// Bytes of the old guest memory the server has DMA-mapped at 0.
    pub(crate) dma: Option<u64>,
}

/// Connections parked by the devices of one boot for those of the next, by socket.
/// Cloning shares the store; what is still parked when the last clone drops is closed.
#[derive(Clone, Default)]
pub struct HeldConnections(Arc<Mutex<HashMap<PathBuf, Held>>>);

impl HeldConnections {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Held>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks `held` for the device of the next boot on `socket` (one replaced is closed).
    pub(crate) fn put(&self, socket: &Path, held: Held) {
        self.map().insert(socket.to_path_buf(), held);
    }

    /// Takes the connection parked for `socket`, if any.
    pub(crate) fn take(&self, socket: &Path) -> Option<Held> {
        self.map().remove(socket)
    }

    /// How many connections are parked.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// True if none is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for HeldConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeldConnections({} parked)", self.len())
    }
}
