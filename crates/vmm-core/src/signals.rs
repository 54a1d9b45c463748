//! SIGINT/SIGTERM stop the VM; a real-time signal kicks vCPU threads out of KVM_RUN.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

use crate::control::{StopReason, VmControl};

static STOP_FD: AtomicI32 = AtomicI32::new(-1);
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop_signal(signo: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    STOP_SIGNAL.store(signo, Ordering::SeqCst);
    let fd = STOP_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: write(2) is async-signal-safe; `one` is a valid 8-byte buffer and `fd`
        // is the eventfd installed before the handler was registered.
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// The signal used to kick vCPU threads out of KVM_RUN.
pub fn kick_signal() -> i32 {
    SIGRTMIN()
}

/// Installs the kick handler (a no-op whose only effect is to make KVM_RUN return EINTR).
pub fn install_kick_handler() -> std::io::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = register_signal_handler(kick_signal(), on_kick).map_err(std::io::Error::from);
    });
    result
}

/// Makes SIGINT and SIGTERM request a stop of `control`'s VM, from a watcher thread.
pub fn stop_on_signals(control: Arc<VmControl>) -> std::io::Result<()> {
    let efd = EventFd::new(libc::EFD_NONBLOCK)?;
    STOP_FD.store(efd.as_raw_fd(), Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        register_signal_handler(sig, on_stop_signal).map_err(std::io::Error::from)?;
    }
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            if efd.read().is_ok() {
                control.request_stop(StopReason::Signal(STOP_SIGNAL.load(Ordering::SeqCst)));
                return;
            }
            if control.stopping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        })?;
    Ok(())
}
