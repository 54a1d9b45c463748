//! PCI as the guest sees it, checked by code we did not write (pciutils' lspci) and by
//! the pci-check guest (CAM vs ECAM, BAR relocation).

use std::process::Command;
use std::time::Duration;

use crate::common::*;

const T: Duration = Duration::from_secs(60);

/// Runs the pci-dump guest with `devices` and returns (dump text, lspci -vvv -nn output).
fn dump_and_decode(name: &str, devices: &str) -> (String, String) {
    let d = scratch(name);
    let cfg = config(
        &d,
        "dump",
        &format!("[vm]\nmemory_mib = 32\n[boot]\nkind = \"builtin\"\nimage = \"builtin:pci-dump\"\n{devices}"),
    );
    let out = run_with_deadline(kvmbus().arg("run").arg(&cfg), T);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let dump = stdout(&out);
    let file = d.join("dump.txt");
    std::fs::write(&file, &dump).unwrap();
    let lspci = Command::new("lspci")
        .arg("-F")
        .arg(&file)
        .args(["-vvv", "-nn"])
        .output()
        .expect("lspci (pciutils) is installed by scripts/setup.sh");
    assert!(
        lspci.status.success(),
        "{}",
        String::from_utf8_lossy(&lspci.stderr)
    );
    (dump, String::from_utf8_lossy(&lspci.stdout).into_owned())
}

/// The lspci block of one function.
fn block<'a>(lspci: &'a str, bdf: &str) -> &'a str {
    let start = lspci
        .find(&format!("{bdf} "))
        .unwrap_or_else(|| panic!("{bdf} missing from lspci output:\n{lspci}"));
    let rest = &lspci[start..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    &rest[..end]
}

fn has(block: &str, needle: &str) {
    assert!(block.contains(needle), "'{needle}' not in:\n{block}");
}

#[test]
fn lspci_decodes_the_guest_dump_as_configured() {
    if !kvm_or_skip("lspci_decodes_the_guest_dump_as_configured") {
        return;
    }
    for (msix, msi, pba, bar2) in [
        (8u16, 4u16, "00000800", 16384u32),
        (2048, 32, "00008000", 65536),
    ] {
        let (dump, lspci) = dump_and_decode(
            &format!("lspci{msix}"),
            &format!(
                "[[device]]\nkind = \"irq-test\"\nbdf = \"00:03.0\"\nmsix_vectors = {msix}\nmsi_vectors = {msi}\n\
                 [[device]]\nkind = \"irq-test\"\nbdf = \"00:04.0\"\n\
                 [[device]]\nkind = \"irq-test\"\nbdf = \"00:04.1\"\n"
            ),
        );
        let host = block(&lspci, "00:00.0");
        has(host, "Host bridge [0600]");
        has(host, "[8086:29c0]");
        let dev = block(&lspci, "00:03.0");
        has(dev, "System peripheral [0880]: Device [1234:4954] (rev 01)");
        has(dev, "Control: I/O+ Mem+ BusMaster+");
        has(dev, "Region 0: I/O ports at c000");
        has(
            dev,
            "Region 1: Memory at 80000000 (32-bit, non-prefetchable)",
        );
        has(dev, "(64-bit, prefetchable)");
        has(dev, "Express (v2) Endpoint");
        has(dev, &format!("MSI: Enable- Count=1/{msi} Maskable+ 64bit+"));
        has(dev, &format!("MSI-X: Enable- Count={msix} Masked-"));
        has(dev, "Vector table: BAR=2 offset=00000000");
        has(dev, &format!("PBA: BAR=2 offset={pba}"));
        // Multi-function: both functions of device 4 are found and decoded.
        has(block(&lspci, "00:04.0"), "[1234:4954]");
        has(block(&lspci, "00:04.1"), "[1234:4954]");
        // lspci cannot size BARs from a dump; the guest's own sizing line says it.
        has(
            &dump,
            &format!("# sizes 00:03.0 bar0=io:64 bar1=mem32:4096 bar2=mem64pf:{bar2}"),
        );
        assert!(dump.contains("# 4 functions"), "{dump}");
    }
}

#[test]
fn pci_check_guest_cam_ecam_and_bar_moves() {
    if !kvm_or_skip("pci_check_guest_cam_ecam_and_bar_moves") {
        return;
    }
    let d = scratch("pcicheck");
    for ecam in ["0xB0000000", "0xC0000000"] {
        let cfg = config(
            &d,
            "check",
            &format!(
                "[vm]\nmemory_mib = 32\n[boot]\nkind = \"builtin\"\nimage = \"builtin:pci-check\"\n\
                 cmdline = \"ecam={ecam}\"\n[pci]\necam_base = {ecam}\n\
                 [[device]]\nkind = \"irq-test\"\n[[device]]\nkind = \"irq-test\"\nbdf = \"00:07.0\"\n"
            ),
        );
        let out = run_with_deadline(kvmbus().arg("run").arg(&cfg), T);
        let text = stdout(&out);
        assert!(!text.contains("FAIL"), "{text}");
        assert!(
            text.contains("3 functions, 192 dwords identical over CAM and ECAM"),
            "{text}"
        );
        assert!(text.contains("BARs moved (io c000 -> e000"), "{text}");
        assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    }
}
