//! Parsing TOML text into a [`Config`], with every error placed at file:line:column.
//!
//! The document is split by top-level key: the core sections (`[vm]`, `[boot]`,
//! `[serial]`, `[metrics]`, `[pci]`) are read here, `[hypercall]` by
//! [`super::hypercall`], every `[[device]]` by its kind's parser and every platform
//! device's section by its parser, both found through the device
//! [registry](crate::devices::registry). The rules that span sections run last, in
//! [`super::rules`]. `kvmbus check` and `kvmbus run` both call [`load`], so a
//! configuration that `check` accepts never fails at `run` with a config problem.

use std::net::SocketAddr;
use std::path::Path;

use pci_emu::Bdf;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::cx::{ParseCx, Value};
use super::schema::{BootKind, BootSource, Config, ModuleSource, OnReset, Places, SerialOutput};
use super::ConfigError;
use crate::devices::registry;

/// Default ECAM window base.
pub const DEFAULT_ECAM_BASE: u64 = 0xB000_0000;
/// The most memory a 32-bit guest layout supports below the PCI hole.
const MAX_MEMORY_MIB: u64 = 2048;
/// The top-level sections read here.
const CORE: &[&str] = &["vm", "boot", "serial", "metrics", "pci"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCore {
    vm: Option<RawVm>,
    boot: Option<Spanned<RawBoot>>,
    serial: Option<RawSerial>,
    metrics: Option<RawMetrics>,
    pci: Option<RawPci>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVm {
    name: Option<Spanned<String>>,
    vcpus: Option<Spanned<i64>>,
    memory_mib: Option<Spanned<i64>>,
    on_reset: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoot {
    kind: Spanned<String>,
    image: Spanned<String>,
    cmdline: Option<Spanned<String>>,
    modules: Option<Vec<Spanned<RawModule>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModule {
    path: Spanned<String>,
    cmdline: Option<Spanned<String>>,
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
    sd_dir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPci {
    ecam_base: Option<Spanned<i64>>,
    msi_delivery: Option<Spanned<String>>,
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read the configuration: {e}"),
    })?;
    let source = match std::str::from_utf8(&bytes) {
        Ok(s) => s,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let text = std::str::from_utf8(good).unwrap_or_default();
            return Err(ConfigError::at(
                path,
                text,
                text.len(),
                format!(
                    "invalid UTF-8 (byte {:#04x}); the configuration must be UTF-8 text",
                    bytes[e.valid_up_to()]
                ),
            ));
        }
    };
    parse(path, source)
}

/// The top-level sections of a document, split by who reads them.
struct Sections<'i> {
    core: DeTable<'i>,
    core_span: std::ops::Range<usize>,
    devices: Vec<Value<'i>>,
    hypercall: Option<Value<'i>>,
    platform: Vec<(String, Value<'i>)>,
}

fn split<'i>(cx: &ParseCx, source: &'i str) -> Result<Sections<'i>, ConfigError> {
    let doc = DeTable::parse(source).map_err(|e| serde_error(cx.file, source, &e))?;
    let core_span = doc.span();
    let mut s = Sections {
        core: DeTable::new(),
        core_span,
        devices: Vec::new(),
        hypercall: None,
        platform: Vec::new(),
    };
    for (key, value) in doc.into_inner() {
        let name = key.get_ref().to_string();
        match name.as_str() {
            "device" => match value.into_inner() {
                DeValue::Array(items) => s.devices.extend(items),
                _ => {
                    return cx.err(
                        key.span(),
                        "key 'device' must be an array of tables: [[device]]".into(),
                    )
                }
            },
            "hypercall" => s.hypercall = Some(value),
            n if CORE.contains(&n) => {
                s.core.insert(key, value);
            }
            n if registry::is_platform_section(n) => s.platform.push((name, value)),
            n => return cx.err(key.span(), format!("unknown key '{n}' in the top level")),
        }
    }
    Ok(s)
}

