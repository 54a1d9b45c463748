//! Subcommands of `kvmbus`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vmm_core::config::{self, Config, SerialOutput};
use vmm_core::control::exit_code;
use vmm_core::reboot::Machine;
use vmm_core::vm::{self, RunOptions};
use vmm_core::Error;

/// kvmbus: a KVM virtual machine monitor where PCI is emulated in userspace, interrupts
/// are file descriptors (KVM_IRQFD) and hypercalls are file descriptors (KVM_IOEVENTFD).
#[derive(Parser)]
#[command(name = "kvmbus", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Launch the VM a configuration describes and run it to its end.
    Run {
        /// The TOML configuration.
        config: PathBuf,
        /// Show the live dashboard in this terminal while the VM runs.
        #[arg(long)]
        tui: bool,
        /// Serve Prometheus metrics on ADDR (overrides `[metrics] listen`).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
        /// Register the metrics endpoint for Prometheus as DIR/NAME.json (file_sd),
        /// removed when the VM ends.
        #[arg(long, value_name = "DIR")]
        sd_dir: Option<PathBuf>,
        /// Write the final metrics (Prometheus text) to FILE when the VM ends: what a
        /// run too short to scrape cost, exit by exit.
        #[arg(long, value_name = "FILE")]
        metrics_out: Option<PathBuf>,
        /// Tear the KVM VM down before exiting, instead of in a short-lived child process
        /// after the exit status is known.
        #[arg(long)]
        sync_teardown: bool,
    },
    /// Live dashboard of running kvmbus VMs, attached to their metrics endpoints.
    Top {
        /// Endpoints, e.g. http://127.0.0.1:9464/metrics or 127.0.0.1:9464 (several VMs
        /// at once); default the demo's 127.0.0.1:9464.
        urls: Vec<String>,
        /// Print one plain-text snapshot (two scrapes a second apart) and exit.
        #[arg(long)]
        once: bool,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        refresh: f64,
        /// Read every VM from a Prometheus server's HTTP API instead of endpoints.
        #[arg(long, value_name = "URL", conflicts_with = "urls")]
        prometheus: Option<String>,
        /// With --prometheus: label matchers choosing VMs, e.g. '{host=~"a|b"}'.
        #[arg(long = "match", value_name = "SELECTOR", requires = "prometheus")]
        selector: Option<String>,
        /// Logging mode, as kvm_stat -l: a line of per-interval increases per refresh.
        #[arg(short = 'l', long, conflicts_with = "once")]
        log: bool,
        /// Logging mode with comma-separated values.
        #[arg(long, conflicts_with = "once")]
        csv: bool,
        /// Leave out lines (--log) or rows (--once) whose values are all zero.
        #[arg(short = 'z', long)]
        skip_zero: bool,
        /// Only log fields whose name (e.g. demo.exits_io) matches this regex.
        #[arg(long, value_name = "REGEX")]
        fields: Option<String>,
    },
    /// Prometheus service discovery of this host's VMs.
    #[command(subcommand)]
    Sd(SdCommand),
    /// Validate a configuration and print it resolved.
    Check {
        /// The TOML configuration.
        config: PathBuf,
    },
    /// Run the example external hypercall backend (a key-value store) for a
    /// `[[hypercall.service]]` of kind "external"; it reconnects until SIGINT/SIGTERM.
    Backend {
        /// The service's socket.
        #[arg(long)]
        socket: PathBuf,
        /// relay (the VMM forwards each call) or direct (the backend serves a queue itself).
        #[arg(long, default_value = "relay")]
        mode: String,
    },
    /// Raise a device's interrupt from this process: fetch the vector's eventfd from the
    /// device's socket (`socket` in its `[[device]]` table) and write it.
    IrqTrigger {
        /// The device's socket.
        #[arg(long)]
        socket: PathBuf,
        /// The vector.
        #[arg(long)]
        vector: u32,
        /// How many times to write the eventfd.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Serve a kvmbus device model to a vfio-user client from this process (socket
    /// created 0600; clients of another uid are refused; one client at a time).
    DeviceServer {
        /// The socket to create.
        #[arg(long)]
        socket: PathBuf,
        /// The device model: irq-test.
        #[arg(long)]
        device: String,
        /// irq-test: MSI-X vectors.
        #[arg(long, default_value_t = 8)]
        msix_vectors: u16,
        /// irq-test: MSI vectors (power of two, 1..=32).
        #[arg(long, default_value_t = 4)]
        msi_vectors: u16,
        /// irq-test: add BAR4, 4 KiB of shared memory handed over as an mmap-able region.
        #[arg(long)]
        shared_bar: bool,
    },
    /// Write a built-in guest's multiboot ELF image to a file (to boot it elsewhere, e.g. QEMU).
    Image {
        /// The built-in's name (`kvmbus image --list` lists them).
        #[arg(required_unless_present = "list")]
        name: Option<String>,
        /// Where to write it.
        #[arg(required_unless_present = "list")]
        output: Option<PathBuf>,
        /// List the built-in guests.
        #[arg(long)]
        list: bool,
    },
}

