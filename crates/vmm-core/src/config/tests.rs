//! Configuration errors name file, line, column and key.

use std::path::Path;

use super::*;

fn err(src: &str) -> ConfigError {
    parse(Path::new("configs/x.toml"), src).expect_err("should be rejected")
}

fn ok(src: &str) -> Config {
    parse(Path::new("configs/x.toml"), src).expect("should parse")
}

const BOOT: &str = "[boot]\nkind = \"builtin\"\nimage = \"builtin:hello\"\n";

#[test]
fn unknown_key_names_file_line_and_table() {
    let e = err("[vm]\nname = \"a\"\nvcpus = 1\nvcpu = 2\n");
    assert_eq!((e.line, e.column), (4, 1), "{e}");
    let s = e.to_string();
    assert!(
        s.starts_with("configs/x.toml:4:1: unknown key 'vcpu' in [vm]"),
        "{s}"
    );
    let e = err(&format!("{BOOT}color = 1\n"));
    assert_eq!(e.line, 4);
    assert!(e.message.contains("unknown key 'color' in [boot]"), "{e}");
    let e = err(&format!("top = 1\n{BOOT}"));
    assert_eq!(e.line, 1);
    assert!(
        e.message.contains("unknown key 'top' in the top level"),
        "{e}"
    );
}

#[test]
fn out_of_range_values_point_at_the_value() {
    let e = err(&format!("[vm]\nvcpus = 0\n{BOOT}"));
    assert_eq!((e.line, e.column), (2, 9), "{e}");
    assert!(e.message.contains("'vcpus' in [vm] is 0"), "{e}");
    let e = err(&format!("[vm]\nmemory_mib = 1\n{BOOT}"));
    assert_eq!(e.line, 2);
    assert!(e.message.contains("memory_mib"), "{e}");
    let e = err(&format!("[vm]\nvcpus = \"two\"\n{BOOT}"));
    assert_eq!(e.line, 2);
    assert!(e.message.contains("key 'vcpus' in [vm]"), "{e}");
}

#[test]
fn on_reset_is_exit_or_reboot() {
    assert_eq!(ok(BOOT).on_reset, OnReset::Exit, "exit by default");
    let c = ok(&format!("[vm]\non_reset = \"reboot\"\n{BOOT}"));
    assert_eq!(c.on_reset, OnReset::Reboot);
    let reset = crate::control::StopReason::Reset("cf9".into());
    assert!(c.on_reset.reboots_after(&reset));
    assert!(!c
        .on_reset
        .reboots_after(&crate::control::StopReason::PowerOff));
    assert!(!OnReset::Exit.reboots_after(&reset));
    let c = ok(&format!("[vm]\non_reset = \"exit\"\n{BOOT}"));
    assert_eq!(c.on_reset, OnReset::Exit);
    let e = err(&format!(
        "[vm]\nname = \"a\"\non_reset = \"restart\"\n{BOOT}"
    ));
    assert_eq!((e.line, e.column), (3, 12), "{e}");
    assert!(
        e.message
            .contains("key 'on_reset' in [vm] is 'restart', expected 'exit' or 'reboot'"),
        "{e}"
    );
}

#[test]
fn boot_section_is_validated() {
    let e = err("[vm]\n");
    assert!(e.message.contains("missing table [boot]"), "{e}");
    let e = err("[boot]\nkind = \"elf\"\nimage = \"x\"\n");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("'kind' in [boot] is 'elf'"), "{e}");
    let e = err("[boot]\nkind = \"builtin\"\nimage = \"builtin:nope\"\n");
    assert_eq!(e.line, 3);
    assert!(e.message.contains("unknown built-in guest 'nope'"), "{e}");
    let e = err("[boot]\nkind = \"builtin\"\n");
    assert!(e.message.contains("missing key 'image' in [boot]"), "{e}");
    let c = ok("[boot]\nkind = \"multiboot\"\nimage = \"guest.elf\"\ncmdline = \"a b\"\n");
    assert_eq!(c.boot.image, "configs/guest.elf");
    assert_eq!(c.boot.cmdline, "a b");
}

