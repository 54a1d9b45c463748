//! The one-register platform devices: debug-exit and the POST port. They are always
//! present; debug-exit's ports are QEMU's `isa-debug-exit` properties in
//! `[debug_exit] iobase, iosize` (default 0xf4, 4 ports, as kvm-unit-tests passes QEMU).
//! (Power-off is ACPI's PM1a_CNT: see `kinds/acpi.rs`.)

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigError, ParseCx, Value};
use crate::devices::registry::PlatformSpec;
use crate::devices::wiring::Wiring;
use crate::devices::{DebugExit, DebugExitPorts, PostPort, POST_PORT};
use crate::Result;

/// Which of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacySpec {
    /// QEMU's isa-debug-exit.
    DebugExit(DebugExitPorts),
    /// The POST port 0x80.
    Post,
}

fn always(spec: LegacySpec) -> std::result::Result<Option<Arc<dyn PlatformSpec>>, ConfigError> {
    Ok(Some(Arc::new(spec)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDebugExit {
    iobase: Option<Spanned<i64>>,
    iosize: Option<Spanned<i64>>,
}

/// Ports kvmbus itself maps, which debug-exit may not take: (first, end, owner).
const TAKEN: &[(i64, i64, &str)] = &[
    (0x80, 0x81, "the POST port"),
    (0x3f8, 0x400, "the serial port"),
    (0x510, 0x51c, "fw_cfg"),
    (0x604, 0x606, "the power-off register"),
    (0xcf8, 0xd00, "PCI configuration space"),
    (0xc000, 0x1_0000, "the PCI I/O BAR window"),
];

/// Debug-exit is always present; `[debug_exit]` may move it.
pub fn parse_debug_exit(
    cx: &ParseCx,
    v: Option<Value<'_>>,
) -> std::result::Result<Option<Arc<dyn PlatformSpec>>, ConfigError> {
    let mut ports = DebugExitPorts::default();
    if let Some(v) = v {
        let raw: RawDebugExit = cx.deserialize(v)?;
        let base = cx.int(
            &raw.iobase,
            "iobase",
            "debug_exit",
            0..=0xffff,
            ports.iobase as i64,
        )?;
        let size = cx.int(
            &raw.iosize,
            "iosize",
            "debug_exit",
            1..=16,
            ports.iosize as i64,
        )?;
        let at = raw
            .iobase
            .as_ref()
            .or(raw.iosize.as_ref())
            .map_or(0..0, |s| s.span());
        if base + size > 0x1_0000 {
            return cx.err(
                at,
                format!("key 'iobase' in [debug_exit]: ports {base:#x}+{size} run past 0xffff"),
            );
        }
        if let Some((_, _, owner)) = TAKEN.iter().find(|(s, e, _)| base < *e && *s < base + size) {
            return cx.err(
                at,
                format!("key 'iobase' in [debug_exit]: ports {base:#x}+{size} overlap {owner}"),
            );
        }
        ports = DebugExitPorts {
            iobase: base as u16,
            iosize: size as u16,
        };
    }
    always(LegacySpec::DebugExit(ports))
}

/// The POST port is always present.
pub fn parse_post(
    _cx: &ParseCx,
    _v: Option<Value<'_>>,
) -> std::result::Result<Option<Arc<dyn PlatformSpec>>, ConfigError> {
    always(LegacySpec::Post)
}

impl PlatformSpec for LegacySpec {
    fn name(&self) -> &'static str {
        match self {
            LegacySpec::DebugExit(_) => "debug-exit",
            LegacySpec::Post => "post",
        }
    }

    fn build(&self, w: &mut Wiring<'_>) -> Result<()> {
        let control = w.control.clone();
        match self {
            LegacySpec::DebugExit(p) => w.pio.insert(
                p.iobase as u64,
                p.iosize as u64,
                self.name(),
                Arc::new(DebugExit(control)),
            ),
            LegacySpec::Post => w.pio.insert(
                POST_PORT as u64,
                1,
                self.name(),
                Arc::new(PostPort::default()),
            ),
        }
    }
}