#[derive(Subcommand)]
enum SdCommand {
    /// Serve the SD directory's `<vm>.json` files for Prometheus' `http_sd_configs`
    /// until SIGINT/SIGTERM.
    Serve {
        /// The directory VMs register in (`[metrics] sd_dir`).
        #[arg(long)]
        dir: PathBuf,
        /// Address to serve on; loopback unless another address is given here.
        #[arg(long, value_name = "ADDR", default_value = monitor::SD_DEFAULT_LISTEN)]
        listen: SocketAddr,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            tui,
            metrics,
            sd_dir,
            metrics_out,
            sync_teardown,
        } => run(config, tui, metrics, sd_dir, metrics_out, sync_teardown),
        Command::Check { config } => check(config),
        Command::Sd(SdCommand::Serve { dir, listen }) => sd_serve(dir, listen),
        Command::Top {
            urls,
            once,
            refresh,
            prometheus,
            selector,
            log,
            csv,
            skip_zero,
            fields,
        } => top(TopArgs {
            urls,
            once,
            refresh,
            prometheus,
            selector,
            log: log || csv,
            csv,
            skip_zero,
            fields,
        }),
        Command::Image { name, output, list } => image(name, output, list),
        Command::Backend { socket, mode } => backend(socket, &mode),
        Command::IrqTrigger {
            socket,
            vector,
            count,
        } => irq_trigger(&socket, vector, count),
        Command::DeviceServer {
            socket,
            device,
            msix_vectors,
            msi_vectors,
            shared_bar,
        } => device_server(&socket, &device, msix_vectors, msi_vectors, shared_bar),
    }
}

fn load(path: &std::path::Path) -> Result<Config, i32> {
    config::load(path).map_err(|e| {
        eprintln!("kvmbus: {e}");
        exit_code::CONFIG
    })
}

/// Prints an error and returns the exit code its kind maps to.
fn fail(e: &Error) -> i32 {
    eprintln!("kvmbus: {e}");
    match e {
        Error::Config(_) => exit_code::CONFIG,
        Error::KvmUnavailable(_) => exit_code::NO_KVM,
        _ => exit_code::VMM_ERROR,
    }
}

/// [`fail`], unless a stop signal came first: building the VM (a vfio-user device
/// waiting for its server) ends early on one, and the exit is then the signal's.
fn fail_unless_stopped(e: &Error) -> i32 {
    match monitor::stop_signal() {
        Some(n) => {
            let reason = vmm_core::control::StopReason::Signal(n);
            eprintln!("kvmbus: {} while starting ({e})", reason.describe());
            reason.exit_code()
        }
        None => fail(e),
    }
}

