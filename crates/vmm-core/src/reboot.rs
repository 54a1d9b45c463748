//! A machine that may boot more than once: `[vm] on_reset = "reboot"`.
//!
//! A guest's machine reset (a reset request at the reset control register 0xCF9, or a
//! triple fault, which is a reset on a PC) ends the running [`Vm`]. With
//! `on_reset = "exit"` (the default) that ends kvmbus with exit code 4, as QEMU's
//! `-no-reboot` ends QEMU. With "reboot" the machine boots again: a fresh VM from the
//! same configuration (fresh memory, devices in their power-on state, the image loaded
//! again), as Cloud Hypervisor reboots. What outlives a boot:
//! * vfio-user server connections ([`HeldConnections`]): the next boot's device takes
//!   its predecessor's connection, unmaps the old guest memory and sends DEVICE_RESET,
//!   so a server that serves one connection sees a machine reset, not a hang-up;
//! * the metrics endpoint, the dashboard and the process's signal handling: a stop
//!   request (signal, dashboard) ends the machine, never just one boot.

use std::sync::{Arc, Mutex};

use crate::config::{Config, OnReset};
use crate::control::{StopReason, VmControl};
use crate::devices::vfio_user::client::HeldConnections;
use crate::vm::{RunOptions, Vm};
use crate::Result;

/// What the machine's stop requests reach: the current boot's control, and whether the
/// whole machine was asked to stop.
#[derive(Default)]
struct Current {
    control: Option<Arc<VmControl>>,
    stop: Option<StopReason>,
}

/// A machine: its configuration and what outlives each boot.
pub struct Machine {
    config: Config,
    held: HeldConnections,
    current: Mutex<Current>,
}

impl Machine {
    /// A machine of `config` (nothing built yet).
    pub fn new(config: Config) -> Machine {
        Machine {
            config,
            held: HeldConnections::default(),
            current: Mutex::new(Current::default()),
        }
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Builds one boot's VM. Connections are kept across boots only when the machine
    /// reboots.
    pub fn build(&self) -> Result<Vm> {
        let held = (self.config.on_reset == OnReset::Reboot).then_some(&self.held);
        Vm::build(self.config.clone(), held)
    }

    /// Stops the machine (whichever boot runs, and no reboot after it).
    pub fn request_stop(&self, reason: StopReason) {
        let mut cur = self.current();
        if let Some(c) = &cur.control {
            c.request_stop(reason.clone());
        }
        cur.stop.get_or_insert(reason);
    }

    /// Runs `first` (from [`Machine::build`]) and, while the guest resets and the
    /// machine reboots, the boots after it; returns why the machine stopped.
    pub fn run(&self, first: Vm, opts: &RunOptions) -> Result<StopReason> {
        let mut vm = first;
        let mut boot = 1u64;
        loop {
            {
                let mut cur = self.current();
                if let Some(r) = &cur.stop {
                    vm.control.request_stop(r.clone());
                }
                cur.control = Some(vm.control.clone());
            }
            let reason = vm.run(opts)?;
            let mut cur = self.current();
            cur.control = None;
            if !self.config.on_reset.reboots_after(&reason) {
                return Ok(reason);
            }
            if let Some(r) = &cur.stop {
                // Asked to stop while this boot was resetting.
                return Ok(r.clone());
            }
            drop(cur);
            boot += 1;
            log::warn!("{}; rebooting (boot {boot})", reason.describe());
            metrics::counter!(monitor::names::VM_REBOOTS, "vm" => self.config.name.clone())
                .increment(1);
            vm = self.build()?;
        }
    }
}
