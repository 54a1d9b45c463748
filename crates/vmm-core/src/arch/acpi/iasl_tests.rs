//! The tables as a guest finds them, decoded by ACPICA's disassembler (`iasl -d`, Debian
//! `acpica-tools`, installed by scripts/setup.sh): found by the RSDP scan, extracted
//! from guest memory, checksums and fields checked by iasl rather than by our own parser.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::*;

fn read(m: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    m.read_slice(&mut b, GuestAddress(addr)).unwrap();
    b
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn table(m: &GuestMemoryMmap, addr: u64) -> Vec<u8> {
    let len = u32_at(&read(m, addr, 8), 4) as usize;
    read(m, addr, len)
}

/// Every table reachable from the RSDP, by signature, as a guest walks them.
fn extract(m: &GuestMemoryMmap) -> BTreeMap<String, Vec<u8>> {
    let rsdp_addr = (0xE_0000u64..0x10_0000)
        .step_by(16)
        .find(|a| &read(m, *a, 8) == b"RSD PTR ")
        .expect("no RSDP in 0xE0000-0xFFFFF");
    let rsdp = read(m, rsdp_addr, 36);
    let mut out = BTreeMap::new();
    let rsdt = table(m, u32_at(&rsdp, 16) as u64);
    let xsdt_addr = u64::from_le_bytes(rsdp[24..32].try_into().unwrap());
    out.insert("XSDT".into(), table(m, xsdt_addr));
    for i in (36..rsdt.len()).step_by(4) {
        let t = table(m, u32_at(&rsdt, i) as u64);
        let sig = String::from_utf8_lossy(&t[..4]).to_string();
        if sig == "FACP" {
            out.insert("FACS".into(), table(m, u32_at(&t, 36) as u64));
            out.insert("DSDT".into(), table(m, u32_at(&t, 40) as u64));
        }
        out.insert(sig, t);
    }
    out.insert("RSDP".into(), rsdp);
    out.insert("RSDT".into(), rsdt);
    out
}

/// Disassembles every table in `dir`; returns iasl's output and each .dsl by signature.
fn iasl(dir: &Path, tables: &BTreeMap<String, Vec<u8>>) -> (String, BTreeMap<String, String>) {
    let mut log = String::new();
    let mut dsl = BTreeMap::new();
    for (sig, bytes) in tables {
        let f = dir.join(format!("{}.dat", sig.to_lowercase()));
        std::fs::write(&f, bytes).unwrap();
        let o = Command::new("iasl")
            .arg("-d")
            .arg(&f)
            .current_dir(dir)
            .output()
            .expect("iasl is missing: run scripts/setup.sh (Debian acpica-tools)");
        log += &String::from_utf8_lossy(&o.stdout);
        log += &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "iasl -d {sig} failed:\n{log}");
        let out = std::fs::read_to_string(f.with_extension("dsl")).unwrap();
        dsl.insert(sig.clone(), out);
    }
    (log, dsl)
}

/// The values of every `[offset] name : value` line in an iasl listing whose name is
/// exactly `name`.
fn field<'a>(dsl: &'a str, name: &str) -> Vec<&'a str> {
    dsl.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(" : ")?;
            let k = k.rsplit(']').next()?.trim();
            // Array entries carry an index ("ACPI Table Address   1"): drop it.
            let k = k.trim_end_matches(|c: char| c.is_ascii_digit()).trim_end();
            (k == name).then(|| v.trim())
        })
        .collect()
}

