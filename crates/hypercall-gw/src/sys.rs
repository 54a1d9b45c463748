//! Small system helpers: polling a few descriptors.

use std::os::fd::RawFd;
use std::time::Duration;

/// Waits until one of `fds` is readable (or hung up), or `timeout` passes (`None`:
/// forever). Returns which were ready. EINTR counts as a timeout.
pub(crate) fn poll_readable(fds: &[RawFd], timeout: Option<Duration>) -> Vec<bool> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.map_or(-1, |t| t.as_millis().clamp(1, i32::MAX as u128) as i32);
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structures that poll may
    // write the `revents` of; the result is checked below.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n <= 0 {
        return vec![false; fds.len()];
    }
    pfds.iter().map(|p| p.revents != 0).collect()
}
