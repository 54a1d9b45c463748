//! A device's stop signal. Fired once when the VM is asked to stop (a `VmControl` stop
//! hook), it ends every wait for the server, a vCPU's for a reply as the watch thread's
//! for a reconnection's VERSION, within [`GRACE`], so that a stalled server cannot hold
//! up a stop for the reply timeout (up to a minute). A reply already on its way still
//! lands. Each boot's device has its own; a connection kept across a reset is given the
//! new one.

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vfio_user_proto::Channel;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// How long a wait goes on after the stop.
pub(crate) const GRACE: Duration = Duration::from_millis(100);

/// The stop signal: an eventfd written once (never read, so it stays readable).
pub(crate) struct Halt {
    fd: EventFd,
    fired: AtomicBool,
}

impl Halt {
    pub(crate) fn new() -> std::io::Result<Halt> {
        Ok(Halt {
            fd: EventFd::new(EFD_NONBLOCK)?,
            fired: AtomicBool::new(false),
        })
    }

    /// Ends the waits (idempotent).
    pub(crate) fn fire(&self) {
        if !self.fired.swap(true, Ordering::SeqCst) {
            let _ = self.fd.write(1);
        }
    }

    /// True once fired.
    pub(crate) fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Makes `chan`'s waits end within [`GRACE`] of the fire. (Without a second
    /// descriptor for it, which only running out of fds denies, the channel's waits end
    /// at their timeouts as before.)
    pub(crate) fn arm(&self, chan: &mut Channel) {
        if let Ok(dup) = self.fd.try_clone() {
            // SAFETY: `into_raw_fd` hands over the new descriptor `try_clone` made; nothing
            // else owns or closes it.
            let fd = unsafe { OwnedFd::from_raw_fd(dup.into_raw_fd()) };
            chan.set_cancel(fd, GRACE);
        }
    }
}
