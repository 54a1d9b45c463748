//! The VM's lifecycle: an idle guest costs no periodic wake-ups (nor does an idle
//! vfio-user device), a stop lands while a
//! device fires interrupts at full rate, and `check` rejects exactly what `run` would.

use std::time::Duration;

use crate::common::*;

const T: Duration = Duration::from_secs(60);

/// Voluntary plus involuntary context switches of every thread of `pid`.
fn context_switches(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches:")
                || line.starts_with("nonvoluntary_ctxt_switches:")
            {
                total += line
                    .split_whitespace()
                    .last()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

/// Context switches of kvmbus over 5 s of the `idle` guest (halted) with `devices`
/// added to its configuration.
fn idle_wakeups(name: &str, devices: &str) -> u64 {
    let d = scratch(name);
    let cfg = config(&d, name, &format!("{}{devices}", builtin("idle", 2, "")));
    let mut child = spawn_vm(&cfg, &[]);
    wait_for_output(&mut child, "idle: halted", T);
    // Let start-up settle (the application processor waits for SIPI in KVM).
    std::thread::sleep(Duration::from_millis(300));
    let before = context_switches(child.id());
    std::thread::sleep(Duration::from_secs(5));
    let after = context_switches(child.id());
    let (out, _) = stop_with_sigterm(child, T);
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    after - before
}

#[test]
fn an_idle_guest_costs_no_periodic_wakeups() {
    if !kvm_or_skip("an_idle_guest_costs_no_periodic_wakeups") {
        return;
    }
    let woke = idle_wakeups("idle", "");
    println!("idle guest: {woke} context switches in 5 s");
    assert!(
        woke <= 10,
        "an idle VM woke {woke} times in 5 s (a thread polls on a timer?)"
    );
}

#[test]
fn an_idle_vfio_user_device_costs_no_periodic_wakeups() {
    if !kvm_or_skip("an_idle_vfio_user_device_costs_no_periodic_wakeups") {
        return;
    }
    // Its reconnect, INTx and interrupt-relay threads all wait for something to do.
    let sock = scratch("idle-vu-server").join("irq.sock");
    let _server = crate::vfio_user::device_server(&sock);
    let woke = idle_wakeups(
        "idle-vu",
        &format!(
            "[[device]]\nkind = \"vfio-user\"\nsocket = \"{}\"\ninterrupts = \"counted\"\n",
            sock.display()
        ),
    );
    println!("idle guest with a vfio-user device: {woke} context switches in 5 s");
    assert!(
        woke <= 10,
        "an idle VM with a vfio-user device woke {woke} times in 5 s"
    );
}

#[test]
fn a_stop_lands_while_a_device_fires_at_full_rate() {
    if !kvm_or_skip("a_stop_lands_while_a_device_fires_at_full_rate") {
        return;
    }
    let d = scratch("storm");
    let body = format!(
        "{}[[device]]\nkind = \"irq-test\"\nmsix_vectors = 2\n",
        builtin("irq-storm", 1, "")
    );
    let cfg = config(&d, "storm", &body);
    let mut child = spawn_vm(&cfg, &[]);
    wait_for_output(&mut child, "irq-storm: firing", T);
    let (out, _) = stop_with_sigterm(child, Duration::from_secs(10));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.to_lowercase().contains("error"), "{err}");
}

/// For each configuration that is wrong only across sections or against the machine,
/// `check` and `run` both exit 2 with the same message.
#[test]
fn check_and_run_reject_the_same_configs_the_same_way() {
    let boot = "[boot]\nkind = \"builtin\"\nimage = \"builtin:hello\"\n";
    let gw = "[[device]]\nkind = \"hypercall-gateway\"\nqueues = 1\n";
    let direct = |nr: u32, q: u32| {
        format!("[[hypercall.service]]\nnr = {nr}\nkind = \"external\"\nsocket = \"/tmp/kvmbus-s{nr}\"\nmode = \"direct\"\nqueue = {q}\n")
    };
    let cases = [
        ("queue-beyond", format!("{boot}{gw}{}", direct(256, 1))),
        ("queue-twice", format!("{boot}{gw}{}{}", direct(256, 0), direct(512, 0))),
        (
            "nr-count",
            format!("{boot}{gw}[[hypercall.service]]\nnr = 0xFFFFFFFF\nkind = \"external\"\nsocket = \"/tmp/x\"\ncount = 2\n"),
        ),
        ("ecam", format!("{boot}[pci]\necam_base = 0x80000000\n")),
        ("slots", format!("{boot}{}", "[[device]]\nkind = \"irq-test\"\n".repeat(32))),
        (
            "cmdline",
            format!(
                "[boot]\nkind = \"builtin\"\nimage = \"builtin:hello\"\ncmdline = \"{}\"\n",
                "a".repeat(4096)
            ),
        ),
        ("no-gateway", format!("{boot}[[hypercall.service]]\nnr = 256\nkind = \"kv\"\n")),
        ("vcpus", format!("[vm]\nvcpus = 254\n{boot}")),
    ];
    let d = scratch("agree");
    for (name, body) in cases {
        let cfg = config(&d, name, &body);
        let check = run_with_deadline(kvmbus().arg("check").arg(&cfg), T);
        if name == "vcpus" && check.status.code() == Some(0) {
            continue; // this KVM allows 254 vCPUs: nothing to compare
        }
        let run = run_with_deadline(kvmbus().arg("run").arg(&cfg), T);
        assert_eq!(check.status.code(), Some(2), "{name}: {}", stderr(&check));
        assert_eq!(run.status.code(), Some(2), "{name}: {}", stderr(&run));
        let first = |o: &std::process::Output| stderr(o).lines().next().unwrap_or("").to_string();
        assert_eq!(first(&check), first(&run), "{name}");
        assert!(
            first(&check).contains(&format!("{}:", cfg.display())),
            "{name}: {}",
            first(&check)
        );
    }
}

/// Processes (other than this test) whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn nothing_the_vmm_held_outlives_its_exit_with_either_teardown() {
    if !kvm_or_skip("nothing_the_vmm_held_outlives_its_exit_with_either_teardown") {
        return;
    }
    for (name, extra) in [("async-td", None), ("sync-td", Some("--sync-teardown"))] {
        let d = scratch(name);
        let cfg = config(&d, name, &builtin("hello", 2, ""));
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = kvmbus();
        cmd.arg("run").arg(&cfg).args(["--metrics", &addr]);
        cmd.args(extra);
        // The pipes close when kvmbus exits: the teardown process keeps none of them.
        let out = run_with_deadline(&mut cmd, T);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("Hello from a kvmbus guest!"),
            "{name}"
        );
        // Nor the metrics listener: its port is free the moment kvmbus has exited.
        std::net::TcpListener::bind(&addr)
            .unwrap_or_else(|e| panic!("{name}: {addr} still taken after exit: {e}"));
        // And the teardown process (async) ends on its own, promptly.
        let start = std::time::Instant::now();
        let needle = cfg.display().to_string();
        while !processes_mentioning(&needle).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{name}: a process of this VM is still alive 5 s after exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
