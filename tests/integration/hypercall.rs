//! Hypercalls are file descriptors: the hc-check guest drives the gateway on real KVM,
//! with in-process services and external backend processes (`kvmbus backend`).

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::*;

const T: Duration = Duration::from_secs(600);

fn hc_config(vcpus: u32, cmdline: &str, extra: &str) -> String {
    format!(
        "{}[[device]]\nkind = \"hypercall-gateway\"\nqueues = 4\nmsix_vectors = 4\n\
         [[hypercall.service]]\nnr = 0x100\nkind = \"kv\"\n{extra}",
        builtin("hc-check", vcpus, cmdline)
    )
}

fn passed(text: &str, parts: &[&str]) {
    assert!(!text.contains("FAIL"), "{text}");
    for p in parts {
        assert!(
            text.contains(&format!("hc-check: {p}")),
            "'{p}' missing:\n{text}"
        );
    }
    assert!(text.contains("hc-check: 0 failures"), "{text}");
}

/// A `kvmbus backend` process; killed on drop.
struct Backend(Child);

impl Backend {
    fn start(socket: &Path, mode: &str) -> Backend {
        Backend(
            kvmbus()
                .args(["backend", "--mode", mode, "--socket"])
                .arg(socket)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn one_million_ring_echoes_sync_equals_ring_and_bad_input() {
    if !kvm_or_skip("one_million_ring_echoes_sync_equals_ring_and_bad_input") {
        return;
    }
    let out = run_vm("hc1m", &hc_config(1, "ring=1000000 kv=256", ""), T);
    let text = stdout(&out);
    passed(
        &text,
        &[
            "sync ok",
            "ring ok: 1000000 ECHO calls checked",
            "same ok",
            "bad ok",
            "irq ok",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn several_queues_on_several_vcpus() {
    if !kvm_or_skip("several_queues_on_several_vcpus") {
        return;
    }
    let d = scratch("hcsmp");
    let out = run_with_deadline(
        kvmbus().arg("run").arg(config(
            &d,
            "hc",
            &hc_config(4, "ring=1000 smp percpu=5000", ""),
        )),
        T,
    );
    passed(&stdout(&out), &["smp ok: 3 vCPUs on their own queues"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn external_backends_relay_and_direct() {
    if !kvm_or_skip("external_backends_relay_and_direct") {
        return;
    }
    let d = scratch("hcext");
    let (relay, direct) = (d.join("relay.sock"), d.join("direct.sock"));
    let services = format!(
        "[[hypercall.service]]\nnr = 0x300\ncount = 4\nkind = \"external\"\nsocket = \"{}\"\n\
         [[hypercall.service]]\nnr = 0x400\ncount = 4\nkind = \"external\"\nsocket = \"{}\"\n\
         mode = \"direct\"\nqueue = 2\n",
        relay.display(),
        direct.display()
    );
    let cfg = config(
        &d,
        "hc",
        &hc_config(
            1,
            "ring=1000 relay=768 direct=1024 dq=2 hold=5000",
            &services,
        ),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut vm = kvmbus()
        .arg("run")
        .arg(&cfg)
        .args(["--metrics", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The VMM listens once the gateway exists; the backends retry until then.
    let _r = Backend::start(&relay, "relay");
    let _d = Backend::start(&direct, "direct");
    let mut seen = wait_for_output(&mut vm, "hc-check: direct ok", T);
    // The direct backend served its queue itself and reported it (path="direct"); its
    // STATS arrive asynchronously, so look a few times while the guest holds.
    let has = |scrape: &str, path: &str| {
        scrape.lines().any(|l| {
            l.starts_with("kvmbus_hypercalls_total{") && l.contains(&format!("path=\"{path}\""))
        })
    };
    let mut scrape = String::new();
    for _ in 0..40 {
        let o = std::process::Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{port}/metrics")])
            .output()
            .unwrap();
        scrape = String::from_utf8_lossy(&o.stdout).into_owned();
        if has(&scrape, "direct") && has(&scrape, "relay") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        has(&scrape, "direct"),
        "no direct-path hypercalls in the metrics"
    );
    assert!(
        has(&scrape, "relay"),
        "no relayed hypercalls in the metrics"
    );
    let out = vm.wait_with_output().unwrap();
    seen.push_str(&String::from_utf8_lossy(&out.stdout));
    passed(&seen, &["relay ok", "direct ok"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_killed_backend_gives_ebusy_and_a_new_one_serves_again() {
    if !kvm_or_skip("a_killed_backend_gives_ebusy_and_a_new_one_serves_again") {
        return;
    }
    let d = scratch("hckill");
    let sock = d.join("kv.sock");
    let services = format!(
        "[[hypercall.service]]\nnr = 0x300\ncount = 4\nkind = \"external\"\nsocket = \"{}\"\n\
         [hypercall]\nbackend_timeout_ms = 300\n",
        sock.display()
    );
    let cfg = config(&d, "hc", &hc_config(1, "ring=100 kill=768", &services));
    let mut vm = spawn_vm(&cfg, &[]);
    let backend = Backend::start(&sock, "relay");
    let mut seen = wait_for_output(&mut vm, "hc-check: kill phase", T);
    std::thread::sleep(Duration::from_millis(500));
    drop(backend); // SIGKILL mid-stream
    std::thread::sleep(Duration::from_millis(1500));
    assert!(vm.try_wait().unwrap().is_none(), "the VMM must stay up");
    let _again = Backend::start(&sock, "relay");
    let out = vm.wait_with_output().unwrap();
    seen.push_str(&String::from_utf8_lossy(&out.stdout));
    passed(&seen, &["kill ok"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
