//! Where the vfio-user bench's interrupt runs put their threads.
//!
//! An interrupt's trigger-to-handler latency on this host is mostly the wake-up of the
//! halted vCPU's thread, and that depends on where the firing thread runs: on the vCPU
//! thread's CPU the wake-up is a local one; on the other CPU it is an IPI to a CPU that
//! is idle (halted in the host's hypervisor), which costs about 20 µs more. Left to the
//! scheduler, an in-process device's thread lands on the vCPU's CPU more often than a
//! server's does (it is woken straight from the vCPU thread), so unpinned runs compare
//! placements as much as interrupt paths. Pinned runs put both cases in the same place.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A placement of the VM and of the thread that raises the interrupt.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Placement {
    /// Nothing pinned: the scheduler's choice.
    Free,
    /// kvmbus and the device (in-process thread or server process) all on CPU 0.
    Shared,
    /// kvmbus on CPU 0, the device's threads on CPU 1 (in-process: the `irq-test`
    /// thread moved there as soon as it exists, before the guest boots).
    Apart,
}

impl Placement {
    /// The CPU kvmbus is pinned to, if any.
    pub fn vm_cpu(self) -> Option<usize> {
        match self {
            Placement::Free => None,
            Placement::Shared | Placement::Apart => Some(0),
        }
    }

    /// The CPU the device's threads are pinned to, if any.
    pub fn device_cpu(self) -> Option<usize> {
        match self {
            Placement::Free => None,
            Placement::Shared => Some(0),
            Placement::Apart => Some(1),
        }
    }

    /// The BENCH metric of its interrupt latency.
    pub fn metric(self) -> &'static str {
        match self {
            Placement::Free => "irq-latency",
            Placement::Shared => "irq-latency-same-cpu",
            Placement::Apart => "irq-latency-other-cpu",
        }
    }

    /// How the report names it.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Free => "unpinned",
            Placement::Shared => "on the vCPU's CPU",
            Placement::Apart => "on the other CPU",
        }
    }
}

/// Pins `tid` (0: the calling thread) to `cpu`.
fn set_affinity(tid: libc::pid_t, cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is 0 or 1 (a [`Placement`]'s), below CPU_SETSIZE; CPU_SET writes
    // inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a live cpu_set_t of the size passed; the result is checked.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes `cmd`'s process (and every thread it starts) run on `cpu` only.
pub fn pin_command(cmd: &mut Command, cpu: usize) {
    // SAFETY: the closure runs in the child between fork and exec and makes only
    // sched_setaffinity, an async-signal-safe system call; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || set_affinity(0, cpu));
    }
}

/// Moves `child`'s thread named `comm` to `cpu` once it exists (waits up to 10 s; if
/// `child` ends first, its exit status and output tell the caller what went wrong).
pub fn pin_thread(child: &mut Child, comm: &str, cpu: usize) {
    let tasks = format!("/proc/{}/task", child.id());
    let t0 = Instant::now();
    loop {
        let found = std::fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .flatten()
            .find(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == comm)
            });
        if let Some(t) = found {
            let tid: libc::pid_t = t.file_name().to_string_lossy().parse().expect("a tid");
            set_affinity(tid, cpu).unwrap_or_else(|e| panic!("pinning {comm} to CPU {cpu}: {e}"));
            return;
        }
        if child.try_wait().is_ok_and(|s| s.is_some()) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "kvmbus never started a thread named {comm}"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Whether this process may run on CPUs 0 and 1, which the pinned placements use.
pub fn two_cpus() -> bool {
    // SAFETY: cpu_set_t is plain data; zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live cpu_set_t of the size passed; the result is checked.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    // SAFETY: CPU_ISSET reads inside `set`; 0 and 1 are below CPU_SETSIZE.
    rc == 0 && unsafe { libc::CPU_ISSET(0, &set) && libc::CPU_ISSET(1, &set) }
}