fn run(
    path: PathBuf,
    tui: bool,
    metrics: Option<SocketAddr>,
    sd_dir: Option<PathBuf>,
    metrics_out: Option<PathBuf>,
    sync_teardown: bool,
) -> i32 {
    vmm_core::startup::mark("main");
    // From here on a stop signal is caught and queued: one that arrives while the VM is
    // being built stops it as soon as it runs (exit 128+n, sockets removed), instead of
    // killing the process half-built.
    if let Err(e) = monitor::stop_on_signals() {
        eprintln!("kvmbus: signals: {e}");
        return exit_code::VMM_ERROR;
    }
    let config = match load(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    vmm_core::startup::mark("config loaded");
    let listen = metrics.or(config.metrics_listen);
    // The file is created now, so that a path that cannot be written fails before the
    // VM runs rather than after.
    if let Some(p) = &metrics_out {
        if let Err(e) = std::fs::File::create(p) {
            eprintln!("kvmbus: --metrics-out {}: {e}", p.display());
            return exit_code::VMM_ERROR;
        }
    }
    // Metrics are recorded when something reads them: an endpoint, the dashboard or
    // the file written at the end.
    let exporter = if listen.is_some() || tui || metrics_out.is_some() {
        match monitor::Exporter::install(listen) {
            Ok(e) => Some(e),
            Err(e) => {
                eprintln!("kvmbus: metrics: {e}");
                return exit_code::VMM_ERROR;
            }
        }
    } else {
        None
    };
    vmm_core::startup::mark("exporter bound");
    if let Some(addr) = exporter.as_ref().and_then(|e| e.local_addr()) {
        eprintln!("kvmbus: metrics at http://{addr}/metrics");
    }
    let mut config = config;
    let mut serial_note = None;
    if tui {
        // The dashboard owns the terminal: guest serial output and logs go to files.
        let base =
            std::env::temp_dir().join(format!("kvmbus-{}-{}", config.name, std::process::id()));
        if config.serial == SerialOutput::Stdout {
            let p = base.with_extension("serial");
            serial_note = Some(p.clone());
            config.serial = SerialOutput::File(p);
        }
        let log = base.with_extension("log");
        match std::fs::File::create(&log) {
            Ok(f) => vmm_core::logger::init(Some(Box::new(f))),
            Err(_) => vmm_core::logger::init(None),
        }
    } else {
        vmm_core::logger::init(None);
    }
    vmm_core::startup::mark("logger");
    // The machine reboots on a guest's reset when `[vm] on_reset = "reboot"`.
    let machine = std::sync::Arc::new(Machine::new(config));
    let vm = match machine.build() {
        Ok(vm) => vm,
        // What the attempt recorded (e.g. a vfio-user server's refusal) is still written.
        Err(e) => {
            let code = fail_unless_stopped(&e);
            return metrics_out_written(&metrics_out, &exporter).unwrap_or(code);
        }
    };
    // Registered once the VM exists; the file goes when `sd` drops, on every way out.
    let sd = match sd_register(sd_dir, &vm.config, &exporter) {
        Ok(sd) => sd,
        Err(code) => return code,
    };
    let dashboard = match (&exporter, tui) {
        (Some(exp), true) => Some(spawn_dashboard(exp.clone(), machine.clone())),
        _ => None,
    };
    let opts = RunOptions {
        timed_exits: exporter.is_some(),
        kvm_stats_period: exporter
            .is_some()
            .then(|| std::time::Duration::from_secs(1)),
        async_teardown: !sync_teardown,
    };
    let result = machine.run(vm, &opts);
    if let Some(Err(e)) = sd.as_ref().map(monitor::SdRegistration::remove) {
        eprintln!("kvmbus: {e}");
    }
    if let Some((stop, thread)) = dashboard {
        let _ = stop.send(());
        if let Ok(Err(e)) = thread.join() {
            eprintln!("kvmbus: dashboard: {e}");
        }
    }
    if let Some(p) = serial_note {
        eprintln!("kvmbus: guest serial output is in {}", p.display());
    }
    vmm_core::startup::mark("run returned");
    if let Some(code) = metrics_out_written(&metrics_out, &exporter) {
        return code;
    }
    match result {
        Ok(reason) => {
            let code = reason.exit_code();
            if !matches!(
                reason,
                vmm_core::control::StopReason::DebugExit(_)
                    | vmm_core::control::StopReason::PowerOff
                    | vmm_core::control::StopReason::Quit
            ) {
                eprintln!("kvmbus: {}", reason.describe());
            }
            code
        }
        Err(e) => fail_unless_stopped(&e),
    }
}

/// Writes the final metrics to the `--metrics-out` file, if one was asked for; the exit
/// code when that fails (said on stderr).
fn metrics_out_written(
    path: &Option<PathBuf>,
    exporter: &Option<monitor::Exporter>,
) -> Option<i32> {
    let (Some(p), Some(exp)) = (path, exporter) else {
        return None;
    };
    exp.write_to(p).err().map(|e| {
        eprintln!("kvmbus: --metrics-out {}: {e}", p.display());
        exit_code::VMM_ERROR
    })
}

/// Writes `<dir>/<vm>.json` for the metrics endpoint when `--sd-dir` or `[metrics] sd_dir`
/// names a directory (the flag wins).
fn sd_register(
    flag: Option<PathBuf>,
    c: &Config,
    exporter: &Option<monitor::Exporter>,
) -> Result<Option<monitor::SdRegistration>, i32> {
    let from_file = flag.is_none();
    let Some(dir) = flag.or_else(|| c.metrics_sd_dir.clone()) else {
        return Ok(None);
    };
    let Some(addr) = exporter.as_ref().and_then(|e| e.local_addr()) else {
        if from_file {
            let (line, col) = c.places.metrics_sd_dir;
            eprintln!(
                "kvmbus: {}:{line}:{col}: key 'sd_dir' in [metrics] needs a metrics endpoint \
                 ('listen' in [metrics] or --metrics)",
                c.path.display()
            );
        } else {
            eprintln!("kvmbus: --sd-dir needs a metrics endpoint (--metrics or [metrics] listen)");
        }
        return Err(exit_code::CONFIG);
    };
    let target = monitor::sd_target(addr);
    let vcpus = c.vcpus.to_string();
    match monitor::SdRegistration::create(&dir, &c.name, &target, &[("vcpus", &vcpus)]) {
        Ok(reg) => Ok(Some(reg)),
        Err(e) => {
            eprintln!("kvmbus: {e}");
            Err(exit_code::VMM_ERROR)
        }
    }
}

/// Runs the in-process dashboard on its own thread; quitting it stops the VM.
fn spawn_dashboard(
    exporter: monitor::Exporter,
    machine: std::sync::Arc<Machine>,
) -> (
    crossbeam_channel::Sender<()>,
    std::thread::JoinHandle<monitor::Result<()>>,
) {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let thread = std::thread::spawn(move || {
        let r = monitor::run_tui(exporter.into(), monitor::TuiOptions::default(), rx);
        machine.request_stop(vmm_core::control::StopReason::Quit);
        r
    });
    (tx, thread)
}

/// `kvmbus top`'s arguments.
struct TopArgs {
    urls: Vec<String>,
    once: bool,
    refresh: f64,
    prometheus: Option<String>,
    selector: Option<String>,
    log: bool,
    csv: bool,
    skip_zero: bool,
    fields: Option<String>,
}

fn top(a: TopArgs) -> i32 {
    let source = match &a.prometheus {
        Some(url) => monitor::Source::prometheus(url, a.selector.as_deref()),
        None if a.urls.is_empty() => monitor::Source::http(vec![monitor::DEFAULT_LISTEN.into()]),
        None => monitor::Source::http(a.urls),
    };
    let fields = match a.fields.as_deref().map(monitor::Regex::new).transpose() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("kvmbus: --fields: {e}");
            return exit_code::CONFIG;
        }
    };
    let source = match source {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kvmbus: {e}");
            return exit_code::CONFIG;
        }
    };
    let refresh = std::time::Duration::from_secs_f64(a.refresh.clamp(0.1, 3600.0));
    if a.log {
        let opts = monitor::LogOptions {
            interval: refresh,
            csv: a.csv,
            skip_zero: a.skip_zero,
            fields,
            lines: None,
        };
        let stop = match monitor::stop_on_signals() {
            Ok(rx) => rx,
            Err(e) => {
                eprintln!("kvmbus: {e}");
                return exit_code::VMM_ERROR;
            }
        };
        return match monitor::run_log(&source, &opts, &mut std::io::stdout(), &stop) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("kvmbus: {e}");
                exit_code::VMM_ERROR
            }
        };
    }
    if a.once {
        let interval = std::time::Duration::from_secs(1);
        return match monitor::snapshot_text_opts(&source, interval, a.skip_zero) {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(e) => {
                eprintln!("kvmbus: {e}");
                exit_code::VMM_ERROR
            }
        };
    }
    let signals = match monitor::stop_on_signals() {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("kvmbus: {e}");
            return exit_code::VMM_ERROR;
        }
    };
    // SIGHUP (the terminal went away), SIGINT or SIGTERM stop the dashboard. If it does
    // not return within 2 s (input from a hung-up terminal can keep it from ever seeing
    // the stop), the process exits anyway rather than spin on a dead terminal.
    let (stop_tx, stop) = crossbeam_channel::bounded::<()>(1);
    std::thread::spawn(move || {
        if signals.recv().is_ok() {
            let _ = stop_tx.send(());
            std::thread::sleep(std::time::Duration::from_secs(2));
            std::process::exit(exit_code::SIGNAL_BASE + libc::SIGHUP);
        }
    });
    let opts = monitor::TuiOptions { refresh };
    match monitor::run_tui(source, opts, stop) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("kvmbus: {e}");
            exit_code::VMM_ERROR
        }
    }
}

