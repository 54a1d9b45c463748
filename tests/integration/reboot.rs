//! `[vm] on_reset = "reboot"`: a guest's reset request boots the machine again instead
//! of ending kvmbus; a vfio-user server that serves one connection (the rust-vmm gpio
//! example) keeps it and sees DEVICE_RESET each boot; a stop request still ends the
//! machine promptly. (A triple fault reboots too, but this host's KVM reports the
//! triple-fault guest as an emulation failure, not a shutdown; `control` unit-tests
//! which reasons reboot.)

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use crate::vfio_user::{gpio_example, vfio_user_device, Reaped, BDF};

const T: Duration = Duration::from_secs(60);

#[test]
fn a_reboot_keeps_a_one_connection_servers_device_and_resets_it() {
    if !kvm_or_skip("a_reboot_keeps_a_one_connection_servers_device_and_resets_it") {
        return;
    }
    let d = scratch("reboot-vu");
    let sock = d.join("gpio.sock");
    let log = d.join("gpio.log");
    let _gpio = Reaped(
        Command::new(gpio_example())
            .arg("--socket-path")
            .arg(&sock)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("gpio example"),
    );
    let img = guest_elf(&d, "lm-reset");
    let body = format!(
        "[vm]\nname = \"rb\"\nmemory_mib = 64\non_reset = \"reboot\"\n\
         [boot]\nkind = \"multiboot\"\nimage = \"{}\"\n",
        img.display()
    ) + &vfio_user_device(BDF, &sock, "connect_timeout_ms = 30000\n");
    let port = free_port();
    let mut vm = spawn_vm(
        &config(&d, "rb", &body),
        &["--metrics", &format!("127.0.0.1:{port}")],
    );
    // Three boots: the guest requested a reset twice and is about to a third time.
    let out = wait_for_count(&mut vm, "lm-reset: writing 06", 3, T);
    assert!(!out.contains("still running"), "{out}");
    let metrics = scrape(port, Duration::from_secs(5)).unwrap();
    let reboots: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kvmbus_vm_reboots_total{vm=\"rb\"} "))
        .unwrap_or_else(|| panic!("no reboot counter:\n{metrics}"))
        .parse()
        .unwrap();
    assert!(reboots >= 2.0, "{reboots}");
    let (end, _) = stop_with_sigterm(vm, Duration::from_secs(10));
    let err = stderr(&end);
    assert_eq!(end.status.code(), Some(143), "{err}");
    assert!(
        err.contains("reset requested (the guest wrote 0x06 to the reset control register 0xcf9); rebooting (boot 3)"),
        "{err}"
    );
    let served = std::fs::read_to_string(&log).unwrap();
    let count = |what: &str| served.matches(what).count();
    assert_eq!(
        count("Received client version"),
        1,
        "one connection:\n{served}"
    );
    assert!(
        count("gpio] reset") >= 3,
        "DEVICE_RESET each boot:\n{served}"
    );
    assert!(
        count("gpio] dma_unmap") >= 2 && count("gpio] dma_map") >= 3,
        "each boot's memory mapped, the last one's unmapped:\n{served}"
    );
}