#[test]
fn defaults_and_full_file() {
    let c = ok(BOOT);
    assert_eq!((c.vcpus, c.memory_mib, c.name.as_str()), (1, 128, "kvmbus"));
    assert_eq!(c.serial, SerialOutput::Stdout);
    let c = ok(&format!(
        "[vm]\nname = \"d\"\nvcpus = 2\nmemory_mib = 64\n{BOOT}[serial]\noutput = \"file:out.log\"\n\
         [metrics]\nlisten = \"127.0.0.1:9000\"\n[pci]\necam_base = 0xC0000000\n\
         [[device]]\nkind = \"irq-test\"\nbdf = \"00:03.0\"\n\
         [[device]]\nkind = \"hypercall-gateway\"\nqueues = 2\n\
         [hypercall]\nbackend_timeout_ms = 50\n\
         [[hypercall.service]]\nnr = 256\nkind = \"external\"\nsocket = \"/tmp/s\"\nmode = \"direct\"\nqueue = 0\n"
    ));
    assert_eq!(c.serial, SerialOutput::File("configs/out.log".into()));
    assert_eq!(c.metrics_listen.unwrap().port(), 9000);
    assert_eq!(c.ecam_base, 0xC000_0000);
    assert_eq!(c.devices.len(), 2);
    assert_eq!(c.devices[0].bdf.to_string(), "00:03.0");
    assert_eq!(
        c.devices[1].bdf.to_string(),
        "00:01.0",
        "the first free slot"
    );
    assert_eq!(c.devices[1].line, 17);
    assert_eq!(c.hypercall.services[0].nr(), 256);
    assert_eq!(c.hypercall.backend_timeout_ms, 50);
}

#[test]
fn metrics_sd_dir_is_a_path_next_to_the_file() {
    let c = ok(&format!(
        "{BOOT}[metrics]\nlisten = \"127.0.0.1:9000\"\nsd_dir = \"sd\"\n"
    ));
    assert_eq!(c.metrics_sd_dir, Some("configs/sd".into()));
    assert_eq!(c.places.metrics_sd_dir, (6, 10));
    let c = ok(&format!("{BOOT}[metrics]\nsd_dir = \"/run/kvmbus/sd\"\n"));
    assert_eq!(c.metrics_sd_dir, Some("/run/kvmbus/sd".into()));
    assert_eq!(ok(BOOT).metrics_sd_dir, None);
    let e = err(&format!("{BOOT}[metrics]\nsd_dir = \" \"\n"));
    assert_eq!((e.line, e.column), (5, 10), "{e}");
    assert!(
        e.message.contains("key 'sd_dir' in [metrics] is empty"),
        "{e}"
    );
}

#[test]
fn devices_reject_duplicates_unknown_kinds_and_foreign_keys() {
    let dev = |body: &str| format!("{BOOT}{body}");
    let e = err(&dev(
        "[[device]]\nkind = \"irq-test\"\nbdf = \"00:03.0\"\n[[device]]\nkind = \"irq-test\"\nbdf = \"00:03.0\"\n",
    ));
    assert_eq!(e.line, 9, "{e}");
    assert!(e.message.contains("repeats 00:03.0"), "{e}");
    let e = err(&dev("[[device]]\nkind = \"nic\"\n"));
    assert_eq!(e.line, 5);
    assert!(e.message.contains("'kind' in [[device]] is 'nic'"), "{e}");
    let e = err(&dev("[[device]]\nkind = \"irq-test\"\nqueues = 2\n"));
    assert_eq!(e.line, 6);
    assert!(e.message.contains("unknown key 'queues'"), "{e}");
    let e = err(&dev("[[device]]\nkind = \"irq-test\"\nbdf = \"00:00.0\"\n"));
    assert!(e.message.contains("host bridge"), "{e}");
    let e = err(&dev("[[device]]\nkind = \"irq-test\"\nbdf = \"zz\"\n"));
    assert!(e.message.contains("invalid PCI address"), "{e}");
    let e = err(&dev(
        "[[device]]\nkind = \"hypercall-gateway\"\nqueue_size = 300\n",
    ));
    assert!(e.message.contains("power of two"), "{e}");
    let e = err(&dev(
        "[[device]]\nkind = \"hypercall-gateway\"\n[[device]]\nkind = \"hypercall-gateway\"\n",
    ));
    assert_eq!(e.line, 7);
    assert!(
        e.message
            .contains("a second [[device]] of kind 'hypercall-gateway'"),
        "{e}"
    );
    let e = err(&dev("[[device]]\nbdf = \"00:03.0\"\n"));
    assert!(
        e.message.contains("missing key 'kind' in [[device]]"),
        "{e}"
    );
}

