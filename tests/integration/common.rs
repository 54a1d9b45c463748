//! Helpers: locating the binary, writing configs, running with a deadline.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The kvmbus binary under test.
pub fn kvmbus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kvmbus"))
}

/// True if /dev/kvm can be opened; else prints the SKIP line for `name`.
pub fn kvm_or_skip(name: &str) -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(_) => {
            println!("SKIP (no /dev/kvm): {name}");
            false
        }
    }
}

/// A scratch directory unique to this test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvmbus-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `body` as `<dir>/<name>.toml` and returns its path.
pub fn config(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, body).unwrap();
    p
}

/// A config booting built-in `guest` with `vcpus` and `cmdline`.
pub fn builtin(guest: &str, vcpus: u32, cmdline: &str) -> String {
    format!(
        "[vm]\nname = \"demo\"\nvcpus = {vcpus}\nmemory_mib = 64\n\
         [boot]\nkind = \"builtin\"\nimage = \"builtin:{guest}\"\ncmdline = \"{cmdline}\"\n"
    )
}

/// A config body booting the multiboot image file `img` (as `builtin` does a built-in
/// guest); a `[boot]` key may follow.
pub fn multiboot(name: &str, img: &std::path::Path, vcpus: u32, cmdline: &str) -> String {
    format!(
        "[vm]\nname = \"{name}\"\nvcpus = {vcpus}\nmemory_mib = 64\n\
         [boot]\nkind = \"multiboot\"\nimage = \"{}\"\ncmdline = \"{cmdline}\"\n",
        img.display()
    )
}

/// Panics unless QEMU is installed: the side-by-side tests need it (`scripts/setup.sh`
/// installs it).
pub fn require_qemu() {
    let found = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        found,
        "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"
    );
}

/// Writes built-in `guest` into `dir` as a multiboot ELF file, with `kvmbus image`.
pub fn guest_elf(dir: &std::path::Path, guest: &str) -> PathBuf {
    let img = dir.join(format!("{guest}.elf"));
    let ok = kvmbus()
        .args(["image", guest])
        .arg(&img)
        .status()
        .unwrap()
        .success();
    assert!(ok, "kvmbus image {guest}");
    img
}

/// Runs kvmbus on a config in `dir` booting the image file `img` with `vcpus` and
/// `cmdline` ([`multiboot`]); `extra` follows `[boot]`. Killed after `limit`.
pub fn run_multiboot(
    dir: &std::path::Path,
    name: &str,
    img: &std::path::Path,
    vcpus: u32,
    cmdline: &str,
    extra: &str,
    limit: Duration,
) -> Output {
    let body = format!("{}{extra}", multiboot(name, img, vcpus, cmdline));
    run_with_deadline(kvmbus().arg("run").arg(config(dir, name, &body)), limit)
}

/// Runs `cmd` to completion, killing it after `limit` (then panics: a hang is a failure).
pub fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kvmbus");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "timed out after {limit:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads `child`'s stdout until `needle` appears (or panics after `limit`).
pub fn wait_for_output(child: &mut Child, needle: &str, limit: Duration) -> String {
    wait_for_count(child, needle, 1, limit)
}

/// Reads `child`'s stdout until `needle` has appeared `n` times (or panics after
/// `limit`).
pub fn wait_for_count(child: &mut Child, needle: &str, n: usize, limit: Duration) -> String {
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let fd = std::os::fd::AsRawFd::as_raw_fd(stdout);
    // SAFETY: `fd` is the child's stdout pipe, owned by `child` for the whole call;
    // making it non-blocking only changes how our reads return.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
        if String::from_utf8_lossy(&seen).matches(needle).count() >= n {
            return String::from_utf8_lossy(&seen).into_owned();
        }
    }
    let _ = child.kill();
    panic!(
        "'{needle}' did not appear {n} times within {limit:?}; output:\n{}",
        String::from_utf8_lossy(&seen)
    );
}

/// Sends SIGTERM to `child` and waits for it to exit: its output (what was not read
/// yet) and how long the exit took. Past `limit` it is killed and the test fails.
pub fn stop_with_sigterm(mut child: Child, limit: Duration) -> (Output, Duration) {
    // SAFETY: kill(2) on our own child's pid; it has not been reaped yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("kvmbus did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = start.elapsed();
    (child.wait_with_output().unwrap(), took)
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `body` as a config in a scratch directory named `name` and runs it to its
/// end with `kvmbus run` (a hang past `limit` fails the test).
pub fn run_vm(name: &str, body: &str, limit: Duration) -> Output {
    let d = scratch(name);
    run_with_deadline(kvmbus().arg("run").arg(config(&d, name, body)), limit)
}

/// Starts `kvmbus run <cfg> <extra...>` with stdout and stderr piped.
pub fn spawn_vm(cfg: &std::path::Path, extra: &[&str]) -> Child {
    kvmbus()
        .arg("run")
        .arg(cfg)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kvmbus")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One plain HTTP/1.1 GET of /metrics on 127.0.0.1:`port` (`Connection: close`): the whole
/// answer, head and body.
pub fn scrape(port: u16, timeout: Duration) -> std::io::Result<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
