//! `stop_on_signals`: turns SIGINT, SIGTERM and SIGHUP into messages (the signal number)
//! on a channel (a self-pipe: the handler only calls `write(2)`; a thread blocks reading
//! it). This is the one place the `kvmbus` binary handles stop signals: `run` turns a
//! message into a VM stop, `top` and `backend` into their own. Before anyone reads the
//! channel (a VM being built), [`watch_stop_signals`] lets waits end at a signal.

use std::fs::File;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;

use crossbeam_channel::{unbounded, Receiver};

use crate::{Error, Result};

/// Write end of the self-pipe, -1 before installation.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
static INSTALLED: Mutex<Option<Receiver<i32>>> = Mutex::new(None);
/// The first stop signal the signal thread read (0: none yet).
static FIRST: AtomicI32 = AtomicI32::new(0);
/// What the signal thread runs for each stop signal before it queues it.
type Watcher = Box<dyn Fn(i32) + Send>;
static WATCHERS: Mutex<Vec<(u64, Watcher)>> = Mutex::new(Vec::new());
static NEXT_WATCH: AtomicU64 = AtomicU64::new(0);

/// The first stop signal received since [`stop_on_signals`] installed the handlers, if
/// any: for the places that end early on one and then need to say why.
pub fn stop_signal() -> Option<i32> {
    match FIRST.load(Ordering::SeqCst) {
        0 => None,
        n => Some(n),
    }
}

/// Runs `f` with each stop signal's number (on the signal thread, before the signal is
/// queued on [`stop_on_signals`]' channel) for as long as the returned guard lives: for
/// work that must end at a signal while nobody reads the channel yet (building a VM
/// that waits for a device server). `f` must not block.
pub fn watch_stop_signals(f: impl Fn(i32) + Send + 'static) -> SignalWatch {
    let id = NEXT_WATCH.fetch_add(1, Ordering::Relaxed);
    watchers().push((id, Box::new(f)));
    SignalWatch(id)
}

/// Stops a [`watch_stop_signals`] watcher when dropped.
#[must_use = "the watcher stops when this is dropped"]
pub struct SignalWatch(u64);

impl Drop for SignalWatch {
    fn drop(&mut self) {
        watchers().retain(|(id, _)| *id != self.0);
    }
}

fn watchers() -> std::sync::MutexGuard<'static, Vec<(u64, Watcher)>> {
    WATCHERS.lock().unwrap_or_else(|e| e.into_inner())
}

extern "C" fn on_signal(signo: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signo as u8;
        // SAFETY: write(2) is async-signal-safe; `byte` outlives the call; a full pipe
        // (EAGAIN) only drops a redundant wake-up.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Installs handlers for SIGINT, SIGTERM and SIGHUP (replacing their defaults) and returns
/// a receiver that gets each signal's number. Calling it again returns the same channel.
pub fn stop_on_signals() -> Result<Receiver<i32>> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rx) = installed.as_ref() {
        return Ok(rx.clone());
    }
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes; the result is checked.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return Err(Error::Signals(std::io::Error::last_os_error()));
    }
    // The reader blocks; only the writer (used by the handler) stays non-blocking.
    // SAFETY: fds[0] is the read end just created; F_SETFL with flags 0 clears O_NONBLOCK.
    unsafe { libc::fcntl(fds[0], libc::F_SETFL, 0) };
    // SAFETY: fds[0] is a fresh descriptor owned by nobody else.
    let mut reader = unsafe { File::from_raw_fd(fds[0]) };
    PIPE_WRITE.store(fds[1], Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; we set a handler that is async-signal-safe
        // and check the result.
        let ret = unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut())
        };
        if ret < 0 {
            return Err(Error::Signals(std::io::Error::last_os_error()));
        }
    }
    let (tx, rx) = unbounded();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut buf = [0u8; 16];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for signo in &buf[..n] {
                    let signo = i32::from(*signo);
                    let _ = FIRST.compare_exchange(0, signo, Ordering::SeqCst, Ordering::SeqCst);
                    for (_, f) in watchers().iter() {
                        f(signo);
                    }
                    if tx.send(signo).is_err() {
                        return;
                    }
                }
            }
        })
        .map_err(|e| Error::Thread("signals", e))?;
    *installed = Some(rx.clone());
    Ok(rx)
}
