//! Asynchronous teardown: the kernel's destruction of a KVM VM (run when the last
//! reference to the VM fd goes) takes 10–20 ms here, most of it SRCU grace periods the
//! in-kernel PIT's unregistration waits for. `kvmbus run` has nothing left to do for its
//! user by then, so it hands the last reference to a short-lived child process and exits;
//! the child drops it once the parent has let go, and the kernel tears the VM down there.
//! This is what QEMU's `-run-with async-teardown=on` does for the same reason.
//!
//! The child is a `fork` of a multi-threaded process, so it only makes raw system calls
//! (close_range, read, _exit). It keeps nothing but the VM fd and the pipe it waits on
//! (and stderr while the start-up trace is on, so that a launcher reading stderr to its
//! end sees when the teardown finished): no listening socket, pipe to a parent or file
//! stays open past the VMM's own exit.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The parent's side of a handed-off teardown: dropping it (after the parent closed its
/// own VM fd) lets the child go.
pub struct Handoff {
    release: OwnedFd,
    child: libc::pid_t,
}

impl Handoff {
    /// Lets the child go and waits for it to end (for callers that outlive the VM, such
    /// as tests; `kvmbus run` exits instead and leaves the child to init).
    pub fn release_and_wait(self) {
        drop(self.release);
        let mut status = 0;
        // SAFETY: `child` is this process's unwaited child; `status` is writable.
        unsafe { libc::waitpid(self.child, &mut status, 0) };
    }
}

/// Forks the teardown child holding `vm_fd`. On success the caller closes its VM fd and
/// then drops the [`Handoff`]; on failure (no pipe, no fork) it returns `None` and the
/// caller tears down as usual.
pub fn hand_off(vm_fd: &impl AsRawFd, keep_stderr: bool) -> Option<Handoff> {
    let mut p = [0; 2];
    // SAFETY: `p` is a valid two-int array for pipe2 to fill.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: pipe2 succeeded, so both fds are new and owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    // Everything the child uses is prepared here: it must not allocate after fork.
    let mut keep = [vm_fd.as_raw_fd(), rd.as_raw_fd(), libc::STDERR_FILENO];
    let kept = if keep_stderr { 3 } else { 2 };
    keep[..kept].sort_unstable();
    // SAFETY: fork has no memory-safety preconditions; the child below only makes
    // async-signal-safe system calls before `_exit`, as a child of a threaded process must.
    match unsafe { libc::fork() } {
        -1 => None,
        0 => child(&keep[..kept], rd.as_raw_fd(), vm_fd.as_raw_fd()),
        pid => {
            drop(rd);
            Some(Handoff {
                release: wr,
                child: pid,
            })
        }
    }
}

/// The child: closes every fd but `keep` (sorted), waits until the parent closes its end
/// of the pipe (or exits), closes `vm` (the last reference: the kernel tears the VM down
/// before close returns), then exits. Closing it first, rather than leaving it to exit,
/// makes the teardown end before stderr closes, so a launcher reading stderr to its end
/// knows when the teardown ended.
fn child(keep: &[RawFd], wait_on: RawFd, vm: RawFd) -> ! {
    let mut from: u32 = 0;
    for &fd in keep {
        let fd = fd as u32;
        if fd > from {
            close_range(from, fd - 1);
        }
        from = fd + 1;
    }
    close_range(from, u32::MAX);
    let mut byte = 0u8;
    loop {
        // SAFETY: `byte` is a valid one-byte buffer; `wait_on` is the pipe's read end.
        let n = unsafe { libc::read(wait_on, (&mut byte as *mut u8).cast(), 1) };
        if n >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    // SAFETY: `vm` is this process's copy of the VM fd; nothing in the child uses it again.
    unsafe { libc::close(vm) };
    // SAFETY: _exit ends this process without running the parent's atexit handlers or
    // destructors.
    unsafe { libc::_exit(0) }
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range only closes fds of this (child) process; no Rust object in the
    // child uses them again (it only reads `wait_on`, which is kept).
    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The child holds a reference until the handoff drops: a pipe's write end given to
    /// it stays open (no EOF) until then, and closes right after.
    #[test]
    fn the_child_keeps_the_fd_until_released() {
        let mut p = [0; 2];
        // SAFETY: `p` is a valid two-int array.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both fds are new and ours.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
        let handoff = hand_off(&wr, false).expect("fork");
        drop(wr);
        let eof = |timeout: Duration| {
            let mut pfd = libc::pollfd {
                fd: rd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `pfd` is one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
            pfd.revents & libc::POLLHUP != 0
        };
        assert!(
            !eof(Duration::from_millis(200)),
            "the child let go too early"
        );
        let t = Instant::now();
        handoff.release_and_wait();
        assert!(eof(Duration::from_secs(5)), "the child never let go");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
