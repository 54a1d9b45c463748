//! Scraping under load: the `pio-storm` guest with metrics on, its PIO exit rate with
//! nobody scraping vs with 16 clients scraping `/metrics` flat out, in alternating rounds.
//!
//! Run: `cargo bench -p vmm-core --bench scrape_load` (env `SCRAPE_SECS=n` sets the
//! seconds per round, default 30; `ROUNDS=n` the rounds of each kind, default 3;
//! `BENCH_SCALE=tiny` one 2 s round of each). Both kinds of round measure the exit rate
//! the same way: `kvmbus_vcpu_exits_total{reason="io_out"}` scraped once at the start
//! and once at the end of the round, over the wall time between the two answers. A
//! scrape counts as well-formed when it is a `200` whose `Content-Length` matches the
//! body, and the body holds the exit counter and ends with a complete sample line.
//! `KVMBUS_BIN=path` runs another build of kvmbus (e.g. an older one, for a before/after).

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SCRAPERS: usize = 16;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// One `GET /metrics`; the whole response (head and body) into `out`.
fn scrape_into(port: u16, out: &mut Vec<u8>) -> std::io::Result<()> {
    out.clear();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    s.read_to_end(out)?;
    Ok(())
}

/// Whether `resp` is a complete, well-formed exposition answer.
fn well_formed(resp: &[u8]) -> bool {
    let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let (head, body) = (String::from_utf8_lossy(&resp[..split]), &resp[split + 4..]);
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let body = String::from_utf8_lossy(body);
    head.starts_with("HTTP/1.1 200 ")
        && length == Some(body.len())
        && body.contains("kvmbus_vcpu_exits_total{")
        && body.ends_with('\n')
        && body
            .trim_end()
            .ends_with(|c: char| c.is_ascii_digit() || c == 'N' || c == 'f')
}

/// The guest's PIO exits so far, from one scrape.
fn exits(port: u16) -> f64 {
    let mut buf = Vec::new();
    scrape_into(port, &mut buf).expect("scrape for the exit count");
    assert!(well_formed(&buf), "bad answer to the measuring scrape");
    String::from_utf8_lossy(&buf)
        .lines()
        .filter(|l| l.starts_with("kvmbus_vcpu_exits_total{") && l.contains("reason=\"io_out\""))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// Boots the endless storm with metrics on `port` and waits for the guest's first line.
fn boot(cfg: &std::path::Path, port: u16) -> Child {
    let bin = std::env::var_os("KVMBUS_BIN").unwrap_or(env!("CARGO_BIN_EXE_kvmbus").into());
    let mut child = Command::new(bin)
        .arg("run")
        .arg(cfg)
        .args(["--metrics", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kvmbus");
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    while !line.contains("pio-storm:") {
        line.clear();
        if out.read_line(&mut line).expect("guest output") == 0 {
            let _ = child.kill();
            panic!("kvmbus ended before the guest started");
        }
    }
    // Keep reading (and dropping) the guest's output so its pipe never fills.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    child
}

/// One round: (exit rate per second, scrapes answered well-formed, malformed or failed).
fn round(cfg: &std::path::Path, secs: u64, scrapers: usize) -> (f64, u64, u64) {
    let port = free_port();
    let mut child = boot(cfg, port);
    // Let the VM settle (its start-up threads end) before measuring.
    std::thread::sleep(Duration::from_millis(500));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..scrapers)
        .map(|_| {
            let (stop, ok, bad) = (stop.clone(), ok.clone(), bad.clone());
            std::thread::spawn(move || {
                let mut buf = Vec::with_capacity(64 << 10);
                while !stop.load(Ordering::Relaxed) {
                    let good = scrape_into(port, &mut buf).is_ok() && well_formed(&buf);
                    let n = if good { &ok } else { &bad };
                    n.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let e0 = exits(port);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let e1 = exits(port);
    let rate = (e1 - e0) / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("scraper thread");
    }
    let _ = child.kill();
    let _ = child.wait();
    (
        rate,
        ok.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
    )
}

fn main() {
    let secs = scaled("SCRAPE_SECS", 30, 2);
    let rounds = scaled("ROUNDS", 3, 1) as usize;
    let dir = scratch("scrape-load");
    let cfg = builtin_config(&dir, "pio-storm", 1, "n=4000000000", "");
    println!(
        "pio-storm with metrics on: exit rate unscraped vs {SCRAPERS} flat-out scrapers, \
         {secs} s per round, {rounds} alternating rounds of each"
    );
    let (mut quiet, mut busy, mut answered, mut malformed) = (vec![], vec![], vec![], vec![]);
    for r in 0..rounds {
        let (q, _, _) = round(&cfg, secs, 0);
        let (b, ok, bad) = round(&cfg, secs, SCRAPERS);
        print!(
            "  round {}: unscraped {q:.0} exits/s, scraped {b:.0} exits/s ({:.2}), \
             {ok} scrapes answered, {bad} malformed\r\n",
            r + 1,
            b / q
        );
        std::io::stdout().flush().unwrap();
        quiet.push(q);
        busy.push(b);
        answered.push(ok as f64 / secs as f64);
        malformed.push(bad as f64);
    }
    bench("scrape-load", "unscraped", "exit-rate", "exits/s", &quiet);
    bench("scrape-load", "scraped", "exit-rate", "exits/s", &busy);
    bench("scrape-load", "scraped", "answered", "scrapes/s", &answered);
    bench("scrape-load", "scraped", "malformed", "scrapes", &malformed);
    goal(
        "scrape-load",
        "exit-rate",
        "scraped",
        "unscraped",
        ">=",
        0.9,
        "PIO exit rate with 16 flat-out scrapers >= 0.9x unscraped",
    );
    goal(
        "scrape-load",
        "malformed",
        "scraped",
        "-",
        "<=",
        0.0,
        "every scrape answered and well-formed",
    );
    let (q, b) = (median(quiet), median(busy));
    println!(
        "exit rate: unscraped {q:.0}/s, scraped {b:.0}/s, ratio {:.3} (goal >= 0.9); \
         {:.0} scrapes/s answered, {} malformed in all",
        b / q,
        median(answered),
        malformed.iter().sum::<f64>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
