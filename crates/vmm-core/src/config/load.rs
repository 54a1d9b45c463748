//! Parsing TOML text into a [`Config`], with every error placed at file:line:column.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pci_emu::Bdf;
use serde::Deserialize;
use toml::Spanned;

use super::error::line_col;
use super::schema::{
    BootKind, BootSource, Config, DeviceConfig, DeviceKind, HypercallServiceConfig, Places,
    SerialOutput,
};
use super::ConfigError;

/// Default ECAM window base.
pub const DEFAULT_ECAM_BASE: u64 = 0xB000_0000;
/// The most memory a 32-bit guest layout supports below the PCI hole.
const MAX_MEMORY_MIB: u64 = 2048;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    vm: Option<RawVm>,
    boot: Option<Spanned<RawBoot>>,
    serial: Option<RawSerial>,
    metrics: Option<RawMetrics>,
    pci: Option<RawPci>,
    #[serde(default)]
    device: Vec<Spanned<RawDevice>>,
    hypercall: Option<RawHypercall>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    name: Option<Spanned<String>>,
    vcpus: Option<Spanned<i64>>,
    memory_mib: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoot {
    kind: Spanned<String>,
    image: Spanned<String>,
    #[serde(default)]
    cmdline: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSerial {
    output: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPci {
    ecam_base: Option<Spanned<i64>>,
    msi_delivery: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    kind: Spanned<String>,
    bdf: Option<Spanned<String>>,
    queues: Option<Spanned<i64>>,
    queue_size: Option<Spanned<i64>>,
    msix_vectors: Option<Spanned<i64>>,
    msi_vectors: Option<Spanned<i64>>,
    socket: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHypercall {
    backend_timeout_ms: Option<Spanned<i64>>,
    #[serde(default)]
    service: Vec<Spanned<RawService>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    nr: Spanned<i64>,
    kind: Spanned<String>,
    socket: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    count: Option<Spanned<i64>>,
    queue: Option<Spanned<i64>>,
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read the configuration: {e}"),
    })?;
    let source = String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let bad = e.as_bytes()[good];
        // The prefix is valid UTF-8: place the first bad byte after it.
        let prefix = std::str::from_utf8(&e.as_bytes()[..good]).unwrap_or_default();
        ConfigError::at(
            path,
            prefix,
            good,
            format!("invalid UTF-8 (byte {bad:#04x}); the configuration must be UTF-8 text"),
        )
    })?;
    parse(path, &source)
}

struct Ctx<'a> {
    file: &'a Path,
    source: &'a str,
}

impl Ctx<'_> {
    fn err<T>(&self, span: std::ops::Range<usize>, message: String) -> Result<T, ConfigError> {
        Err(ConfigError::at(self.file, self.source, span.start, message))
    }

    fn place<T>(&self, v: &Spanned<T>) -> (usize, usize) {
        line_col(self.source, v.span().start)
    }

    fn int(
        &self,
        v: &Option<Spanned<i64>>,
        key: &str,
        table: &str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> Result<i64, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) if range.contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => self.err(
                s.span(),
                format!(
                    "key '{key}' in [{table}] is {}, must be {}..={}",
                    s.get_ref(),
                    range.start(),
                    range.end()
                ),
            ),
        }
    }
}

