//! `[[device]] kind = "pci-testdev"`: QEMU's PCI test device (1b36:0005). It has no
//! options of its own (QEMU's optional `membar` is not implemented).

use std::sync::{Arc, Mutex};

use pci_emu::{Bdf, PciFunction};
use serde::Deserialize;

use crate::config::{ConfigError, ParseCx, Value};
use crate::devices::pci_testdev::PciTestdev;
use crate::devices::registry::PciDeviceSpec;
use crate::devices::wiring::Wiring;
use crate::Result;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {}

/// The pci-testdev's (empty) configuration.
#[derive(Debug)]
pub struct PciTestdevSpec;

/// Parses a `[[device]]` table of kind "pci-testdev".
pub fn parse(
    cx: &ParseCx,
    v: Value<'_>,
) -> std::result::Result<Arc<dyn PciDeviceSpec>, ConfigError> {
    let Raw {} = cx.deserialize(v)?;
    Ok(Arc::new(PciTestdevSpec))
}

impl PciDeviceSpec for PciTestdevSpec {
    fn kind(&self) -> &'static str {
        "pci-testdev"
    }

    fn build(&self, _bdf: Bdf, _w: &mut Wiring<'_>) -> Result<Arc<Mutex<dyn PciFunction>>> {
        Ok(Arc::new(Mutex::new(PciTestdev::new()?)))
    }
}
