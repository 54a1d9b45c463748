//! Load from local clients: scrapers hammering `/metrics` during a PIO storm, and
//! thousands of connect/disconnect cycles on every socket the VMM listens on. Figures
//! are printed; what is asserted is correctness and the absence of growth. The exit-rate
//! goal under scraping (30 s, scraped vs unscraped) is the `scrape_load` benchmark's.

use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::hostile::rss_kib;

/// A 200 whose Content-Length matches its body, holding the exit counter and ending
/// with a complete sample line.
fn well_formed(resp: &str) -> bool {
    let Some((head, body)) = resp.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse::<usize>().ok());
    head.starts_with("HTTP/1.1 200 ")
        && length == Some(body.len())
        && body.contains("kvmbus_vcpu_exits_total{")
        && body.ends_with('\n')
        && body.trim_end().ends_with(|c: char| c.is_ascii_digit())
}

#[test]
fn sixteen_scrapers_during_a_pio_storm_all_get_well_formed_answers() {
    if !kvm_or_skip("sixteen_scrapers_during_a_pio_storm_all_get_well_formed_answers") {
        return;
    }
    let secs = std::env::var("SCRAPE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10u64);
    let d = scratch("scrape-storm");
    // The storm under scraping: a long run, stopped once the scrapers are done.
    let port = free_port();
    let cfg = config(&d, "s", &builtin("pio-storm", 1, "n=4000000000"));
    let mut child = spawn_vm(&cfg, &["--metrics", &format!("127.0.0.1:{port}")]);
    wait_for_output(&mut child, "pio-storm:", Duration::from_secs(60));
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(300));
    let (f0, t0, r0) = (fds(pid), threads(pid), rss_kib(pid));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let scrapers: Vec<_> = (0..16)
        .map(|_| {
            let (stop, ok, bad) = (stop.clone(), ok.clone(), bad.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match scrape(port, Duration::from_secs(10)) {
                        Ok(b) if well_formed(&b) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => bad.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let start = Instant::now();
    let exits = |b: &str| -> f64 {
        b.lines()
            .filter(|l| l.starts_with("kvmbus_vcpu_exits_total{") && l.contains("io_out"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum()
    };
    let e0 = exits(&scrape(port, Duration::from_secs(10)).unwrap());
    std::thread::sleep(Duration::from_secs(secs));
    let e1 = exits(&scrape(port, Duration::from_secs(10)).unwrap());
    let rate = (e1 - e0) / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for s in scrapers {
        s.join().unwrap();
    }
    let f1 = settles(f0 as u64, || fds(pid) as u64);
    let t1 = settles(t0, || threads(pid));
    let r1 = rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();
    let (ok, bad) = (ok.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    println!(
        "scrape load: {ok} scrapes answered in {secs} s ({bad} bad); PIO exits/s {rate:.0} \
         scraped; fds {f0} -> {f1}, threads {t0} -> {t1}, RSS {r0} -> {r1} KiB"
    );
    assert_eq!(bad, 0, "every scrape answered and well-formed");
    assert!(ok > 0);
    assert!(rate > 0.0, "the storm ran while scraped");
    assert!(f1 <= f0 as u64, "fds grew from {f0} to {f1}");
    assert!(t1 <= t0, "threads grew from {t0} to {t1}");
    assert!(r1 < r0 + 8 * 1024, "RSS grew from {r0} to {r1} KiB");
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn threads(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until `f` is at most `limit` (threads and fds of finished clients go away
/// within the client deadline).
fn settles(limit: u64, f: impl Fn() -> u64) -> u64 {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let v = f();
        if v <= limit || Instant::now() > end {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ten_thousand_connections_per_socket_leave_no_fd_thread_or_rss_growth() {
    if !kvm_or_skip("ten_thousand_connections_per_socket_leave_no_fd_thread_or_rss_growth") {
        return;
    }
    let d = scratch("churn");
    let (irq, kv) = (d.join("irq.sock"), d.join("kv.sock"));
    let body = format!(
        "{}[[device]]\nkind = \"irq-test\"\nmsix_vectors = 4\nmsi_vectors = 1\nsocket = \"{}\"\n\
         [[device]]\nkind = \"hypercall-gateway\"\nqueues = 1\nqueue_size = 256\nmsix_vectors = 1\n\
         [[hypercall.service]]\nnr = 0x300\ncount = 4\nkind = \"external\"\nsocket = \"{}\"\nmode = \"relay\"\n",
        builtin("demo", 1, ""),
        irq.display(),
        kv.display()
    );
    let port = free_port();
    let mut child = spawn_vm(
        &config(&d, "churn", &body),
        &["--metrics", &format!("127.0.0.1:{port}")],
    );
    wait_for_output(&mut child, "demo: t=1s", Duration::from_secs(60));
    let pid = child.id();
    // Warm up once per socket, then measure.
    for p in [&irq, &kv] {
        drop(UnixStream::connect(p).unwrap());
    }
    assert!(well_formed(&scrape(port, Duration::from_secs(10)).unwrap()));
    std::thread::sleep(Duration::from_millis(300));
    let (f0, t0, r0) = (fds(pid), threads(pid), rss_kib(pid));
    let start = Instant::now();
    for p in [&irq, &kv] {
        for i in 0..10_000 {
            match UnixStream::connect(p) {
                Ok(s) => drop(s),
                Err(e) => panic!("connection {i} to {}: {e}", p.display()),
            }
        }
    }
    for i in 0..10_000 {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => drop(s),
            Err(e) => panic!("connection {i} to the metrics port: {e}"),
        }
    }
    let took = start.elapsed();
    let f1 = settles(f0 as u64, || fds(pid) as u64);
    let t1 = settles(t0, || threads(pid));
    let r1 = rss_kib(pid);
    // The VMM still serves: an irq fd request and a scrape answer.
    assert!(
        well_formed(&scrape(port, Duration::from_secs(10)).unwrap()),
        "a scrape after the churn"
    );
    let ok = run_with_deadline(
        kvmbus()
            .args(["irq-trigger", "--socket"])
            .arg(&irq)
            .args(["--vector", "1"]),
        Duration::from_secs(30),
    );
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "churn: 3 x 10,000 connections (irq, backend, metrics) in {took:?}; fds {f0} -> {f1}, threads {t0} -> {t1}, \
         RSS {r0} -> {r1} KiB"
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(f1 <= f0 as u64, "fds grew from {f0} to {f1}");
    assert!(t1 <= t0, "threads grew from {t0} to {t1}");
    assert!(r1 < r0 + 8 * 1024, "RSS grew from {r0} to {r1} KiB");
}