/// Parses configuration text; `path` is used for messages and relative paths.
pub fn parse(path: &Path, source: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(source).map_err(|e| serde_error(path, source, &e))?;
    let cx = Ctx { file: path, source };
    let mut places = Places::default();

    let vm = raw.vm.unwrap_or(RawVm {
        name: None,
        vcpus: None,
        memory_mib: None,
    });
    let name = vm
        .name
        .as_ref()
        .map_or_else(|| "kvmbus".to_string(), |n| n.get_ref().clone());
    if let Some(n) = &vm.name {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return cx.err(
                n.span(),
                "key 'name' in [vm] must be non-empty letters, digits, '-', '_' or '.'".into(),
            );
        }
    }
    let vcpus = cx.int(&vm.vcpus, "vcpus", "vm", 1..=254, 1)? as u32;
    if let Some(v) = &vm.vcpus {
        places.vcpus = cx.place(v);
    }
    let memory_mib = cx.int(
        &vm.memory_mib,
        "memory_mib",
        "vm",
        2..=MAX_MEMORY_MIB as i64,
        128,
    )?;
    if let Some(v) = &vm.memory_mib {
        places.memory_mib = cx.place(v);
    }

    let Some(boot) = raw.boot else {
        return cx.err(0..0, "missing table [boot] (kind and image)".into());
    };
    let boot = boot.into_inner();
    let kind = match boot.kind.get_ref().as_str() {
        "multiboot" => BootKind::Multiboot,
        "builtin" => BootKind::Builtin,
        other => {
            return cx.err(
                boot.kind.span(),
                format!("key 'kind' in [boot] is '{other}', expected 'multiboot' or 'builtin'"),
            )
        }
    };
    places.image = cx.place(&boot.image);
    let image = boot.image.get_ref();
    let image =
        match (kind, image.strip_prefix("builtin:")) {
            (BootKind::Builtin, Some(name)) => {
                if crate::builtin::image(name).is_none() {
                    return cx.err(
                        boot.image.span(),
                        format!(
                        "key 'image' in [boot] names unknown built-in guest '{name}' (have: {})",
                        crate::builtin::names().join(", ")
                    ),
                    );
                }
                name.to_string()
            }
            (BootKind::Builtin, None) => {
                return cx.err(
                    boot.image.span(),
                    "key 'image' in [boot] must be 'builtin:<name>' when kind = 'builtin'".into(),
                )
            }
            (BootKind::Multiboot, Some(_)) => return cx.err(
                boot.image.span(),
                "key 'image' in [boot] is a built-in but kind = 'multiboot' (use kind = 'builtin')"
                    .into(),
            ),
            (BootKind::Multiboot, None) => resolve(path, image).display().to_string(),
        };

    let serial = match raw.serial {
        None => SerialOutput::Stdout,
        Some(s) => match s.output.get_ref().as_str() {
            "stdout" => SerialOutput::Stdout,
            "none" => SerialOutput::None,
            o => match o.strip_prefix("file:") {
                Some(p) if !p.is_empty() => SerialOutput::File(resolve(path, p)),
                _ => {
                    return cx.err(
                        s.output.span(),
                        format!(
                        "key 'output' in [serial] is '{o}', expected 'stdout', 'file:<path>' or 'none'"
                    ),
                    )
                }
            },
        },
    };

    let mut metrics_listen = None;
    if let Some(l) = raw.metrics.and_then(|m| m.listen) {
        places.metrics_listen = cx.place(&l);
        match l.get_ref().parse::<SocketAddr>() {
            Ok(a) => metrics_listen = Some(a),
            Err(_) => {
                return cx.err(
                    l.span(),
                    format!(
                    "key 'listen' in [metrics] is '{}', expected an address like 127.0.0.1:9464",
                    l.get_ref()
                ),
                )
            }
        }
    }

    let (ecam, delivery) = match raw.pci {
        Some(p) => (p.ecam_base, p.msi_delivery),
        None => (None, None),
    };
    let msi_signal = match delivery {
        None => false,
        Some(d) => match d.get_ref().as_str() {
            "irqfd" => false,
            "signal-msi" => true,
            other => {
                return cx.err(
                    d.span(),
                    format!(
                    "key 'msi_delivery' in [pci] is '{other}', expected 'irqfd' or 'signal-msi'"
                ),
                )
            }
        },
    };
    let ecam_base = cx.int(
        &ecam,
        "ecam_base",
        "pci",
        0x8000_0000..=0xE000_0000,
        DEFAULT_ECAM_BASE as i64,
    )? as u64;
    if let Some(e) = &ecam {
        if ecam_base % (1 << 28) != 0 {
            return cx.err(
                e.span(),
                "key 'ecam_base' in [pci] must be 256 MiB aligned".into(),
            );
        }
    }

    let devices = devices(&cx, raw.device)?;
    let (backend_timeout_ms, hypercall_services) = match raw.hypercall {
        None => (1000, Vec::new()),
        Some(h) => (
            cx.int(
                &h.backend_timeout_ms,
                "backend_timeout_ms",
                "hypercall",
                1..=600_000,
                1000,
            )? as u64,
            services(&cx, h.service)?,
        ),
    };

    Ok(Config {
        path: path.to_path_buf(),
        name,
        vcpus,
        memory_mib: memory_mib as u64,
        boot: BootSource {
            kind,
            image,
            cmdline: boot.cmdline,
        },
        serial,
        metrics_listen,
        ecam_base,
        msi_signal,
        devices,
        hypercall_services,
        backend_timeout_ms,
        places,
    })
}