#[test]
fn iasl_decodes_every_table_without_complaint() {
    let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    let layout = write_acpi_tables(&m, 4).unwrap();
    let tables = extract(&m);
    let names: Vec<&str> = tables.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["APIC", "DSDT", "FACP", "FACS", "RSDP", "RSDT", "XSDT"]
    );
    let dir = std::env::temp_dir().join(format!("kvmbus-acpi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // This iasl (20200925) rejects a lone RSDP file ("RSD " is no valid name segment);
    // the RSDP's checksums and pointers are checked by the scan test below.
    let mut sdts = tables.clone();
    sdts.remove("RSDP");
    let (log, dsl) = iasl(&dir, &sdts);
    if std::env::var_os("KVMBUS_KEEP_ACPI").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let all = dsl.values().cloned().collect::<String>() + &log;
    for bad in ["Incorrect checksum", "Invalid", "ERROR", "Error", "Warning"] {
        assert!(!all.contains(bad), "iasl says {bad}:\n{all}");
    }

    let rsdt = &dsl["RSDT"];
    let entries = [layout.fadt, layout.madt];
    let want: Vec<String> = entries.iter().map(|a| format!("{a:08X}")).collect();
    assert_eq!(field(rsdt, "ACPI Table Address"), want);
    let xsdt = &dsl["XSDT"];
    let want: Vec<String> = entries.iter().map(|a| format!("{a:016X}")).collect();
    assert_eq!(field(xsdt, "ACPI Table Address"), want);

    let fadt = &dsl["FACP"];
    assert_eq!(field(fadt, "Revision"), ["03"]);
    assert_eq!(field(fadt, "SCI Interrupt"), ["0009"]);
    assert_eq!(field(fadt, "PM1A Event Block Address"), ["00000600"]);
    assert_eq!(field(fadt, "PM1A Control Block Address"), ["00000604"]);
    assert_eq!(field(fadt, "PM Timer Block Address"), ["00000608"]);
    assert_eq!(field(fadt, "PM1 Event Block Length"), ["04"]);
    assert_eq!(field(fadt, "PM1 Control Block Length"), ["02"]);
    assert_eq!(field(fadt, "PM Timer Block Length"), ["04"]);
    assert_eq!(field(fadt, "RTC Century Index"), ["32"]);
    // FIRMWARE_CTRL holds the FACS, X_FIRMWARE_CTRL is 0; DSDT and X_DSDT agree.
    let facs = format!("{:08X}", layout.facs);
    assert_eq!(
        field(fadt, "FACS Address"),
        [facs.as_str(), "0000000000000000"]
    );
    let (d32, d64) = (
        format!("{:08X}", layout.dsdt),
        format!("{:016X}", layout.dsdt),
    );
    assert_eq!(field(fadt, "DSDT Address"), [d32, d64]);
    assert_eq!(field(fadt, "Value to cause reset"), ["0F"]);
    assert_eq!(field(fadt, "Reset Register Supported (V2)"), ["1"]);
    assert_eq!(field(fadt, "32-bit PM Timer (V1)"), ["0"]);
    let addrs = field(fadt, "Address");
    let ports = ["CF9", "600", "604", "608"].map(|p| format!("{p:0>16}"));
    for port in ports.iter().map(String::as_str) {
        assert!(addrs.contains(&port), "no GAS at {port}: {addrs:?}");
    }

    let madt = &dsl["APIC"];
    assert_eq!(field(madt, "Local Apic Address"), ["FEE00000"]);
    assert_eq!(field(madt, "Local Apic ID"), ["00", "01", "02", "03"]);
    assert_eq!(field(madt, "I/O Apic ID"), ["04"]);
    assert_eq!(field(madt, "Address"), ["FEC00000"]);
    assert_eq!(field(madt, "Source"), ["00", "09"]);
    // The I/O APIC's GSI base, then the overrides' GSIs.
    assert_eq!(
        field(madt, "Interrupt"),
        ["00000000", "00000002", "00000009"]
    );
    assert_eq!(field(madt, "Interrupt Input LINT"), ["01"]);

    let facs = &dsl["FACS"];
    assert_eq!(field(facs, "32 Firmware Waking Vector"), ["00000000"]);

    let dsdt = &dsl["DSDT"];
    for s in ["_S3", "_S4", "_S5"] {
        assert!(
            dsdt.contains(&format!("Name ({s}, Package")),
            "{s} missing:\n{dsdt}"
        );
    }
    let s3 = dsdt.split("Name (_S3").nth(1).unwrap();
    assert!(s3.split('}').next().unwrap().contains("One"), "{s3}");
}

#[test]
fn rsdp_sits_where_the_scan_finds_it_with_both_checksums() {
    let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    let layout = write_acpi_tables(&m, 254).unwrap();
    assert_eq!(layout.rsdp % 16, 0);
    assert!((0xE_0000..0x10_0000).contains(&layout.rsdp));
    assert_eq!(layout.facs % 64, 0);
    let rsdp = read(&m, layout.rsdp, 36);
    assert_eq!(rsdp[15], 2, "revision");
    assert_eq!(u32_at(&rsdp, 16) as u64, layout.rsdt);
    assert_eq!(u32_at(&rsdp, 20), 36);
    assert_eq!(
        u64::from_le_bytes(rsdp[24..32].try_into().unwrap()),
        layout.xsdt
    );
    assert_eq!(checksum(&rsdp[..20]), 0);
    assert_eq!(checksum(&rsdp), 0);
    for (sig, t) in extract(&m) {
        if sig != "RSDP" && sig != "FACS" {
            assert_eq!(checksum(&t), 0, "{sig}");
        }
    }
    // The MP table in the F-segment is untouched by the largest machine's tables.
    crate::arch::write_mptable(&m, 254).unwrap();
    assert_eq!(extract(&m)["APIC"], madt::madt(254));
    assert_eq!(waking_cs_ip(0x1000), (0x100, 0));
    assert_eq!(waking_cs_ip(0x9_a3c5), (0x9a3c, 5));
}
