//! Kicking a vCPU thread out of KVM_RUN.
//!
//! The kick is a real-time signal whose handler runs on the vCPU thread itself and sets
//! `immediate_exit` in that thread's `kvm_run` (found through a thread-local pointer the
//! vCPU loop registers). A kick that lands while the thread is in the guest makes
//! KVM_RUN return EINTR; one that lands just before KVM_RUN is entered makes it return
//! EINTR at once: either way the loop sees it, so one kick is enough (no re-signalling).
//! Stop signals (SIGINT, SIGTERM, SIGHUP) are handled in one place for the whole binary:
//! [`monitor::stop_on_signals`].

use std::cell::Cell;
use std::sync::atomic::{compiler_fence, Ordering};
use std::sync::Once;

use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

thread_local! {
    /// This thread's `kvm_run.immediate_exit`, while it runs a vCPU.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let p = IMMEDIATE_EXIT.with(|c| c.get());
    if !p.is_null() {
        // SAFETY: the pointer is this thread's own kvm_run.immediate_exit, registered by
        // the vCPU loop and cleared before the vCPU fd (and its mapping) goes away; the
        // handler runs on this thread, so the loop cannot be dropping it concurrently.
        unsafe { p.write_volatile(1) };
        compiler_fence(Ordering::SeqCst);
    }
}

/// The signal used to kick vCPU threads out of KVM_RUN.
pub fn kick_signal() -> i32 {
    SIGRTMIN()
}

/// Installs the kick handler (once per process).
pub fn install_kick_handler() -> std::io::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = register_signal_handler(kick_signal(), on_kick).map_err(std::io::Error::from);
    });
    result
}

/// Registers (or, with null, clears) the calling thread's `kvm_run.immediate_exit`.
pub fn set_immediate_exit_slot(slot: *mut u8) {
    IMMEDIATE_EXIT.with(|c| c.set(slot));
}

/// Kicks `thread` (a vCPU thread that is still running) out of KVM_RUN.
pub fn kick(thread: libc::pthread_t) {
    // SAFETY: the caller passes the pthread_t of a thread that has not been joined, so it
    // is valid; the kick signal's handler is installed before any vCPU thread starts.
    unsafe { libc::pthread_kill(thread, kick_signal()) };
}