fn devices(cx: &Ctx, raw: Vec<Spanned<RawDevice>>) -> Result<Vec<DeviceConfig>, ConfigError> {
    let mut out = Vec::new();
    let mut seen: HashSet<Bdf> = HashSet::new();
    for d in raw {
        let line = cx.place(&d).0;
        let d = d.into_inner();
        let t = "[device]";
        let only = |allowed: &[&str]| -> Result<(), ConfigError> {
            let present = [
                ("queues", d.queues.as_ref()),
                ("queue_size", d.queue_size.as_ref()),
                ("msix_vectors", d.msix_vectors.as_ref()),
                ("msi_vectors", d.msi_vectors.as_ref()),
            ];
            if let (Some(v), false) = (d.socket.as_ref(), allowed.contains(&"socket")) {
                return cx.err(
                    v.span(),
                    format!(
                        "unknown key 'socket' in [[device]] of kind '{}'",
                        d.kind.get_ref()
                    ),
                );
            }
            for (key, v) in present {
                if let (Some(v), false) = (v, allowed.contains(&key)) {
                    return cx.err(
                        v.span(),
                        format!(
                            "unknown key '{key}' in [[device]] of kind '{}'",
                            d.kind.get_ref()
                        ),
                    );
                }
            }
            Ok(())
        };
        let kind = match d.kind.get_ref().as_str() {
            "hypercall-gateway" => {
                only(&["queues", "queue_size", "msix_vectors"])?;
                let queue_size = cx.int(&d.queue_size, "queue_size", t, 256..=32768, 256)?;
                if !(queue_size as u64).is_power_of_two() {
                    return cx.err(
                        d.queue_size.as_ref().unwrap().span(),
                        "key 'queue_size' in [[device]] must be a power of two".into(),
                    );
                }
                DeviceKind::HypercallGateway {
                    queues: cx.int(&d.queues, "queues", t, 1..=64, 1)? as u16,
                    queue_size: queue_size as u16,
                    msix_vectors: cx.int(&d.msix_vectors, "msix_vectors", t, 1..=2048, 2)? as u16,
                }
            }
            "irq-test" => {
                only(&["msix_vectors", "msi_vectors", "socket"])?;
                let msi = cx.int(&d.msi_vectors, "msi_vectors", t, 1..=32, 4)?;
                if !(msi as u64).is_power_of_two() {
                    return cx.err(
                        d.msi_vectors.as_ref().unwrap().span(),
                        "key 'msi_vectors' in [[device]] must be a power of two".into(),
                    );
                }
                DeviceKind::IrqTest {
                    msix_vectors: cx.int(&d.msix_vectors, "msix_vectors", t, 1..=2048, 8)? as u16,
                    msi_vectors: msi as u16,
                    socket: d.socket.as_ref().map(|s| resolve(cx.file, s.get_ref())),
                }
            }
            other => {
                return cx.err(
                    d.kind.span(),
                    format!(
                        "key 'kind' in [[device]] is '{other}', expected 'hypercall-gateway' or 'irq-test'"
                    ),
                )
            }
        };
        let bdf = match &d.bdf {
            None => None,
            Some(b) => {
                let bdf: Bdf = match b.get_ref().parse() {
                    Ok(v) => v,
                    Err(e) => return cx.err(b.span(), format!("key 'bdf' in [[device]]: {e}")),
                };
                if bdf.bus != 0 || (bdf.device == 0 && bdf.function == 0) {
                    return cx.err(
                        b.span(),
                        format!("key 'bdf' in [[device]] is {bdf}: devices live on bus 00, and 00:00.0 is the host bridge"),
                    );
                }
                if !seen.insert(bdf) {
                    return cx.err(
                        b.span(),
                        format!("key 'bdf' in [[device]] repeats {bdf}, already used above"),
                    );
                }
                Some(bdf)
            }
        };
        if matches!(kind, DeviceKind::HypercallGateway { .. })
            && out
                .iter()
                .any(|o: &DeviceConfig| matches!(o.kind, DeviceKind::HypercallGateway { .. }))
        {
            return cx.err(
                d.kind.span(),
                "a second [[device]] of kind 'hypercall-gateway': the [[hypercall.service]] routes belong to one gateway".into(),
            );
        }
        out.push(DeviceConfig { kind, bdf, line });
    }
    Ok(out)
}