fn sd_serve(dir: PathBuf, listen: SocketAddr) -> i32 {
    let signals = match monitor::stop_on_signals() {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("kvmbus: {e}");
            return exit_code::VMM_ERROR;
        }
    };
    match monitor::serve_sd(dir, listen) {
        Ok(addr) => eprintln!("kvmbus: serving http_sd targets on http://{addr}/targets"),
        Err(e) => {
            eprintln!("kvmbus: {e}");
            return exit_code::VMM_ERROR;
        }
    }
    let _ = signals.recv();
    0
}

fn check(path: PathBuf) -> i32 {
    let config = match load(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let kvm_note = match vm::open_kvm() {
        Ok(kvm) => match vm::check_vcpus(&config, &kvm) {
            Ok(()) => format!("ok (KVM allows {} vCPUs)", kvm.get_max_vcpus()),
            Err(e) => return fail(&e),
        },
        Err(e) => format!("not checked: {e}"),
    };
    // Load the image into scratch memory: catches bad images and too little memory.
    let scratch = match vm_memory::GuestMemoryMmap::<()>::from_ranges(&[(
        vm_memory::GuestAddress(0),
        (config.memory_mib << 20) as usize,
    )]) {
        Ok(m) => m,
        Err(e) => return fail(&Error::Memory(e.to_string())),
    };
    let loaded = match vm::load_guest(&config, &scratch) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    print!("{}", describe(&config, loaded.entry, &kvm_note));
    0
}

fn describe(c: &Config, entry: u64, kvm_note: &str) -> String {
    let mut s = String::new();
    s += &format!("config:      {}\n", c.path.display());
    s += &format!(
        "vm:          name={} vcpus={} memory={} MiB\n",
        c.name, c.vcpus, c.memory_mib
    );
    s += &format!("kvm:         {kvm_note}\n");
    s += &format!(
        "boot:        {:?} {} (entry {entry:#x}) cmdline='{}'\n",
        c.boot.kind, c.boot.image, c.boot.cmdline
    );
    let serial = match &c.serial {
        SerialOutput::Stdout => "stdout".to_string(),
        SerialOutput::None => "none".to_string(),
        SerialOutput::File(p) => format!("file:{}", p.display()),
    };
    s += &format!("serial:      {serial}\n");
    s += &format!(
        "metrics:     {}{}\n",
        c.metrics_listen
            .map_or("off".to_string(), |a| a.to_string()),
        c.metrics_sd_dir
            .as_ref()
            .map_or(String::new(), |d| format!(" sd_dir={}", d.display()))
    );
    s += &format!(
        "pci:         ecam_base={:#x} msi_delivery={}\n",
        c.ecam_base,
        if c.msi_signal { "signal-msi" } else { "irqfd" }
    );
    let platform: Vec<&str> = c.platform.iter().map(|p| p.name()).collect();
    s += &format!("platform:    {}\n", platform.join(", "));
    for d in &c.devices {
        s += &format!(
            "device:      {} at {}: {:?}\n",
            d.spec.kind(),
            d.bdf,
            d.spec
        );
    }
    for h in &c.hypercall.services {
        s += &format!("hypercall:   {h:?}\n");
    }
    s
}

fn backend(socket: PathBuf, mode: &str) -> i32 {
    let mode = match mode {
        "relay" => hypercall_gw::BackendMode::Relay,
        "direct" => hypercall_gw::BackendMode::Direct,
        m => {
            eprintln!("kvmbus: --mode is '{m}', expected 'relay' or 'direct'");
            return exit_code::CONFIG;
        }
    };
    vmm_core::logger::init(None);
    let opts = hypercall_gw::BackendOptions::new(socket, mode);
    let stop = opts.stop.clone();
    match monitor::stop_on_signals() {
        Ok(rx) => {
            std::thread::spawn(move || {
                let _ = rx.recv();
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            });
        }
        Err(e) => {
            eprintln!("kvmbus: {e}");
            return exit_code::VMM_ERROR;
        }
    }
    match hypercall_gw::run_backend(&opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("kvmbus: backend: {e}");
            exit_code::VMM_ERROR
        }
    }
}

