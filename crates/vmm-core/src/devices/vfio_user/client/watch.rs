//! The watch thread of a vfio-user device: while the server is connected it sleeps on
//! the socket (a hang-up is noticed at once, even when the guest only touches mapped
//! areas, which never reach the socket) and on the connection's wake eventfd; while the
//! server is away it tries a new connection every [`RECONNECT_EVERY`]. It ends when the
//! connection is parked or gone. An idle device costs it no wake-up.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use vmm_sys_util::eventfd::EventFd;

use super::conn::{dial, Conn};
use crate::{Error, Result};

/// Between reconnection attempts while the server is away.
const RECONNECT_EVERY: Duration = Duration::from_millis(100);

/// Waits until `wake` is written, `socket` (if any) hangs up, or `timeout` passes;
/// drains `wake`. True if the socket hung up (the server closed it or died).
fn wait(wake: &EventFd, socket: Option<RawFd>, timeout: Option<Duration>) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: socket.unwrap_or(-1),
            // Only a hang-up: data the server sends is the calls' to read.
            events: libc::POLLRDHUP,
            revents: 0,
        },
    ];
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    // SAFETY: `fds` is a live array of two pollfds (a negative fd is ignored by poll);
    // the result is checked.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    let _ = wake.read();
    let gone = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR;
    n > 0 && fds[1].revents & gone != 0
}

fn lock(c: &Arc<Mutex<Conn>>) -> std::sync::MutexGuard<'_, Conn> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the watch thread of `conn`.
pub(crate) fn spawn(name: &str, conn: &Arc<Mutex<Conn>>) -> Result<()> {
    let wake = lock(conn).wake.clone();
    let conn: Weak<Mutex<Conn>> = Arc::downgrade(conn);
    std::thread::Builder::new()
        .name("vfio-user-watch".into())
        .spawn(move || loop {
            let watched = {
                let Some(c) = conn.upgrade() else { return };
                let c = lock(&c);
                if c.retired() {
                    return;
                }
                c.watch()
            };
            match watched {
                Some((generation, socket)) => {
                    if wait(&wake, Some(socket.as_raw_fd()), None) {
                        let Some(c) = conn.upgrade() else { return };
                        lock(&c).peer_closed(generation);
                        // Its own wake-up (drop_connection): the first attempt, too,
                        // waits its turn.
                        let _ = wake.read();
                    }
                }
                None => {
                    wait(&wake, None, Some(RECONNECT_EVERY));
                    let Some(c) = conn.upgrade() else { return };
                    let (socket, timeout, halt) = lock(&c).dial_target();
                    // Connect and VERSION without the lock: a server that accepts and
                    // then says nothing keeps no vCPU waiting on it.
                    let dialed = dial(&socket, timeout, &halt);
                    let mut c = lock(&c);
                    if c.retired() {
                        return;
                    }
                    c.reconnect_with(dialed);
                    // A failed attempt woke this thread itself (drop_connection): the
                    // next attempt still waits its turn.
                    let _ = wake.read();
                }
            }
        })
        .map(|_| ())
        .map_err(|e| Error::Io {
            what: format!("spawning the watch thread of {name}"),
            source: e,
        })
}
