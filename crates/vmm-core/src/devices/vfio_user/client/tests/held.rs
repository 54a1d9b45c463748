//! Connections kept across a machine reset ([`HeldConnections`]): a server that serves
//! one connection sees DEVICE_RESET and the new guest memory, never a hang-up.

use super::*;
use crate::memory::GuestRam;

/// One boot's device on `path` with `mib` MiB of guest memory DMA-mapped.
fn boot(o: &ClientOptions, mib: u64) -> (VfioUserDevice, GuestRam) {
    let ram = GuestRam::new(mib << 20).unwrap();
    let hs = handles(8);
    let mut vectors = move |_n: u16| Ok(hs.clone());
    let dev = VfioUserDevice::connect(
        o,
        Wiring {
            vectors: &mut vectors,
            dma: Some(DmaMemory {
                memory: ram.memory.clone(),
                memfd: ram.memfd.clone(),
                size: ram.size,
            }),
            mapper: None,
            intx: None,
        },
    )
    .unwrap();
    (dev, ram)
}

/// DMA_UNMAP of `[0, mib MiB)`: true if the server had exactly that mapped.
fn unmap(dev: &VfioUserDevice, mib: u64) -> bool {
    let u = vu::DmaUnmap {
        flags: 0,
        address: 0,
        size: mib << 20,
    };
    matches!(
        dev.conn().call(vu::Command::DmaUnmap, &u.encode(), &[]),
        Some(Ok(_))
    )
}

#[test]
fn a_held_connection_outlives_its_device_and_the_next_boot_resets_it() {
    let path = sock("held");
    // One connection only, as libvfio-user's samples serve: a second connection would
    // never be answered (the reply times out).
    let _conns = spawn_server(&path, served_irq_test(8, 4, false).unwrap(), 1);
    let held = HeldConnections::default();
    let o = ClientOptions {
        held: Some(held.clone()),
        reply_timeout: Duration::from_millis(500),
        ..opts(&path)
    };
    let (mut dev, _ram1) = boot(&o, 1);
    w32(&mut dev, 0, 0x04, 5);
    assert_eq!(r32(&mut dev, 0, 0x04), 5);
    drop(dev);
    assert_eq!(held.len(), 1, "the connection is parked, not closed");

    // The next boot: different memory (a different size here, to tell the maps apart).
    let (mut dev, _ram2) = boot(&o, 2);
    assert!(held.is_empty(), "taken by the new device");
    assert!(dev.connected());
    assert_eq!(r32(&mut dev, 0, 0x04), 0, "DEVICE_RESET: VECTOR back to 0");
    assert_eq!(
        r32(&mut dev, 0, 0),
        MAGIC,
        "the device answers on the kept connection"
    );
    assert!(!unmap(&dev, 1), "the old guest memory was unmapped");
    assert!(unmap(&dev, 2), "the new guest memory is mapped");
}

#[test]
fn a_parked_connection_the_server_closed_is_replaced_by_a_new_one() {
    let path = sock("held-dead");
    let conns = spawn_server(&path, served_irq_test(8, 4, false).unwrap(), 2);
    let held = HeldConnections::default();
    let o = ClientOptions {
        held: Some(held.clone()),
        ..opts(&path)
    };
    let (dev, _ram1) = boot(&o, 1);
    drop(dev);
    assert_eq!(held.len(), 1);
    // The server ends that connection while no device holds it.
    let first = conns.recv_timeout(Duration::from_secs(5)).unwrap();
    first.shutdown(std::net::Shutdown::Both).unwrap();
    let (mut dev, _ram2) = boot(&o, 1);
    assert!(held.is_empty());
    assert_eq!(r32(&mut dev, 0, 0), MAGIC, "served on a new connection");
    assert!(
        conns.recv_timeout(Duration::from_secs(5)).is_ok(),
        "the server accepted a second connection"
    );
}

#[test]
fn without_a_store_the_connection_closes_with_its_device() {
    let path = sock("held-none");
    let conns = spawn_server(&path, served_irq_test(8, 4, false).unwrap(), 1);
    let (dev, _ram) = boot(&opts(&path), 1);
    let server_side = conns.recv_timeout(Duration::from_secs(5)).unwrap();
    drop(dev);
    server_side
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 1];
    // End of stream (sticky: the server's own reader does not take it from this one);
    // an open client would leave this read to time out instead.
    let n = std::io::Read::read(&mut &server_side, &mut b);
    assert!(matches!(n, Ok(0)), "the client closed its end: {n:?}");
}