fn services(
    cx: &Ctx,
    raw: Vec<Spanned<RawService>>,
) -> Result<Vec<HypercallServiceConfig>, ConfigError> {
    let mut out: Vec<HypercallServiceConfig> = Vec::new();
    for s in raw {
        let line = cx.place(&s).0;
        let s = s.into_inner();
        let t = "[hypercall.service]";
        let nr = cx.int(&Some(s.nr.clone()), "nr", t, 0x100..=0xFFFF_FFFF, 0)? as u32;
        if out.iter().any(|o| o.nr == nr) {
            return cx.err(
                s.nr.span(),
                format!("key 'nr' in [[hypercall.service]] repeats {nr:#x}, already routed above"),
            );
        }
        let kind = s.kind.get_ref().clone();
        if !matches!(kind.as_str(), "kv" | "echo" | "external") {
            return cx.err(
                s.kind.span(),
                format!("key 'kind' in [[hypercall.service]] is '{kind}', expected 'kv', 'echo' or 'external'"),
            );
        }
        let external = kind == "external";
        if external && s.socket.is_none() {
            return cx.err(
                s.kind.span(),
                "[[hypercall.service]] of kind 'external' needs key 'socket'".into(),
            );
        }
        if !external {
            if let Some(k) = s.socket.as_ref().or(s.mode.as_ref()) {
                return cx.err(
                    k.span(),
                    format!("keys 'socket' and 'mode' in [[hypercall.service]] are for kind 'external', not '{kind}'"),
                );
            }
            if let Some(k) = s.count.as_ref().or(s.queue.as_ref()) {
                return cx.err(
                    k.span(),
                    format!("keys 'count' and 'queue' in [[hypercall.service]] are for kind 'external', not '{kind}'"),
                );
            }
        }
        let count = match kind.as_str() {
            "kv" => 4,
            "echo" => 1,
            _ => cx.int(&s.count, "count", t, 1..=0x1_0000, 1)? as u32,
        };
        let queue = match &s.queue {
            None => None,
            Some(q) => Some(cx.int(&Some(q.clone()), "queue", t, 0..=63, 0)? as u16),
        };
        let direct = s.mode.as_ref().is_some_and(|m| m.get_ref() == "direct");
        if direct != queue.is_some() {
            let span = s.queue.as_ref().map_or(s.kind.span(), |q| q.span());
            return cx.err(
                span,
                "key 'queue' in [[hypercall.service]] goes with mode = 'direct' (the queue handed to the backend), and only with it".into(),
            );
        }
        let end = nr as u64 + count as u64;
        if let Some(o) = out
            .iter()
            .find(|o| (nr as u64) < o.nr as u64 + o.count as u64 && (o.nr as u64) < end)
        {
            return cx.err(
                s.nr.span(),
                format!("[[hypercall.service]] numbers {nr:#x}..{end:#x} overlap those of the service at line {}", o.line),
            );
        }
        if let Some(m) = &s.mode {
            if !matches!(m.get_ref().as_str(), "relay" | "direct") {
                return cx.err(
                    m.span(),
                    format!(
                        "key 'mode' in [[hypercall.service]] is '{}', expected 'relay' or 'direct'",
                        m.get_ref()
                    ),
                );
            }
        }
        out.push(HypercallServiceConfig {
            nr,
            kind,
            socket: s.socket.map(|p| resolve(cx.file, p.get_ref())),
            mode: s.mode.map(|m| m.into_inner()),
            count,
            queue,
            line,
        });
    }
    Ok(out)
}

fn resolve(config: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        return p;
    }
    match config.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
        _ => p,
    }
}

/// Turns serde/toml's error into "file:line:col: ... key 'k' in [table]".
fn serde_error(path: &Path, source: &str, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map_or(0, |s| s.start);
    let table = enclosing_table(source, offset);
    let msg = e.message().trim();
    let message = if let Some(rest) = msg.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or("");
        let expected = rest
            .split_once("expected ")
            .map(|(_, x)| format!(" (expected {})", x.replace('`', "'")))
            .unwrap_or_default();
        format!("unknown key '{key}' in {table}{expected}")
    } else if let Some(rest) = msg.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or("");
        format!("missing key '{key}' in {table}")
    } else {
        match key_at(source, offset) {
            Some(key) => format!("key '{key}' in {table}: {msg}"),
            None => format!("{msg} (in {table})"),
        }
    };
    ConfigError::at(path, source, offset, message)
}

/// The `[table]` or `[[array]]` header above `offset`, or "the top level".
fn enclosing_table(source: &str, offset: usize) -> String {
    let before = &source[..offset.min(source.len())];
    // An error *at* a header line belongs to that header's table.
    let line_end = source[offset.min(source.len())..]
        .find('\n')
        .map_or(source.len(), |i| offset + i);
    for line in source[..line_end].lines().rev() {
        let t = line.trim();
        if t.starts_with('[') {
            return t.split('#').next().unwrap_or(t).trim().to_string();
        }
    }
    let _ = before;
    "the top level".to_string()
}

/// The key of a `key = value` line that contains `offset`.
fn key_at(source: &str, offset: usize) -> Option<String> {
    let offset = offset.min(source.len());
    let start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = source[offset..]
        .find('\n')
        .map_or(source.len(), |i| offset + i);
    let (k, _) = source[start..end].split_once('=')?;
    let k = k.trim().trim_matches('"');
    (!k.is_empty() && !k.starts_with('[')).then(|| k.to_string())
}