fn irq_trigger(socket: &std::path::Path, vector: u32, count: u32) -> i32 {
    use std::io::Write;
    let mut fd = match vmm_core::devices::irq_socket::request(socket, vector) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    for _ in 0..count {
        if let Err(e) = fd.write_all(&1u64.to_ne_bytes()) {
            eprintln!("kvmbus: writing the eventfd: {e}");
            return exit_code::VMM_ERROR;
        }
    }
    0
}

fn image(name: Option<String>, output: Option<PathBuf>, list: bool) -> i32 {
    if list {
        for n in vmm_core::builtin::names() {
            println!("{n}");
        }
        return 0;
    }
    let (Some(name), Some(output)) = (name, output) else {
        return exit_code::CONFIG;
    };
    let Some(img) = vmm_core::builtin::image(&name) else {
        eprintln!(
            "kvmbus: no built-in guest '{name}' (have: {})",
            vmm_core::builtin::names().join(", ")
        );
        return exit_code::CONFIG;
    };
    match std::fs::write(&output, img) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("kvmbus: cannot write {}: {e}", output.display());
            exit_code::VMM_ERROR
        }
    }
}

fn device_server(
    socket: &std::path::Path,
    device: &str,
    msix: u16,
    msi: u16,
    shared_bar: bool,
) -> i32 {
    use vmm_core::devices::vfio_user::{self, server};
    vmm_core::logger::init(None);
    let served = match device {
        "irq-test" => vfio_user::served_irq_test(msix, msi, shared_bar),
        d => {
            eprintln!("kvmbus: --device is '{d}', expected 'irq-test'");
            return exit_code::CONFIG;
        }
    };
    let served = match served {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let listener = match server::listen(socket) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let mut srv = server::Server::new(served);
    match srv.run(&listener) {
        Ok(()) => 0,
        Err(e) => fail(&e),
    }
}
