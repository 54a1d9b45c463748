//! vfio-user: the irq-test device served by `kvmbus device-server` in another process,
//! driven by the irq-check guest on real KVM exactly like the in-process device; and a
//! server killed mid-run (all-ones, the VM keeps running, the device comes back); and
//! the client against the rust-vmm crate's gpio example, a server not written here.
//!
//! The device is put on the VM both with `devices::vfio_user::attach` (the library path)
//! and with `[[device]] kind = "vfio-user"` (the registry); the in-process irq-test with
//! `intx = true` runs the same guest, whose output must match (INTx included).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use pci_emu::{Bdf, PciFunction};
use vmm_core::control::StopReason;
use vmm_core::devices::irq_test::MAGIC;
use vmm_core::devices::vfio_user::attach::attach;
use vmm_core::devices::vfio_user::client::{ClientOptions, IntxRoute, VfioUserDevice, Wiring};
use vmm_core::vm::{RunOptions, Vm};
use vmm_sys_util::eventfd::EventFd;

use crate::common::*;

/// A child process killed when dropped (also when the test panics).
pub(crate) struct Reaped(pub(crate) Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn device_server(sock: &Path) -> Reaped {
    Reaped(
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
            .expect("spawn kvmbus device-server"),
    )
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

pub(crate) const BDF: &str = "00:04.0";

/// A `[[device]]` table for a vfio-user device at `bdf` served at `sock`, with `extra`
/// keys (one per line).
pub(crate) fn vfio_user_device(bdf: &str, sock: &Path, extra: &str) -> String {
    format!(
        "[[device]]\nkind = \"vfio-user\"\nbdf = \"{bdf}\"\nsocket = \"{}\"\n{extra}",
        sock.display()
    )
}

#[test]
fn irq_check_passes_against_the_device_server() {
    if !kvm_or_skip("irq_check_passes_against_the_device_server") {
        return;
    }
    let d = scratch("vu-irq");
    let sock = d.join("irq.sock");
    let server = device_server(&sock);
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
    drop(server);
    let text = std::fs::read_to_string(&serial).unwrap_or_default();
    irq_check_passed(&text, 500);
    assert_eq!(reason, StopReason::DebugExit(0), "{text}");
}

/// The INTx line of an irq-check run with the device at 00:04.0 (IOAPIC input 16).
const INTX_OK: &str =
    "irq-check: intx ok: line 16, re-raised after EOI while asserted, quiet once deasserted";

/// Every irq-check case passed, INTx included (the device at 00:04.0: IOAPIC input 16).
/// Runs `body` (booting irq-check with n=300) as config `name` in `d`: the guest passes
/// and ends through debug-exit 0.
fn run_irq_check(d: &Path, name: &str, body: &str) {
    let out = run_with_deadline(
        kvmbus().arg("run").arg(config(d, name, body)),
        Duration::from_secs(120),
    );
    irq_check_passed(&stdout(&out), 300);
    assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
}

fn irq_check_passed(text: &str, n: u32) {
    assert!(!text.contains("FAIL"), "{text}");
    for part in [
        format!("paced ok: {n} interrupts"),
        "mask ok".into(),
        "retarget ok".into(),
        "msi ok".into(),
        "0 failures".into(),
    ] {
        assert!(
            text.contains(&format!("irq-check: {part}")),
            "{part}: {text}"
        );
    }
    assert!(text.contains(INTX_OK), "{INTX_OK}: {text}");
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

    server.0.kill().unwrap();
    server.0.wait().unwrap();
    assert_eq!(read_id(&pci, bdf), u32::MAX, "a dead server reads all-ones");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !t.is_finished(),
        "the VM keeps running without its device server"
    );

    let again = device_server(&sock);
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
    drop(again);
}

#[test]
fn a_stop_ends_a_vcpu_wait_on_a_stalled_server_at_once() {
    if !kvm_or_skip("a_stop_ends_a_vcpu_wait_on_a_stalled_server_at_once") {
        return;
    }
    let d = scratch("vu-stall");
    let sock = d.join("irq.sock");
    let server = device_server(&sock);
    // Forwarded BAR reads back to back for minutes; a reply may take 30 s.
    let body = builtin("bar-bench", 1, "n=10000000")
        + &vfio_user_device(BDF, &sock, "reply_timeout_ms = 30000\n");
    let mut child = spawn_vm(&config(&d, "stall", &body), &[]);
    wait_for_output(&mut child, "bar-bench: tsc", Duration::from_secs(30));
    // The server stops answering (its socket stays open): the vCPU waits for a reply.
    // SAFETY: kill(2) on our own child's pid, not reaped yet (Reaped kills it at the end).
    unsafe { libc::kill(server.0.id() as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(500));
    sigterm_ends_at_once(child, "a stalled server");
    drop(server);
}

/// SIGTERM to `child`, which must end within 5 s with 143 (a wait for a server held it
/// up to a minute before); its output.
fn sigterm_ends_at_once(child: Child, what: &str) -> std::process::Output {
    let (out, took) = stop_with_sigterm(child, Duration::from_secs(90));
    assert!(
        took < Duration::from_secs(5),
        "{what}: the stop took {took:?}"
    );
    assert_eq!(out.status.code(), Some(143), "{what}: {}", stderr(&out));
    out
}

#[test]
fn a_stop_while_starting_ends_the_wait_for_a_server_at_once() {
    if !kvm_or_skip("a_stop_while_starting_ends_the_wait_for_a_server_at_once") {
        return;
    }
    let d = scratch("vu-start-stop");
    // No socket yet (kvmbus waits for it to appear), then one whose server accepts and
    // never answers VERSION: both waits may last a minute, a SIGTERM must not.
    let mute = d.join("mute.sock");
    let listener = std::os::unix::net::UnixListener::bind(&mute).unwrap();
    for (name, sock) in [("absent", d.join("absent.sock")), ("mute", mute)] {
        let body = builtin("hello", 1, "")
            + &vfio_user_device(
                BDF,
                &sock,
                "connect_timeout_ms = 60000\nreply_timeout_ms = 60000\n",
            );
        let child = spawn_vm(&config(&d, name, &body), &[]);
        std::thread::sleep(Duration::from_secs(1));
        let out = sigterm_ends_at_once(child, name);
        assert!(
            stderr(&out).contains("stopped by signal 15 while starting"),
            "{name}: {}",
            stderr(&out)
        );
    }
    drop(listener);
}

/// The rust-vmm `vfio-user` crate's gpio example (a server nobody here wrote), built
/// from the crate's fetched source (fetched with `cargo info` if absent).
pub(crate) fn gpio_example() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let find = || {
        std::fs::read_dir(home.join("registry/src"))
            .ok()?
            .flatten()
            .map(|d| d.path().join("vfio_user-0.1.7"))
            .find(|p| p.join("examples/gpio/main.rs").exists())
    };
    let src = find().or_else(|| {
        let _ = std::process::Command::new("cargo")
            .args(["info", "vfio-user@0.1.7"])
            .output();
        find()
    });
    let src =
        src.expect("the vfio_user 0.1.7 crate source (cargo info vfio-user@0.1.7 fetches it)");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vfio-user-gpio");
    let out = std::process::Command::new("cargo")
        .args(["build", "--quiet", "--example", "gpio", "--manifest-path"])
        .arg(src.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .output()
        .expect("cargo");
    assert!(out.status.success(), "building the gpio example: {out:?}");
    target.join("debug/examples/gpio")
}

/// Stands in for KVM's resampling irqfd: keeps the trigger and resample fds.
#[derive(Default)]
struct Route(std::sync::Mutex<Option<(EventFd, EventFd)>>);

impl IntxRoute for Route {
    fn bind(&self, trigger: &EventFd, resample: &EventFd, _gsi: u32) -> vmm_core::Result<()> {
        *self.0.lock().unwrap() =
            Some((trigger.try_clone().unwrap(), resample.try_clone().unwrap()));
        Ok(())
    }
    fn unbind(&self, _trigger: &EventFd, _gsi: u32) {}
}

#[test]
fn the_rust_vmm_gpio_example_serves_our_client() {
    let d = scratch("vu-gpio");
    let sock = d.join("gpio.sock");
    let gpio = Reaped(
        std::process::Command::new(gpio_example())
            .arg("--socket-path")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gpio example"),
    );
    let route = std::sync::Arc::new(Route::default());
    let mut no_vectors =
        |_n: u16| -> vmm_core::Result<Vec<irq_router::IrqHandle>> { Ok(Vec::new()) };
    let mut dev = VfioUserDevice::connect(
        &ClientOptions {
            vm: "gpio".into(),
            bdf: BDF.parse().unwrap(),
            socket: sock.clone(),
            connect_timeout: Duration::from_secs(20),
            reply_timeout: Duration::from_secs(2),
            held: None,
            interrupts: Default::default(),
            control: None,
        },
        Wiring {
            vectors: &mut no_vectors,
            dma: None,
            mapper: None,
            intx: Some((route.clone(), 17)),
        },
    )
    .expect("connect to the gpio example");
    let mut id = [0u8; 4];
    dev.config_read(0, &mut id);
    assert_eq!(u32::from_le_bytes(id), 0x0dc8_494f);
    let mut line = [0u8; 2];
    dev.config_read(0x3c, &mut line);
    assert_eq!(line, [17, 1], "INTA# wired to IOAPIC input 17");
    let (trigger, resample) = route.0.lock().unwrap().take().expect("INTx bound");
    // Every third read of BAR2+0 reads 1 and raises INTx.
    let mut reads = Vec::new();
    for _ in 0..3 {
        let mut b = [0u8; 1];
        dev.bar_read(2, 0, &mut b);
        reads.push(b[0]);
    }
    assert_eq!(reads, vec![0, 0, 1]);
    let t0 = Instant::now();
    let mut got = 0;
    while got == 0 && t0.elapsed() < Duration::from_secs(5) {
        got = trigger.read().unwrap_or(0);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(got, 1, "one INTx trigger");
    // EOI: the UNMASK goes to the server, which stays connected.
    resample.write(1).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(dev.connected());
    let mut b = [0u8; 1];
    dev.bar_read(2, 0, &mut b);
    assert!(dev.connected());
    drop(dev);
    drop(gpio);
}

#[test]
fn kvmbus_run_with_a_vfio_user_device_passes_irq_check() {
    if !kvm_or_skip("kvmbus_run_with_a_vfio_user_device_passes_irq_check") {
        return;
    }
    // Both interrupt paths: the server writes the irqfds, or kvmbus's relay does.
    for path in ["direct", "counted"] {
        let d = scratch(&format!("vu-run-{path}"));
        let sock = d.join("irq.sock");
        let _server = device_server(&sock);
        let body = builtin("irq-check", 1, "n=300")
            + &vfio_user_device(BDF, &sock, &format!("interrupts = \"{path}\"\n"));
        run_irq_check(&d, &format!("vu-{path}"), &body);
    }
}

#[test]
fn counted_server_interrupts_are_counted_by_vector() {
    if !kvm_or_skip("counted_server_interrupts_are_counted_by_vector") {
        return;
    }
    let d = scratch("vu-counted");
    let sock = d.join("irq.sock");
    let _server = device_server(&sock);
    // The demo guest fires the irq-test at 00:03.0 on its vector 0 over and over.
    let body =
        builtin("demo", 2, "") + &vfio_user_device("00:03.0", &sock, "interrupts = \"counted\"\n");
    let port = free_port();
    let mut vm = spawn_vm(
        &config(&d, "counted", &body),
        &["--metrics", &format!("127.0.0.1:{port}")],
    );
    let seen = wait_for_output(&mut vm, "demo: t=2s", Duration::from_secs(60));
    let metrics = scrape(port, Duration::from_secs(5)).unwrap();
    let (out, _) = stop_with_sigterm(vm, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    let count = |vector: u32| -> f64 {
        let key = format!(
            "kvmbus_irq_triggers_total{{vm=\"demo\",device=\"vfio-user\",vector=\"{vector}\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .unwrap_or_else(|| panic!("no {key}in:\n{metrics}"))
            .parse()
            .unwrap()
    };
    let irqs = seen
        .lines()
        .filter_map(|l| {
            l.split("irqs/s=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    assert!(irqs > 0, "the guest handled interrupts:\n{seen}");
    assert!(count(0) >= 100.0, "vector 0 counted: {}", count(0));
    assert_eq!(count(1), 0.0, "vector 1 never fired");
}

#[test]
fn the_in_process_irq_test_with_intx_passes_the_same_irq_check() {
    if !kvm_or_skip("the_in_process_irq_test_with_intx_passes_the_same_irq_check") {
        return;
    }
    let d = scratch("vu-local");
    // The device server's shape: 16 MSI-X and 4 MSI vectors, INTA#.
    let body = format!(
        "{}[[device]]\nkind = \"irq-test\"\nbdf = \"{BDF}\"\nmsix_vectors = 16\nmsi_vectors = 4\nintx = true\n",
        builtin("irq-check", 1, "n=300"),
    );
    run_irq_check(&d, "local", &body);
}

#[test]
fn a_vfio_user_device_without_its_socket_key_is_a_placed_config_error() {
    let d = scratch("vu-cfg");
    let body = format!(
        "{}[[device]]\nkind = \"vfio-user\"\n",
        builtin("hello", 1, "")
    );
    let out = run_with_deadline(
        kvmbus().arg("check").arg(config(&d, "bad", &body)),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bad.toml:") && err.contains("socket"), "{err}");
}

#[test]
fn the_tui_pci_view_shows_a_vfio_user_device() {
    if !kvm_or_skip("the_tui_pci_view_shows_a_vfio_user_device") {
        return;
    }
    let d = scratch("vu-tui");
    let sock = d.join("irq.sock");
    let _server = device_server(&sock);
    let body = format!(
        "{}[serial]\noutput = \"file:{}\"\n",
        builtin("demo", 1, ""),
        d.join("serial.txt").display()
    ) + &vfio_user_device(BDF, &sock, "");
    let cfg = config(&d, "vu-tui", &body);
    let t = crate::monitor::Tmux::start_reporting(
        "vu-tui",
        &format!(
            "{} run {} --tui",
            env!("CARGO_BIN_EXE_kvmbus"),
            cfg.display()
        ),
    );
    t.wait_for("exits user");
    t.keys(&["4"]);
    let screen = t.wait_for("vfio-user connected");
    assert!(screen.contains("00:04.0 vfio-user"), "{screen}");
    assert!(screen.contains("fwd r "), "{screen}");
    t.keys(&["q"]);
    assert_eq!(t.wait_dead(), "130 0");
}
