use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::rings::wait_used;
use super::sync::{req, sync_call};
use super::*;
use crate::abi::{Response, Status};
use crate::backend::proto::{self, Msg};
use crate::{run_backend, BackendMode, BackendOptions, Gateway, ServiceConfig};

fn sock_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hcgw-{}-{name}.sock", std::process::id()))
}

fn external(path: &std::path::Path, mode: BackendMode, queue: Option<u16>) -> GatewayConfig {
    let mut c = config();
    c.backend_timeout = Duration::from_millis(300);
    c.services = vec![ServiceConfig::External {
        nr: 0x100,
        count: 4,
        socket: path.into(),
        mode,
        queue,
    }];
    c
}

/// A relay backend that connects, says HELLO and is welcomed (numbers from 0x100); what
/// it does next is the test's.
fn fake_relay_backend(path: &std::path::Path) -> UnixStream {
    let fake = UnixStream::connect(path).unwrap();
    let hello = Msg::Hello {
        magic: proto::MAGIC,
        version: proto::PROTOCOL_VERSION,
        mode: proto::MODE_RELAY,
    };
    proto::send(&fake, &hello, &[]).unwrap();
    assert!(matches!(
        proto::recv(&fake).unwrap().0,
        Msg::Welcome {
            first_nr: 0x100,
            ..
        }
    ));
    fake
}

fn until(mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn relay_backend_dies_then_reconnects() {
    let path = sock_path("relay");
    let mem = anon_mem();
    let gw = Gateway::new(
        external(&path, BackendMode::Relay, None),
        mem.clone(),
        None,
        irqs(2),
    )
    .unwrap();
    let f = gw.function();
    // No backend yet: EBUSY.
    let put = req(0x100, [1, 10, 0, 0, 0, 0]);
    assert_eq!(
        sync_call(&f, &mem, 0x8000, &put),
        Response::err(Status::Ebusy)
    );
    // A backend that says HELLO, takes requests and never answers (then dies).
    let fake = fake_relay_backend(&path);
    let mut d = RingDriver::new(0x10000, 64);
    setup_queue(&f, 0, &d, 0);
    let slots: Vec<u16> = (0..10)
        .map(|i| d.post(&mem, &req(0x100, [i, i, 0, 0, 0, 0])).unwrap())
        .collect();
    w32(&f, reg::QUEUE_NOTIFY, 0);
    for _ in 0..10 {
        assert!(matches!(proto::recv(&fake).unwrap().0, Msg::Request { .. }));
    }
    drop(fake);
    let used = wait_used(&mut d, &mem, 10);
    assert_eq!(used.len(), 10);
    for s in slots {
        assert_eq!(d.response(&mem, s), Response::err(Status::Ebusy));
        d.release(s);
    }
    // The real backend connects and serves.
    let opts = BackendOptions::new(&path, BackendMode::Relay);
    let o2 = opts.clone();
    let t = std::thread::spawn(move || run_backend(&o2));
    until(|| sync_call(&f, &mem, 0x8000, &put).status == Status::Ok);
    let get = req(0x101, [1, 0, 0, 0, 0, 0]);
    assert_eq!(sync_call(&f, &mem, 0x8000, &get), Response::ok(10));
    let s = d.post(&mem, &get).unwrap();
    w32(&f, reg::QUEUE_NOTIFY, 0);
    wait_used(&mut d, &mem, 1);
    assert_eq!(d.response(&mem, s), Response::ok(10));
    opts.stop.store(true, Ordering::Relaxed);
    t.join().unwrap().unwrap();
    gw.shutdown();
}

#[test]
fn direct_backend_serves_queue_then_stalls_and_reconnects() {
    let path = sock_path("direct");
    let (mem, share) = memfd_mem();
    let irq = irqs(2);
    let gw = Gateway::new(
        external(&path, BackendMode::Direct, Some(1)),
        mem.clone(),
        Some(share),
        irq.clone(),
    )
    .unwrap();
    let f = gw.function();
    let mut d = RingDriver::new(0x10000, 64);
    setup_queue(&f, 1, &d, 1);
    let opts = BackendOptions::new(&path, BackendMode::Direct);
    let o2 = opts.clone();
    let t = std::thread::spawn(move || run_backend(&o2));
    // Wait until the backend serves the queue (before that, the VMM answers EBUSY).
    until(|| {
        let s = d.post(&mem, &req(0x100, [7, 70, 0, 0, 0, 0])).unwrap();
        w32(&f, reg::QUEUE_NOTIFY, 1);
        wait_used(&mut d, &mem, 1);
        d.release(s);
        d.response(&mem, s).status == Status::Ok
    });
    for i in 0..1000u64 {
        let s = d.post(&mem, &req(0x100, [i, i * 3, 0, 0, 0, 0])).unwrap();
        let g = d.post(&mem, &req(0x101, [i, 0, 0, 0, 0, 0])).unwrap();
        w32(&f, reg::QUEUE_NOTIFY, 1);
        wait_used(&mut d, &mem, 2);
        assert_eq!(d.response(&mem, g), Response::ok((i * 3) as i64));
        d.release(s);
        d.release(g);
    }
    until(|| irq[1].is_pending());
    // The backend stalls: after the timeout the VMM takes the queue back and the
    // outstanding request gets EBUSY.
    opts.stall.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(100));
    let s = d.post(&mem, &req(0x101, [1, 0, 0, 0, 0, 0])).unwrap();
    w32(&f, reg::QUEUE_NOTIFY, 1);
    wait_used(&mut d, &mem, 1);
    assert_eq!(d.response(&mem, s), Response::err(Status::Ebusy));
    d.release(s);
    // Built-ins keep working on the queue while no backend holds it.
    let s = d.post(&mem, &req(1, [5, 0, 0, 0, 0, 0])).unwrap();
    w32(&f, reg::QUEUE_NOTIFY, 1);
    wait_used(&mut d, &mem, 1);
    assert_eq!(d.response(&mem, s), Response::ok(5));
    d.release(s);
    // It recovers, sees the closed connection, reconnects and serves again.
    opts.stall.store(false, Ordering::Relaxed);
    until(|| {
        let s = d.post(&mem, &req(0x100, [2, 20, 0, 0, 0, 0])).unwrap();
        w32(&f, reg::QUEUE_NOTIFY, 1);
        wait_used(&mut d, &mem, 1);
        d.release(s);
        d.response(&mem, s).status == Status::Ok
    });
    opts.stop.store(true, Ordering::Relaxed);
    t.join().unwrap().unwrap();
    gw.shutdown();
}

