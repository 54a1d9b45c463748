//! The socket figures of the vfio-user bench, without a VM: a REGION_READ round trip to
//! a device-server ("socket-rt") and the least any socket round trip costs here
//! ("socket-floor").

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use vfio_user_proto as vu;

use super::server;

/// Mean µs of `n` REGION_READ round trips (4 bytes of BAR0) from this process to a fresh
/// device-server, polling 50 µs for each reply as kvmbus's vCPU thread does.
pub fn socket_round_trip(dir: &Path, n: u64) -> f64 {
    let sock = dir.join("rt.sock");
    let _srv = server(&sock, None);
    let t0 = Instant::now();
    let stream = loop {
        match UnixStream::connect(&sock) {
            Ok(s) => break s,
            Err(e) if t0.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("connecting to the device-server: {e}"),
        }
    };
    let mut chan = vu::Channel::new(stream, vu::Limits::default());
    chan.set_poll(Duration::from_micros(50));
    let timeout = Duration::from_secs(2);
    let mut refuse = |_: &vu::Message| Err(libc::EINVAL as u32);
    let hello = vu::Version {
        major: vu::MAJOR,
        minor: vu::MINOR,
        caps: vu::Capabilities {
            max_msg_fds: 8,
            max_data_xfer_size: 1 << 20,
            pgsizes: Some(4096),
        },
    };
    chan.call(
        vu::Command::Version,
        &hello.encode(),
        &[],
        timeout,
        &mut refuse,
    )
    .expect("VERSION");
    let read = |chan: &mut vu::Channel, refuse: &mut dyn FnMut(&vu::Message) -> _| {
        let req = vu::RegionAccess {
            offset: 0,
            region: 0,
            count: 4,
            data: Vec::new(),
        };
        let m = chan
            .call(vu::Command::RegionRead, &req.encode(), &[], timeout, refuse)
            .expect("REGION_READ");
        let r = vu::RegionAccess::decode(&m.payload).expect("a REGION_READ reply");
        assert_eq!(r.data, 0x4952_5154u32.to_le_bytes(), "the ID register");
    };
    read(&mut chan, &mut refuse);
    let t0 = Instant::now();
    for _ in 0..n {
        read(&mut chan, &mut refuse);
    }
    t0.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// Mean µs of `n` round trips of 40 bytes between two threads over a Unix stream socket
/// pair, both spinning on non-blocking reads (no protocol, no device): the floor of any
/// socket round trip here.
pub fn socket_floor(n: u64) -> f64 {
    use std::io::{ErrorKind, Read};
    fn spin_read(s: &mut UnixStream, buf: &mut [u8]) {
        let mut got = 0;
        while got < buf.len() {
            match s.read(&mut buf[got..]) {
                Ok(0) => panic!("socket floor: peer closed"),
                Ok(k) => got += k,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("socket floor: {e}"),
            }
        }
    }
    let (mut a, mut b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 40];
        for _ in 0..=n {
            spin_read(&mut b, &mut buf);
            b.write_all(&buf).unwrap();
        }
    });
    let mut buf = [0u8; 40];
    let mut bounce = |a: &mut UnixStream| {
        a.write_all(&buf).unwrap();
        spin_read(a, &mut buf);
    };
    bounce(&mut a);
    let t0 = Instant::now();
    for _ in 0..n {
        bounce(&mut a);
    }
    let us = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
    echo.join().unwrap();
    us
}
