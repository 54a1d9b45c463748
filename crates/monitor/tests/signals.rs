//! `stop_on_signals` turns SIGTERM into a stop message (own test binary: it installs
//! process-wide handlers).

use std::time::Duration;

#[test]
fn sigterm_and_sighup_send_stop() {
    let rx = monitor::stop_on_signals().unwrap();
    assert!(rx.try_recv().is_err());
    for sig in [libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: raising a signal whose handler stop_on_signals installed.
        assert_eq!(unsafe { libc::raise(sig) }, 0);
        let got = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a stop message per signal");
        assert_eq!(got, sig);
    }
    let again = monitor::stop_on_signals().unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::raise(libc::SIGINT) }, 0);
    again
        .recv_timeout(Duration::from_secs(5))
        .expect("the same channel");
}
