//! [`RecordingIrqChip`]: an [`IrqChip`] that records every call, for tests without KVM.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pci_emu::MsiMessage;
use vmm_sys_util::eventfd::EventFd;

use crate::{Error, GsiRoute, IrqChip, Result};

/// One call made to a [`RecordingIrqChip`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChipCall {
    /// KVM_SET_GSI_ROUTING with this whole table.
    SetGsiRouting(Vec<GsiRoute>),
    /// KVM_IRQFD assign.
    RegisterIrqfd {
        /// The eventfd's descriptor number.
        fd: RawFd,
        /// The GSI.
        gsi: u32,
        /// A trigger was waiting in the eventfd: KVM would inject it once on assign.
        pending: bool,
    },
    /// KVM_IRQFD deassign.
    UnregisterIrqfd {
        /// The eventfd's descriptor number.
        fd: RawFd,
        /// The GSI.
        gsi: u32,
    },
    /// KVM_SIGNAL_MSI.
    SignalMsi(MsiMessage),
    /// KVM_IRQ_LINE.
    SetIrqLine {
        /// The GSI.
        irq: u32,
        /// The level.
        level: bool,
    },
}

/// The kind of a [`ChipCall`], to make one fail with [`RecordingIrqChip::fail_next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChipOp {
    /// [`IrqChip::set_gsi_routing`].
    SetGsiRouting,
    /// [`IrqChip::register_irqfd`].
    RegisterIrqfd,
    /// [`IrqChip::unregister_irqfd`].
    UnregisterIrqfd,
    /// [`IrqChip::signal_msi`].
    SignalMsi,
    /// [`IrqChip::set_irq_line`].
    SetIrqLine,
}

impl ChipOp {
    fn name(self) -> &'static str {
        match self {
            ChipOp::SetGsiRouting => "KVM_SET_GSI_ROUTING",
            ChipOp::RegisterIrqfd => "KVM_IRQFD",
            ChipOp::UnregisterIrqfd => "KVM_IRQFD(deassign)",
            ChipOp::SignalMsi => "KVM_SIGNAL_MSI",
            ChipOp::SetIrqLine => "KVM_IRQ_LINE",
        }
    }
}

#[derive(Default)]
struct State {
    calls: Vec<ChipCall>,
    failures: HashMap<ChipOp, VecDeque<i32>>,
    table: Vec<GsiRoute>,
    irqfds: BTreeMap<RawFd, u32>,
}

/// An [`IrqChip`] that records every call in order (including calls that fail) and
/// keeps the state KVM would have: the last table set and the assigned irqfds.
///
/// Like KVM it rejects assigning an eventfd that is already assigned (EBUSY); stricter
/// than KVM (which ignores it) it also rejects deassigning one that is not assigned to
/// that GSI (ENOENT), so unbalanced calls show up in tests. It never
/// consumes an eventfd: a trigger delivered by KVM would be, so tests look at the
/// `pending` flag of [`ChipCall::RegisterIrqfd`] instead.
#[derive(Default)]
pub struct RecordingIrqChip {
    state: Mutex<State>,
    changed: Condvar,
}

impl RecordingIrqChip {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<ChipCall> {
        self.state().calls.clone()
    }

    /// Every call so far, in order, and forgets them.
    pub fn take_calls(&self) -> Vec<ChipCall> {
        std::mem::take(&mut self.state().calls)
    }

    /// Makes the next call of `op` fail with `errno` (calls queue up).
    pub fn fail_next(&self, op: ChipOp, errno: i32) {
        self.state()
            .failures
            .entry(op)
            .or_default()
            .push_back(errno);
    }

    /// The table of the last successful [`IrqChip::set_gsi_routing`].
    pub fn table(&self) -> Vec<GsiRoute> {
        self.state().table.clone()
    }

    /// The MSI routes of the current table, by GSI.
    pub fn msi_routes(&self) -> BTreeMap<u32, MsiMessage> {
        self.state()
            .table
            .iter()
            .filter_map(|r| match *r {
                GsiRoute::Msi { gsi, message } => Some((gsi, message)),
                GsiRoute::Irqchip { .. } => None,
            })
            .collect()
    }