/// Parses configuration text; `path` is used for messages and relative paths.
pub fn parse(path: &Path, source: &str) -> Result<Config, ConfigError> {
    let cx = ParseCx { file: path, source };
    let sections = split(&cx, source)?;
    let raw: RawCore = cx.deserialize(Spanned::new(
        sections.core_span.clone(),
        DeValue::Table(sections.core),
    ))?;
    let mut places = Places::default();

    let vm = raw.vm.unwrap_or_default();
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
    let on_reset = cx.choice(
        vm.on_reset.as_ref(),
        "on_reset",
        "vm",
        &[("exit", OnReset::Exit), ("reboot", OnReset::Reboot)],
        OnReset::Exit,
    )?;

    let Some(boot) = raw.boot else {
        return cx.err(0..0, "missing table [boot] (kind and image)".into());
    };
    let boot = boot.into_inner();
    let (boot, image_place) = boot_source(&cx, boot)?;
    places.image = image_place;
    let serial = serial(&cx, raw.serial)?;

    let mut metrics_listen = None;
    let (listen, sd_dir) = raw.metrics.map_or((None, None), |m| (m.listen, m.sd_dir));
    let mut metrics_sd_dir = None;
    if let Some(d) = sd_dir {
        places.metrics_sd_dir = cx.place(&d);
        if d.get_ref().trim().is_empty() {
            return cx.err(
                d.span(),
                "key 'sd_dir' in [metrics] is empty, expected a directory".into(),
            );
        }
        metrics_sd_dir = Some(cx.path(d.get_ref()));
    }
    if let Some(l) = listen {
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
    let (ecam_base, msi_signal) = pci(&cx, raw.pci)?;

    let (hypercall, services) = super::hypercall::parse(&cx, sections.hypercall)?;
    let mut platform = Vec::new();
    for kind in registry::PLATFORM {
        let section = sections
            .platform
            .iter()
            .position(|(n, _)| n == kind.section);
        let value = section.map(|i| sections.platform[i].1.clone());
        if let Some(spec) = (kind.parse)(&cx, value)? {
            platform.push(spec);
        }
    }
    let devices = super::devices::parse(&cx, sections.devices)?;
    let (specs, kinds): (Vec<_>, Vec<_>) = devices.into_iter().unzip();

    let config = Config {
        path: path.to_path_buf(),
        name,
        vcpus,
        memory_mib: memory_mib as u64,
        on_reset,
        boot,
        serial,
        metrics_listen,
        metrics_sd_dir,
        ecam_base,
        msi_signal,
        platform,
        devices: specs,
        hypercall,
        places,
    };
    super::rules::check(&cx, &config, &kinds, &services)?;
    Ok(config)
}

fn boot_source(cx: &ParseCx, boot: RawBoot) -> Result<(BootSource, (usize, usize)), ConfigError> {
    let kind = cx.choice(
        Some(&boot.kind),
        "kind",
        "boot",
        &[
            ("multiboot", BootKind::Multiboot),
            ("builtin", BootKind::Builtin),
        ],
        BootKind::Multiboot,
    )?;
    let place = cx.place(&boot.image);
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
            (BootKind::Multiboot, None) => cx.path(image).display().to_string(),
        };
    // The kernel sees "<image> <cmdline>", as QEMU passes it (see loader::multiboot).
    let name_len = crate::boot::image_name(kind, &image).len() + 1;
    let cmdline = match boot.cmdline {
        None => String::new(),
        Some(c) if name_len + c.get_ref().len() >= crate::loader::CMDLINE_MAX => {
            return cx.err(
                c.span(),
                format!(
                    "key 'cmdline' in [boot] is {} bytes, at most {} fit after the image name",
                    c.get_ref().len(),
                    (crate::loader::CMDLINE_MAX - 1).saturating_sub(name_len)
                ),
            )
        }
        Some(c) => c.into_inner(),
    };
    let mut modules = Vec::new();
    for m in boot.modules.unwrap_or_default() {
        let place = cx.place(&m);
        let m = m.into_inner();
        if m.path.get_ref().is_empty() {
            return cx.err(
                m.path.span(),
                "key 'path' in [boot] modules is empty".into(),
            );
        }
        let path = cx.path(m.path.get_ref());
        if let Err(e) = std::fs::metadata(&path).and_then(|md| {
            md.is_file()
                .then_some(())
                .ok_or_else(|| std::io::Error::other("not a file"))
        }) {
            return cx.err(
                m.path.span(),
                format!(
                    "key 'path' in [boot] modules: cannot read {}: {e}",
                    path.display()
                ),
            );
        }
        modules.push(ModuleSource {
            path: path.display().to_string(),
            cmdline: m.cmdline.map(|c| c.into_inner()).unwrap_or_default(),
            place,
        });
    }
    Ok((
        BootSource {
            kind,
            image,
            cmdline,
            modules,
        },
        place,
    ))
}

fn serial(cx: &ParseCx, raw: Option<RawSerial>) -> Result<SerialOutput, ConfigError> {
    let Some(s) = raw else {
        return Ok(SerialOutput::Stdout);
    };
    Ok(match s.output.get_ref().as_str() {
        "stdout" => SerialOutput::Stdout,
        "none" => SerialOutput::None,
        o => match o.strip_prefix("file:") {
            Some(p) if !p.is_empty() => SerialOutput::File(cx.path(p)),
            _ => {
                return cx.err(
                    s.output.span(),
                    format!(
                    "key 'output' in [serial] is '{o}', expected 'stdout', 'file:<path>' or 'none'"
                ),
                )
            }
        },
    })
}

fn pci(cx: &ParseCx, raw: Option<RawPci>) -> Result<(u64, bool), ConfigError> {
    let (ecam, delivery) = match raw {
        Some(p) => (p.ecam_base, p.msi_delivery),
        None => (None, None),
    };
    let msi_signal = cx.choice(
        delivery.as_ref(),
        "msi_delivery",
        "pci",
        &[("irqfd", false), ("signal-msi", true)],
        false,
    )?;
    // The memory BAR window runs from MEM_WINDOW_START up to the ECAM base: keep it at
    // least 256 MiB, far more than every device's BARs together.
    let lowest = (crate::pci::MEM_WINDOW_START + (256 << 20)) as i64;
    let ecam_base = cx.int(
        &ecam,
        "ecam_base",
        "pci",
        lowest..=0xE000_0000,
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
    Ok((ecam_base, msi_signal))
}

/// Parses a `bdf` value: bus 0, not the host bridge's 00:00.0.
pub(crate) fn bdf(cx: &ParseCx, b: &Spanned<String>) -> Result<Bdf, ConfigError> {
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
    Ok(bdf)
}

/// Turns serde/toml's error into "file:line:col: ... key 'k' in [table]".
pub(crate) fn serde_error(path: &Path, source: &str, e: &toml::de::Error) -> ConfigError {
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
