use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::abi::{Request, Response, Status, RESPONSE_OFFSET};
use crate::{Gateway, ServiceConfig};

pub(crate) fn sync_call(
    f: &Arc<Mutex<dyn PciFunction>>,
    mem: &GuestMemoryMmap,
    gpa: u64,
    req: &Request,
) -> Response {
    mem.write_slice(&req.to_bytes(), GuestAddress(gpa)).unwrap();
    mem.write_slice(&[0xEE; 16], GuestAddress(gpa + RESPONSE_OFFSET))
        .unwrap();
    w32(f, reg::CALL_HI, (gpa >> 32) as u32);
    w32(f, reg::CALL_LO, gpa as u32);
    let mut b = [0u8; 16];
    mem.read_slice(&mut b, GuestAddress(gpa + RESPONSE_OFFSET))
        .unwrap();
    Response::from_bytes(&b)
}

pub(crate) fn req(nr: u32, args: [u64; 6]) -> Request {
    Request { nr, flags: 0, args }
}

#[test]
fn sync_builtins_and_errors() {
    let mem = anon_mem();
    let mut cfg = config();
    cfg.services = vec![
        ServiceConfig::Kv { nr: 0x100 },
        ServiceConfig::Echo { nr: 0x200 },
    ];
    let gw = Gateway::new(cfg, mem.clone(), None, irqs(2)).unwrap();
    let f = gw.function();
    let at = 0x8000;
    assert_eq!(sync_call(&f, &mem, at, &req(0, [1; 6])), Response::ok(0));
    assert_eq!(
        sync_call(&f, &mem, at, &req(1, [77, 0, 0, 0, 0, 0])),
        Response::ok(77)
    );
    assert_eq!(
        sync_call(&f, &mem, at, &req(2, [1, 2, 3, 4, 5, 6])),
        Response::ok(21)
    );
    let t = sync_call(&f, &mem, at, &req(3, [0; 6]));
    assert!(t.status == Status::Ok && t.ret > 0);
    assert_eq!(
        sync_call(&f, &mem, at, &req(0x99, [0; 6])),
        Response::err(Status::Enosys)
    );
    // In-process services on their threads.
    assert_eq!(
        sync_call(&f, &mem, at, &req(0x100, [5, 50, 0, 0, 0, 0])),
        Response::ok(0)
    );
    assert_eq!(
        sync_call(&f, &mem, at, &req(0x101, [5, 0, 0, 0, 0, 0])),
        Response::ok(50)
    );
    assert_eq!(
        sync_call(&f, &mem, at, &req(0x101, [6, 0, 0, 0, 0, 0])),
        Response::err(Status::Einval)
    );
    assert_eq!(
        sync_call(&f, &mem, at, &req(0x200, [9, 0, 0, 0, 0, 0])),
        Response::ok(9)
    );
    // Misaligned block: EINVAL written.
    assert_eq!(
        sync_call(&f, &mem, at + 4, &req(1, [1; 6])),
        Response::err(Status::Einval)
    );
    // Blocks outside guest memory: nothing can be written, the VMM stays up.
    w32(&f, reg::CALL_HI, 0);
    w32(&f, reg::CALL_LO, (MEM - 8) as u32); // entirely unanswerable: nothing written
    w32(&f, reg::CALL_HI, 1);
    w32(&f, reg::CALL_LO, 0); // 4 GiB: outside, nothing to write, VMM stays up
    assert_eq!(
        sync_call(&f, &mem, at, &req(1, [3, 0, 0, 0, 0, 0])),
        Response::ok(3)
    );
    gw.shutdown();
}

/// Counts log lines containing a marker (installed once per test binary).
struct LineCounter;

static LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

impl log::Log for LineCounter {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            LINES.lock().unwrap().push(r.args().to_string());
        }
    }
    fn flush(&self) {}
}

#[test]
fn a_flood_of_bad_call_blocks_logs_a_bounded_number_of_lines() {
    static COUNTER: LineCounter = LineCounter;
    let _ = log::set_logger(&COUNTER);
    log::set_max_level(log::LevelFilter::Warn);
    let mem = anon_mem();
    let gw = Gateway::new(config(), mem.clone(), None, irqs(2)).unwrap();
    let f = gw.function();
    let bad = MEM + 0x77_7000;
    let start = std::time::Instant::now();
    for _ in 0..200_000 {
        w32(&f, reg::CALL_HI, 0);
        w32(&f, reg::CALL_LO, bad as u32);
    }
    let secs = start.elapsed().as_secs() + 1;
    let marker = format!("{bad:#x}");
    let n = LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(&marker))
        .count() as u64;
    assert!(n >= 1, "the first lines are logged");
    assert!(n <= 5 * (secs + 1), "{n} lines in {secs} s");
    assert!(guard::log_summary() > 0, "a summary announces the rest");
    assert!(LINES
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("guest-triggered log lines suppressed")));
    gw.shutdown();
}

#[test]
fn a_flood_of_refused_queue_enables_logs_a_bounded_number_of_lines() {
    static COUNTER: LineCounter = LineCounter;
    let _ = log::set_logger(&COUNTER);
    log::set_max_level(log::LevelFilter::Warn);
    let mem = anon_mem();
    let gw = Gateway::new(config(), mem.clone(), None, irqs(2)).unwrap();
    let f = gw.function();
    let start = std::time::Instant::now();
    for i in 0..50_000u32 {
        // Each ring in turn outside guest memory (the others valid), then enable.
        w32(&f, reg::QUEUE_SEL, i % 2);
        w32(&f, reg::QUEUE_ENABLE, 0);
        let bad = [0x1000, 0x8000, 0xA000].map(|a| a as u32);
        let mut addrs = bad;
        addrs[(i % 3) as usize] = (MEM - 0x10) as u32;
        w32(&f, reg::QUEUE_DESC, addrs[0]);
        w32(&f, reg::QUEUE_AVAIL, addrs[1]);
        w32(&f, reg::QUEUE_USED, addrs[2]);
        w32(&f, reg::QUEUE_ENABLE, 1);
    }
    let secs = start.elapsed().as_secs() + 1;
    let n = LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("virtio queue") || l.contains("rings invalid"))
        .count() as u64;
    assert!(n >= 1, "the first refusals are logged");
    // One rate-limited call site: 5 lines a second and a summary line per window.
    assert!(n <= 6 * (secs + 1), "{n} lines in {secs} s");
    gw.shutdown();
}
