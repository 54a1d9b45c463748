//! Hypercall throughput and latency per path in one guest run: sync (CALL_LO), ring
//! (built-in ECHO, batches of 128), ring to the in-process key-value service, external
//! relay and external direct backends (`kvmbus backend` processes), with the issue's
//! ratios: ring vs sync throughput (goal >= 5x) and direct vs in-process ring (goal:
//! within 20%).
//!
//! Run: `cargo bench -p vmm-core --bench hypercall` (env `CALLS` per ring path, default
//! 81920; `SAMPLES` single-call latencies per path, default 500).

mod common;
use common::*;

use std::process::{Child, Command, Stdio};

fn backend(socket: &std::path::Path, mode: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kvmbus"))
        .args(["backend", "--mode", mode, "--socket"])
        .arg(socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kvmbus backend")
}

fn main() {
    let n = scaled("CALLS", 81920, 1024);
    let k = scaled("SAMPLES", 500, 16).min(1024);
    let dir = scratch("hypercall");
    let (relay, direct) = (dir.join("relay.sock"), dir.join("direct.sock"));
    let extra = format!(
        "[[device]]\nkind = \"hypercall-gateway\"\nqueues = 4\n\
         [[hypercall.service]]\nnr = 0x100\nkind = \"kv\"\n\
         [[hypercall.service]]\nnr = 0x300\ncount = 4\nkind = \"external\"\nsocket = \"{}\"\n\
         [[hypercall.service]]\nnr = 0x400\ncount = 4\nkind = \"external\"\nsocket = \"{}\"\n\
         mode = \"direct\"\nqueue = 2\n",
        relay.display(),
        direct.display()
    );
    let cfg = builtin_config(
        &dir,
        "hc-bench",
        1,
        &format!("n={n} k={k} kv=256 relay=768 direct=1024 dq=2"),
        &extra,
    );
    let r = backend(&relay, "relay");
    let d = backend(&direct, "direct");
    let out = kvmbus(&cfg, &[]);
    for mut b in [r, d] {
        let _ = b.kill();
        let _ = b.wait();
    }
    let khz = figure(&out, "hc-bench: tsc", " kHz");
    let us = |cycles: f64| cycles / khz * 1000.0;
    println!(
        "hc-bench: {n} calls per ring path (sync: {}), {k} single-call latencies each",
        n / 8
    );
    println!(
        "{:<10} {:>12} {:>10} {:>10}",
        "path", "calls/s", "p50 µs", "p99 µs"
    );
    let mut rate = std::collections::HashMap::new();
    for path in ["sync", "ring", "ring-kv", "relay", "direct"] {
        let line = format!("hc-bench: path {path} calls");
        let calls = figure(&out, &line, " cycles");
        let cycles = figure(&out, &line, " bad");
        let bad = out
            .lines()
            .find(|l| l.starts_with(&line))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or("?");
        assert_eq!(bad, "0", "{path}: bad completions");
        let prefix = format!("hc-bench: path {path} lat");
        let mut lat: Vec<f64> = out
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .flat_map(|l| l.split_whitespace().map(|v| us(v.parse::<f64>().unwrap())))
            .collect();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
        let per_s = calls / (cycles / (khz * 1000.0));
        bench("hypercall", path, "rate", "calls/s", &[per_s]);
        bench("hypercall", path, "latency", "µs", &lat);
        bench("hypercall", path, "p99", "µs", &[pct(0.99)]);
        rate.insert(path, per_s);
        println!(
            "{path:<10} {per_s:>12.0} {:>10.1} {:>10.1}",
            pct(0.5),
            pct(0.99)
        );
    }
    goal(
        "hypercall",
        "rate",
        "ring",
        "sync",
        ">=",
        5.0,
        "ring >= 5x sync throughput",
    );
    goal(
        "hypercall",
        "rate",
        "direct",
        "ring-kv",
        ">=",
        0.8,
        "direct within 20% of the in-process ring",
    );
    println!(
        "ring / sync throughput: {:.2}x (goal >= 5x)",
        rate["ring"] / rate["sync"]
    );
    println!(
        "direct / in-process ring (kv) throughput: {:.2} (goal: within 20%, i.e. >= 0.80)",
        rate["direct"] / rate["ring-kv"]
    );
    println!(
        "relay / in-process ring (kv) throughput: {:.2}",
        rate["relay"] / rate["ring-kv"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