    /// The assigned irqfds: descriptor number to GSI.
    pub fn irqfds(&self) -> BTreeMap<RawFd, u32> {
        self.state().irqfds.clone()
    }

    /// Waits until `done` holds for the calls so far, at most `timeout`; returns whether
    /// it held (for calls made by the SignalMsi thread).
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[ChipCall]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            if done(&state.calls) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Records `call`, then fails it if asked to, else applies `effect`.
    fn record(
        &self,
        op: ChipOp,
        call: ChipCall,
        effect: impl FnOnce(&mut State) -> std::result::Result<(), i32>,
    ) -> Result<()> {
        let mut state = self.state();
        state.calls.push(call);
        self.changed.notify_all();
        let injected = state.failures.get_mut(&op).and_then(VecDeque::pop_front);
        let errno = match injected {
            Some(errno) => Err(errno),
            None => effect(&mut state),
        };
        errno.map_err(|errno| Error::Kvm {
            op: op.name(),
            source: std::io::Error::from_raw_os_error(errno),
        })
    }
}

fn is_readable(fd: &EventFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd for the duration of the call, the count is 1 and
    // the zero timeout makes the call non-blocking; the result is checked.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLIN != 0
}

impl IrqChip for RecordingIrqChip {
    fn set_gsi_routing(&self, routes: &[GsiRoute]) -> Result<()> {
        self.record(
            ChipOp::SetGsiRouting,
            ChipCall::SetGsiRouting(routes.to_vec()),
            |s| {
                s.table = routes.to_vec();
                Ok(())
            },
        )
    }

    fn register_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<()> {
        let raw = fd.as_raw_fd();
        let call = ChipCall::RegisterIrqfd {
            fd: raw,
            gsi,
            pending: is_readable(fd),
        };
        self.record(ChipOp::RegisterIrqfd, call, |s| {
            if s.irqfds.contains_key(&raw) {
                return Err(libc::EBUSY);
            }
            s.irqfds.insert(raw, gsi);
            Ok(())
        })
    }

    fn unregister_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<()> {
        let raw = fd.as_raw_fd();
        let call = ChipCall::UnregisterIrqfd { fd: raw, gsi };
        self.record(ChipOp::UnregisterIrqfd, call, |s| {
            if s.irqfds.get(&raw) != Some(&gsi) {
                return Err(libc::ENOENT);
            }
            s.irqfds.remove(&raw);
            Ok(())
        })
    }

    fn signal_msi(&self, message: MsiMessage) -> Result<()> {
        self.record(ChipOp::SignalMsi, ChipCall::SignalMsi(message), |_| Ok(()))
    }

    fn set_irq_line(&self, irq: u32, level: bool) -> Result<()> {
        self.record(
            ChipOp::SetIrqLine,
            ChipCall::SetIrqLine { irq, level },
            |_| Ok(()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_fails_on_request() {
        let chip = RecordingIrqChip::new();
        let fd = EventFd::new(0).unwrap();
        chip.fail_next(ChipOp::RegisterIrqfd, libc::EINVAL);
        let err = chip.register_irqfd(&fd, 30).unwrap_err();
        assert!(matches!(
            err,
            Error::Kvm {
                op: "KVM_IRQFD",
                ..
            }
        ));
        assert!(chip.irqfds().is_empty());
        chip.register_irqfd(&fd, 30).unwrap();
        assert!(
            chip.register_irqfd(&fd, 30).is_err(),
            "double assign is EBUSY"
        );
        chip.unregister_irqfd(&fd, 30).unwrap();
        assert!(
            chip.unregister_irqfd(&fd, 30).is_err(),
            "not assigned is ENOENT"
        );
        assert_eq!(chip.calls().len(), 5);
        assert_eq!(chip.take_calls().len(), 5);
        assert!(chip.calls().is_empty());
    }
}
