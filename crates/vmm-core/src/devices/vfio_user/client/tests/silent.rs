//! A server that accepts and then says nothing while the device reconnects: the
//! connection is negotiated without the device's lock, so BAR accesses keep answering
//! (all-ones) at once instead of waiting out the reply timeout.

use super::*;

#[test]
fn a_silent_server_holds_up_no_bar_access_while_the_device_reconnects() {
    let path = sock("silent");
    let conns = spawn_server(&path, served_irq_test(2, 1, false).unwrap(), 1);
    let hs = handles(2);
    let mut v = |_n: u16| Ok(hs.clone());
    let mut dev = connect_msi(&opts(&path), &mut v).unwrap();
    assert_eq!(r32(&mut dev, 0, 0), MAGIC);

    // The socket now belongs to a listener that accepts and never answers (the reply
    // timeout in `opts` is 2 s); then the server goes.
    let first = conns.recv_timeout(Duration::from_secs(5)).unwrap();
    std::fs::remove_file(&path).unwrap();
    let silent = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let kept: Vec<_> = silent.incoming().take(2).collect();
        std::thread::sleep(Duration::from_secs(6));
        drop(kept);
    });
    first.shutdown(std::net::Shutdown::Both).unwrap();
    wait_until("disconnected", || !dev.connected());

    // For 1.5 s the device keeps trying the silent server; every access answers at once.
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    let mut reads = 0;
    while t0.elapsed() < Duration::from_millis(1500) {
        let t = Instant::now();
        assert_eq!(r32(&mut dev, 0, 0), u32::MAX);
        worst = worst.max(t.elapsed());
        reads += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(reads > 20, "{reads} reads in 1.5 s");
    assert!(
        worst < Duration::from_millis(500),
        "a BAR read waited {worst:?} for a reconnection"
    );
    let _ = std::fs::remove_file(&path);
}
