//! fw_cfg, debug-exit widths, multiboot modules and CPUID: the same guest ELF under
//! kvmbus and under QEMU 7.2 prints the same lines and exits with the same status.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::*;

const T: Duration = Duration::from_secs(90);

/// Runs QEMU 7.2 on `img` as kvm-unit-tests does, with `extra` arguments.
fn qemu(img: &Path, smp: u32, extra: &[&str]) -> Output {
    run_with_deadline(
        Command::new("qemu-system-x86_64")
            .args(["-enable-kvm", "-cpu", "host,-arch-capabilities", "-m", "64"])
            .args(["-smp", &smp.to_string()])
            .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-kernel"])
            .arg(img)
            .args(extra)
            .stdin(Stdio::null()),
        T,
    )
}

/// kvmbus booting `img` from a file in `dir`; `extra` follows `[boot]`.
fn ours(dir: &Path, name: &str, img: &Path, vcpus: u32, cmdline: &str, extra: &str) -> Output {
    run_multiboot(dir, name, img, vcpus, cmdline, extra, T)
}

fn same(ours: &Output, qemu: &Output) {
    assert_eq!(
        stdout(qemu),
        stdout(ours),
        "qemu (left) and kvmbus (right) differ; kvmbus stderr: {}\nqemu stderr: {}",
        stderr(ours),
        stderr(qemu)
    );
    assert_eq!(ours.status.code(), qemu.status.code(), "{}", stderr(ours));
}

#[test]
fn fwcfg_check_reads_the_same_as_on_qemu() {
    if !kvm_or_skip("fwcfg_check_reads_the_same_as_on_qemu") {
        return;
    }
    require_qemu();
    let d = scratch("fwcfg");
    let img = guest_elf(&d, "fwcfg-check");
    let blob: Vec<u8> = (0..3000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    std::fs::write(d.join("blob.bin"), &blob).unwrap();
    let extra = "[debug_exit]\niobase = 0xf4\niosize = 4\n\
        [[fw_cfg]]\nname = \"opt/org.kvmbus/greeting\"\nstring = \"hello fw_cfg\"\n\
        [[fw_cfg]]\nname = \"opt/org.kvmbus/blob\"\nfile = \"blob.bin\"\n";
    let k = ours(&d, "fwcfg", &img, 2, "", extra);
    let blob_arg = format!(
        "name=opt/org.kvmbus/blob,file={}",
        d.join("blob.bin").display()
    );
    let q = qemu(
        &img,
        2,
        &[
            "-fw_cfg",
            "name=opt/org.kvmbus/greeting,string=hello fw_cfg",
            "-fw_cfg",
            &blob_arg,
        ],
    );
    let out = stdout(&k);
    for line in [
        "signature: QEMU\n",
        "id: 3\n",
        "ram size: 4000000\n",
        "cpus: 2 max 2\n",
        "inl 511: 51ffff51, then data 45\n",
        "directory: sorted, keys from 0x20\n",
        "greeting (dma, control 0): hello fw_cfg\n",
        "blob: 3000 bytes",
        "dma write: control 1\n",
        "dma to a buffer outside RAM: control 1\n",
        "fwcfg-check done\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    // The 4-byte debug-exit write of 0x1a1: (0x1a1 << 1 | 1) & 0xff.
    assert_eq!(k.status.code(), Some(0x43), "{}", stderr(&k));
    same(&k, &q);
}

#[test]
fn multiboot_modules_are_seen_as_on_qemu() {
    if !kvm_or_skip("multiboot_modules_are_seen_as_on_qemu") {
        return;
    }
    require_qemu();
    let d = scratch("mods");
    let img = guest_elf(&d, "mods-check");
    std::fs::write(d.join("env.txt"), "NR_CPUS=1\nMEMSIZE=64\n").unwrap();
    std::fs::write(d.join("blob.bin"), vec![0xa5u8; 5000]).unwrap();
    let extra =
        "modules = [{ path = \"env.txt\" }, { path = \"blob.bin\", cmdline = \"a b=c\" }]\n";
    let k = ours(&d, "mods", &img, 1, "one two=2", extra);
    let initrd = format!(
        "{},{} a b=c",
        d.join("env.txt").display(),
        d.join("blob.bin").display()
    );
    let q = qemu(&img, 1, &["-append", "one two=2", "-initrd", &initrd]);
    let out = stdout(&k);
    assert!(out.contains("kernel args: 'one two=2'\n"), "{out}");
    assert!(out.contains("modules flag: 1, count 2\n"), "{out}");
    assert!(
        out.contains("module 1: 5000 bytes") && out.contains("name 'blob.bin', args 'a b=c'"),
        "{out}"
    );
    assert!(
        !out.contains("aligned no") && !out.contains("yes, after the kernel no"),
        "{out}"
    );
    same(&k, &q);
}

#[test]
fn cpuid_is_what_qemu_cpu_host_shows() {
    if !kvm_or_skip("cpuid_is_what_qemu_cpu_host_shows") {
        return;
    }
    require_qemu();
    let d = scratch("cpuid");
    let img = guest_elf(&d, "cpuid-dump");
    let k = ours(&d, "cpuid", &img, 2, "", "");
    let q = qemu(&img, 2, &[]);
    assert!(
        stdout(&k).contains("0000000b.1: 00000001 00000002 00000201"),
        "{}",
        stdout(&k)
    );
    same(&k, &q);
}

#[test]
fn bad_fw_cfg_debug_exit_and_module_keys_are_config_errors() {
    let d = scratch("fwcfg-bad");
    std::fs::write(d.join("big.bin"), vec![0u8; 3 << 20]).unwrap();
    let base = "[vm]\nname = \"x\"\nvcpus = 1\nmemory_mib = 4\n\
                [boot]\nkind = \"builtin\"\nimage = \"builtin:hello\"\n";
    for (name, extra, line, needle) in [
        (
            "dup",
            "[[fw_cfg]]\nname = \"opt/a\"\nstring = \"1\"\n[[fw_cfg]]\nname = \"opt/a\"\nstring = \"2\"\n",
            12,
            "duplicate",
        ),
        (
            "both",
            "[[fw_cfg]]\nname = \"opt/a\"\nstring = \"1\"\nfile = \"big.bin\"\n",
            9,
            "exactly one",
        ),
        (
            "long",
            "[[fw_cfg]]\nname = \"opt/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\nstring = \"1\"\n",
            9,
            "55",
        ),
        (
            "missing",
            "[[fw_cfg]]\nname = \"opt/a\"\nfile = \"nope.bin\"\n",
            10,
            "nope.bin",
        ),
        ("iosize", "[debug_exit]\niosize = 0\n", 9, "iosize"),
        ("iobase", "[debug_exit]\niobase = 0xffff\niosize = 4\n", 9, "iobase"),
        ("overlap", "[debug_exit]\niobase = 0x606\n", 9, "ACPI PM"),
        (
            "module",
            "modules = [{ path = \"big.bin\" }]\n",
            8,
            "memory_mib",
        ),
    ] {
        let cfg = config(&d, name, &format!("{base}{extra}"));
        let out = run_with_deadline(kvmbus().arg("check").arg(&cfg), T);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        let place = format!("{}:{line}:", cfg.display());
        assert!(err.contains(&place), "{name}: want {place} in {err}");
        assert!(err.contains(needle), "{name}: want {needle:?} in {err}");
    }
}