#[test]
fn vfio_user_interrupts_are_direct_or_counted() {
    let dev = |v: &str| {
        format!(
            "{BOOT}[[device]]\nkind = \"vfio-user\"\nsocket = \"/tmp/s\"\ninterrupts = \"{v}\"\n"
        )
    };
    let c = ok(&dev("counted"));
    assert!(
        format!("{:?}", c.devices[0]).contains("Counted"),
        "{:?}",
        c.devices[0]
    );
    let c = ok(&dev("direct"));
    assert!(
        format!("{:?}", c.devices[0]).contains("Direct"),
        "{:?}",
        c.devices[0]
    );
    let e = err(&dev("relayed"));
    assert_eq!((e.line, e.column), (7, 14), "{e}");
    assert!(
        e.message.contains(
            "key 'interrupts' in [[device]] is 'relayed', expected 'direct' or 'counted'"
        ),
        "{e}"
    );
}

#[test]
fn services_are_validated() {
    // The gateway comes last so that the services' line numbers stay put.
    let svc = |body: &str| {
        format!("{BOOT}[[hypercall.service]]\n{body}[[device]]\nkind = \"hypercall-gateway\"\nqueues = 2\n")
    };
    let e = err(&svc("nr = 3\nkind = \"kv\"\n"));
    assert_eq!(e.line, 5);
    assert!(e.message.contains("'nr'"), "{e}");
    let e = err(&svc("nr = 256\nkind = \"external\"\n"));
    assert!(e.message.contains("needs key 'socket'"), "{e}");
    let e = err(&svc(
        "nr = 256\nkind = \"external\"\nsocket = \"s\"\nmode = \"x\"\n",
    ));
    assert_eq!(e.line, 8);
    assert!(
        e.message
            .contains("key 'mode' in [[hypercall.service]] is 'x', expected 'relay' or 'direct'"),
        "{e}"
    );
    let e = err(&svc(
        "nr = 256\nkind = \"kv\"\n[[hypercall.service]]\nnr = 256\nkind = \"kv\"\n",
    ));
    assert!(e.message.contains("repeats 0x100"), "{e}");
    // A kv service takes 4 numbers: 0x102 overlaps it.
    let e = err(&svc(
        "nr = 256\nkind = \"kv\"\n[[hypercall.service]]\nnr = 258\nkind = \"echo\"\n",
    ));
    assert_eq!(e.line, 8);
    assert!(
        e.message.contains("overlap those of the service at line 4"),
        "{e}"
    );
    let e = err(&svc("nr = 256\nkind = \"teapot\"\n"));
    assert!(
        e.message.contains(
            "key 'kind' in [[hypercall.service]] is 'teapot', expected 'kv', 'echo' or 'external'"
        ),
        "{e}"
    );
    let e = err(&svc(
        "nr = 256\nkind = \"external\"\nsocket = \"s\"\nmode = \"direct\"\n",
    ));
    assert!(e.message.contains("key 'queue'"), "{e}");
    let e = err(&svc(
        "nr = 256\nkind = \"external\"\nsocket = \"s\"\nqueue = 1\n",
    ));
    assert_eq!(e.line, 8);
    let c = ok(&svc(
        "nr = 256\nkind = \"external\"\nsocket = \"s\"\nmode = \"direct\"\nqueue = 1\ncount = 4\n",
    ));
    assert_eq!(
        c.hypercall.services[0],
        hypercall_gw::ServiceConfig::External {
            nr: 256,
            count: 4,
            socket: "configs/s".into(),
            mode: hypercall_gw::BackendMode::Direct,
            queue: Some(1)
        }
    );
}

#[test]
fn syntax_errors_are_placed() {
    let e = err("[vm]\nvcpus = = 2\n");
    assert_eq!(e.line, 2, "{e}");
    assert!(e.to_string().starts_with("configs/x.toml:2:"), "{e}");
}

