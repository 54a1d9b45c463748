//! `[pc_testdev] enabled = true`: QEMU's `pc-testdev` (scratch, flush-page and IRQ-line
//! ports, the iomem window at 0xFF000000). Off unless enabled, as QEMU adds it only with
//! `-device pc-testdev`: a guest that does not expect it keeps those ports and addresses
//! unclaimed.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::{ConfigError, ParseCx, Value};
use crate::devices::pc_testdev::{PcTestdev, IRQ_LINES};
use crate::devices::registry::PlatformSpec;
use crate::devices::wiring::Wiring;
use crate::Result;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    enabled: Option<bool>,
}

/// pc-testdev is present.
#[derive(Debug)]
pub struct PcTestdevSpec;

/// Parses `[pc_testdev]`; absent or `enabled = false`: no device.
pub fn parse(
    cx: &ParseCx,
    v: Option<Value<'_>>,
) -> std::result::Result<Option<Arc<dyn PlatformSpec>>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let raw: Raw = cx.deserialize(v)?;
    Ok(raw
        .enabled
        .unwrap_or(false)
        .then(|| Arc::new(PcTestdevSpec) as Arc<dyn PlatformSpec>))
}

impl PlatformSpec for PcTestdevSpec {
    fn name(&self) -> &'static str {
        "pc-testdev"
    }

    fn build(&self, w: &mut Wiring<'_>) -> Result<()> {
        let lines = (0..IRQ_LINES as u32).map(|gsi| w.lines.line(gsi)).collect();
        PcTestdev::new(w.ram.memory.clone(), lines).attach(w.pio, w.mmio)
    }
}
