//! Mapped areas and BAR padding: a region smaller than its BAR, mapped areas that leave
//! the guest when the server goes (noticed without any access), and a reconnection
//! that maps the new server's memory, only once a server is the same device.

use std::os::fd::AsRawFd;

use super::*;

/// Serves each of `servers` in turn on `path`, `n` connections each; returns how many
/// connections each one has taken so far.
fn spawn_servers(path: &std::path::Path, servers: Vec<(Served, usize)>) -> Arc<Vec<AtomicU32>> {
    let listener = server::listen(path).unwrap();
    let taken: Arc<Vec<AtomicU32>> = Arc::new(servers.iter().map(|_| AtomicU32::new(0)).collect());
    let counts = taken.clone();
    std::thread::spawn(move || {
        for (k, (served, n)) in servers.into_iter().enumerate() {
            let mut srv = Server::new(served);
            for _ in 0..n {
                let (c, _) = listener.accept().unwrap();
                counts[k].fetch_add(1, Ordering::SeqCst);
                let _ = srv.serve(c);
            }
        }
    });
    taken
}

/// The irq-test served with a shared BAR4 of `size` bytes whose word at 8 is `mark`.
fn served_with_bar4(size: u64, mark: u32) -> Served {
    let mut s = served_irq_test(2, 1, false).unwrap();
    let fd = server::shared_memory(size).unwrap();
    // SAFETY: writes 4 bytes from a live local into the memfd; the result is checked.
    let n = unsafe { libc::pwrite(fd.as_raw_fd(), mark.to_le_bytes().as_ptr().cast(), 4, 8) };
    assert_eq!(n, 4);
    s.shared_bars = vec![(4, fd, size)];
    s
}

fn connect_mapped(path: &std::path::Path, mapper: Option<Arc<TestMapper>>) -> VfioUserDevice {
    let hs = handles(2);
    let mut v = |_n: u16| Ok(hs.clone());
    VfioUserDevice::connect(
        &opts(path),
        Wiring {
            vectors: &mut v,
            dma: None,
            mapper: mapper.map(|m| m as Arc<dyn GuestMapper>),
            intx: None,
        },
    )
    .unwrap()
}

#[test]
fn a_bar_past_its_region_reads_all_ones_and_is_not_forwarded() {
    let path = sock("pad");
    // 12 KiB of region: the BAR is 16 KiB (a power of two), its last 4 KiB padding.
    let _taken = spawn_servers(&path, vec![(served_with_bar4(0x3000, 0), 1)]);
    let mut dev = connect_mapped(&path, None);
    let bar4 = dev
        .config
        .bars()
        .into_iter()
        .find(|b| b.index == 4)
        .unwrap();
    assert_eq!(bar4.size, 0x4000);
    w32(&mut dev, 4, 0x2ffc, 0x1234_5678);
    assert_eq!(
        r32(&mut dev, 4, 0x2ffc),
        0x1234_5678,
        "the region's last word"
    );
    assert_eq!(r32(&mut dev, 4, 0x3000), u32::MAX, "padding");
    // An access across the end: its part in the region goes to the server (which
    // refuses any access reaching past the region), the rest is padding.
    let mut b = [0u8; 8];
    dev.bar_read(4, 0x2ffc, &mut b);
    assert_eq!(b, [0x78, 0x56, 0x34, 0x12, 0xff, 0xff, 0xff, 0xff]);
    dev.bar_write(4, 0x2ffc, &[1, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(r32(&mut dev, 4, 0x2ffc), 1);
    assert_eq!(r32(&mut dev, 4, 0x3ffc), u32::MAX);
    assert!(dev.connected());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn mapped_areas_leave_with_the_server_and_return_with_the_new_ones_memory() {
    let path = sock("remap");
    let taken = spawn_servers(
        &path,
        vec![
            (served_with_bar4(4096, 0xaaaa_0001), 1),
            // Another device at the same socket: no BAR4. Refused, three times.
            (served_irq_test(2, 1, false).unwrap(), 3),
            (served_with_bar4(4096, 0xcccc_0003), 1),
        ],
    );
    let mapper = Arc::new(TestMapper::default());
    let mut dev = connect_mapped(&path, Some(mapper.clone()));
    dev.config_write(0x20, &0x9000_0000u32.to_le_bytes());
    dev.config_write(0x04, &2u16.to_le_bytes());
    assert_eq!(*mapper.slots.lock().unwrap(), vec![(16, 0x9000_0000, 4096)]);
    assert_eq!(
        r32(&mut dev, 4, 8),
        0xaaaa_0001,
        "the first server's memory"
    );

    // The server goes; no access follows: the watch thread sees the hang-up and the
    // slot leaves the guest.
    let first = dev.conn().watch().unwrap().1;
    first.shutdown(std::net::Shutdown::Both).unwrap();
    wait_until("the slot removed", || {
        mapper.slots.lock().unwrap().is_empty()
    });
    assert!(!dev.connected());
    assert_eq!(r32(&mut dev, 4, 8), u32::MAX, "all-ones while away");

    // The other device is refused; the third server is the same device: its memory is
    // mapped where BAR4 is.
    wait_until("reconnected", || dev.connected());
    assert_eq!(taken[1].load(Ordering::SeqCst), 3);
    assert_eq!(mapper.slots.lock().unwrap().len(), 1);
    assert_eq!(mapper.slots.lock().unwrap()[0].1, 0x9000_0000);
    assert_eq!(r32(&mut dev, 4, 8), 0xcccc_0003, "the new server's memory");
    assert_eq!(r32(&mut dev, 0, 0), MAGIC);
    let _ = std::fs::remove_file(&path);
}