/// Every rule that `run` used to find late is a config error at its key.
#[test]
fn cross_section_rules_are_placed() {
    let gw = "[[device]]\nkind = \"hypercall-gateway\"\nqueues = 2\n";
    let direct = |nr: u32, q: u32| {
        format!("[[hypercall.service]]\nnr = {nr}\nkind = \"external\"\nsocket = \"s{nr}\"\nmode = \"direct\"\nqueue = {q}\n")
    };
    // BOOT is 3 lines, gw 3 more: the first service starts at line 7.
    let e = err(&format!("{BOOT}{gw}{}", direct(256, 2)));
    assert_eq!((e.line, e.column), (12, 9), "{e}");
    assert!(e.message.contains("the gateway has 2 queue(s)"), "{e}");
    let e = err(&format!("{BOOT}{gw}{}{}", direct(256, 1), direct(512, 1)));
    assert_eq!(e.line, 18, "{e}");
    assert!(
        e.message
            .contains("already handed to the direct service at line 7"),
        "{e}"
    );
    let e = err(&format!(
        "{BOOT}{gw}[[hypercall.service]]\nnr = 0xFFFFFFF0\nkind = \"external\"\nsocket = \"s\"\ncount = 32\n"
    ));
    assert_eq!(e.line, 11, "{e}");
    assert!(e.message.contains("passes 2^32"), "{e}");
    let e = err(&format!(
        "{BOOT}[[hypercall.service]]\nnr = 256\nkind = \"kv\"\n"
    ));
    assert_eq!((e.line, e.column), (5, 6), "{e}");
    assert!(
        e.message
            .contains("needs a [[device]] of kind 'hypercall-gateway'"),
        "{e}"
    );
    let e = err(&format!("{BOOT}[pci]\necam_base = 0x80000000\n"));
    assert_eq!(e.line, 5, "{e}");
    assert!(e.message.contains("'ecam_base' in [pci]"), "{e}");
    let long = "x".repeat(crate::loader::CMDLINE_MAX);
    let e = err(&format!(
        "[boot]\nkind = \"builtin\"\nimage = \"builtin:hello\"\ncmdline = \"{long}\"\n"
    ));
    assert_eq!((e.line, e.column), (4, 11), "{e}");
    assert!(e.message.contains("key 'cmdline' in [boot]"), "{e}");
    let many = "[[device]]\nkind = \"irq-test\"\n".repeat(32);
    let e = err(&format!("{BOOT}{many}"));
    assert_eq!(e.line, 3 + 31 * 2 + 2, "{e}");
    assert!(
        e.message.contains("all 31 slots of bus 00 are taken"),
        "{e}"
    );
    let e = err(&format!(
        "{BOOT}[[device]]\nkind = \"irq-test\"\nsocket = \"/tmp/a\"\n[[device]]\nkind = \"irq-test\"\nsocket = \"/tmp/a\"\n"
    ));
    assert_eq!(e.line, 8, "{e}");
    assert!(e.message.contains("socket /tmp/a"), "{e}");
}

#[test]
fn explicit_bdfs_keep_their_slots_and_others_fill_around_them() {
    let c = ok(&format!(
        "{BOOT}[[device]]\nkind = \"irq-test\"\n[[device]]\nkind = \"irq-test\"\nbdf = \"00:01.0\"\n"
    ));
    assert_eq!(c.devices[0].bdf.to_string(), "00:02.0");
    assert_eq!(c.devices[1].bdf.to_string(), "00:01.0");
}

#[test]
fn unknown_top_level_tables_and_non_utf8_are_placed() {
    let e = err(&format!("{BOOT}[gpu]\nx = 1\n"));
    assert_eq!(e.line, 4, "{e}");
    assert!(
        e.message.contains("unknown key 'gpu' in the top level"),
        "{e}"
    );
    let dir = std::env::temp_dir().join(format!("kvmbus-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.toml");
    let mut bytes = b"[vm]\nname = \"a\"\nvcpus = 1 # \xff\n".to_vec();
    bytes.extend_from_slice(BOOT.as_bytes());
    std::fs::write(&p, bytes).unwrap();
    let e = load(&p).expect_err("not UTF-8");
    assert_eq!((e.line, e.column), (3, 13), "{e}");
    assert!(e.message.contains("invalid UTF-8 (byte 0xff)"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