#[test]
fn a_silent_client_does_not_delay_the_backend() {
    let path = sock_path("silent");
    let mem = anon_mem();
    let mut c = external(&path, BackendMode::Relay, None);
    c.backend_timeout = Duration::from_secs(600);
    let gw = Gateway::new(c, mem.clone(), None, irqs(2)).unwrap();
    let f = gw.function();
    let silent: Vec<_> = (0..4)
        .map(|_| UnixStream::connect(&path).unwrap())
        .collect();
    let opts = BackendOptions::new(&path, BackendMode::Relay);
    let o2 = opts.clone();
    let t = std::thread::spawn(move || run_backend(&o2));
    let start = std::time::Instant::now();
    let put = req(0x100, [1, 10, 0, 0, 0, 0]);
    until(|| sync_call(&f, &mem, 0x8000, &put).status == Status::Ok);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    drop(silent);
    opts.stop.store(true, Ordering::Relaxed);
    t.join().unwrap().unwrap();
    gw.shutdown();
}

#[test]
fn the_backend_socket_is_private_and_not_taken_over() {
    use std::os::unix::fs::MetadataExt;
    let path = sock_path("private");
    let mem = anon_mem();
    let gw = Gateway::new(
        external(&path, BackendMode::Relay, None),
        mem.clone(),
        None,
        irqs(2),
    )
    .unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    let second = Gateway::new(
        external(&path, BackendMode::Relay, None),
        anon_mem(),
        None,
        irqs(2),
    );
    let e = second.expect_err("a live path is refused");
    assert!(
        format!("{:?}", e).contains("InUse"),
        "{e}: {:?}",
        std::error::Error::source(&e)
    );
    gw.shutdown();
    assert!(!path.exists(), "the socket file goes with the gateway");
    let file = sock_path("regular");
    std::fs::write(&file, b"keep").unwrap();
    assert!(Gateway::new(
        external(&file, BackendMode::Relay, None),
        anon_mem(),
        None,
        irqs(2)
    )
    .is_err());
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn stop_does_not_wait_for_a_stalled_backend() {
    let path = sock_path("stalled-stop");
    let mem = anon_mem();
    let mut c = external(&path, BackendMode::Relay, None);
    c.backend_timeout = Duration::from_secs(600);
    let gw = Gateway::new(c, mem.clone(), None, irqs(2)).unwrap();
    let f = gw.function();
    // A backend that says HELLO and never answers.
    let fake = fake_relay_backend(&path);
    let (f2, m2) = (f.clone(), mem.clone());
    let vcpu = std::thread::spawn(move || {
        let r = sync_call(&f2, &m2, 0x8000, &req(0x100, [1, 2, 0, 0, 0, 0]));
        (r, std::time::Instant::now())
    });
    assert!(matches!(proto::recv(&fake).unwrap().0, Msg::Request { .. }));
    std::thread::sleep(Duration::from_millis(100));
    let stopped = std::time::Instant::now();
    gw.stopper().stop();
    let (resp, back) = vcpu.join().unwrap();
    assert_eq!(resp, Response::err(Status::Ebusy));
    assert!(
        back.duration_since(stopped) < Duration::from_millis(500),
        "{:?}",
        back.duration_since(stopped)
    );
    // New calls do not wait either; shutdown is prompt.
    assert_eq!(
        sync_call(&f, &mem, 0x8000, &req(0x100, [1, 2, 0, 0, 0, 0])),
        Response::err(Status::Ebusy)
    );
    let t = std::time::Instant::now();
    gw.shutdown();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    drop(fake);
}

/// A vCPU waiting in CALL_LO for a silent backend holds up neither another vCPU's call
/// nor the function's other registers nor its config space (no lock across the wait).
#[test]
fn a_call_waiting_for_a_silent_backend_blocks_nobody_else() {
    let path = sock_path("silent-call");
    let mem = anon_mem();
    let mut cfg = external(&path, BackendMode::Relay, None);
    cfg.backend_timeout = Duration::from_secs(3);
    let gw = Gateway::new(cfg, mem.clone(), None, irqs(2)).unwrap();
    let f = gw.function();
    let fake = fake_relay_backend(&path);

    let (f2, m2) = (f.clone(), mem.clone());
    let waiting =
        std::thread::spawn(move || sync_call(&f2, &m2, 0x8000, &req(0x100, [1, 10, 0, 0, 0, 0])));
    // The backend has the request: the call is now waiting for it.
    assert!(matches!(proto::recv(&fake).unwrap().0, Msg::Request { .. }));

    let (tx, rx) = crossbeam_channel::bounded(1);
    let (f3, m3) = (f.clone(), mem.clone());
    std::thread::spawn(move || {
        let version = r32(&f3, reg::VERSION);
        let mut id = [0u8; 2];
        f3.lock().unwrap().config_read(0, &mut id);
        let echo = sync_call(&f3, &m3, 0x9000, &req(1, [77, 0, 0, 0, 0, 0]));
        let _ = tx.send((version, id, echo));
    });
    let (version, id, echo) = rx
        .recv_timeout(Duration::from_secs(2))
        .expect("another vCPU's accesses waited for the stalled call");
    assert_eq!(version, 1);
    assert_eq!(u16::from_le_bytes(id), crate::abi::DEFAULT_VENDOR_ID);
    assert_eq!(echo, Response::ok(77));
    assert_eq!(
        waiting.join().unwrap(),
        Response::err(Status::Ebusy),
        "the silent backend's call times out"
    );
    drop(fake);
    gw.shutdown();
}
