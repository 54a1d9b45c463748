//! vfio-user: the irq-test device served by `kvmbus device-server` in another process,
//! driven by the irq-check guest on real KVM exactly like the in-process device; and a
//! server killed mid-run (all-ones, the VM keeps running, the device comes back).
//!
//! The device is put on the VM with `devices::vfio_user::attach` (the library path)
//! until `[[device]] kind = "vfio-user"` is wired through the device registry.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use pci_emu::Bdf;
use vmm_core::control::StopReason;
use vmm_core::devices::irq_test::MAGIC;
use vmm_core::devices::vfio_user::attach::attach;
use vmm_core::vm::{RunOptions, Vm};

use crate::common::*;

fn device_server(sock: &Path) -> Child {
    kvmbus()
        .args([
            "device-server",
            "--device",
            "irq-test",
            "--msix-vectors",
            "16",
        ])
        .args(["--msi-vectors", "4", "--socket"])
        .arg(sock)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kvmbus device-server")
}

/// A VM running `guest` with its serial output in `dir/serial.txt`.
fn vm(dir: &Path, guest: &str, cmdline: &str) -> (Vm, PathBuf) {
    let serial = dir.join("serial.txt");
    let body = format!(
        "{}[serial]\noutput = \"file:{}\"\n",
        builtin(guest, 1, cmdline),
        serial.display()
    );
    let cfg = config(dir, guest, &body);
    let config = vmm_core::config::load(&cfg).expect("config");
    (Vm::new(config).expect("vm"), serial)
}

const BDF: &str = "00:04.0";

#[test]
fn irq_check_passes_against_the_device_server() {
    if !kvm_or_skip("irq_check_passes_against_the_device_server") {
        return;
    }
    let d = scratch("vu-irq");
    let sock = d.join("irq.sock");
    let mut server = device_server(&sock);
    let (vm, serial) = vm(&d, "irq-check", "n=500");
    let bdf: Bdf = BDF.parse().unwrap();
    attach(
        &vm,
        &sock,
        Some(bdf),
        Duration::from_secs(10),
        Duration::from_secs(2),
    )
    .expect("attach");
    let control = vm.control.clone();
    let t = std::thread::spawn(move || vm.run(&RunOptions::default()));
    let t0 = Instant::now();
    while !t.is_finished() && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if !t.is_finished() {
        control.request_stop(StopReason::VmmError("test timeout".into()));
    }
    let reason = t.join().unwrap().expect("run");
    let _ = server.kill();
    let _ = server.wait();
    let text = std::fs::read_to_string(&serial).unwrap_or_default();
    assert!(!text.contains("FAIL"), "{text}");
    for part in [
        "paced ok: 500 interrupts",
        "mask ok",
        "retarget ok",
        "msi ok",
        "0 failures",
    ] {
        assert!(
            text.contains(&format!("irq-check: {part}")),
            "{part}: {text}"
        );
    }
    assert_eq!(reason, StopReason::DebugExit(0), "{text}");
}

fn read_id(vm_pci: &vmm_core::pci::PciPlatform, bdf: Bdf) -> u32 {
    let f = vm_pci.bus().function(bdf).expect("function");
    let mut b = [0u8; 4];
    f.lock().unwrap().bar_read(0, 0, &mut b);
    u32::from_le_bytes(b)
}

#[test]
fn a_killed_server_reads_all_ones_and_comes_back() {
    if !kvm_or_skip("a_killed_server_reads_all_ones_and_comes_back") {
        return;
    }
    let d = scratch("vu-kill");
    let sock = d.join("irq.sock");
    let mut server = device_server(&sock);
    let (vm, _serial) = vm(&d, "demo", "");
    let bdf: Bdf = BDF.parse().unwrap();
    attach(
        &vm,
        &sock,
        Some(bdf),
        Duration::from_secs(10),
        Duration::from_millis(500),
    )
    .expect("attach");
    let pci = vm.pci.clone();
    let control = vm.control.clone();
    let t = std::thread::spawn(move || vm.run(&RunOptions::default()));
    assert_eq!(read_id(&pci, bdf), MAGIC);

    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(read_id(&pci, bdf), u32::MAX, "a dead server reads all-ones");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !t.is_finished(),
        "the VM keeps running without its device server"
    );

    let mut again = device_server(&sock);
    let t0 = Instant::now();
    while read_id(&pci, bdf) != MAGIC {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the device did not come back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    control.request_stop(StopReason::PowerOff);
    assert_eq!(t.join().unwrap().expect("run"), StopReason::PowerOff);
    let _ = again.kill();
    let _ = again.wait();
}
