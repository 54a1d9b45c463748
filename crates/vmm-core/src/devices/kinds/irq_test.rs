//! `[[device]] kind = "irq-test"`: the MSI-X/MSI test function (`intx = true` adds
//! INTA#, a level on the slot's I/O APIC input).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pci_emu::{Bdf, PciFunction};
use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigError, ParseCx, Value};
use crate::devices::irq_socket;
use crate::devices::irq_test::IrqTest;
use crate::devices::registry::PciDeviceSpec;
use crate::devices::wiring::{intx_gsi, Wiring};
use crate::Result;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    msix_vectors: Option<Spanned<i64>>,
    msi_vectors: Option<Spanned<i64>>,
    socket: Option<Spanned<String>>,
    intx: Option<Spanned<bool>>,
}

/// The irq-test device's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqTestSpec {
    /// MSI-X vectors (1..=2048).
    pub msix_vectors: u16,
    /// MSI vectors (power of two, 1..=32).
    pub msi_vectors: u16,
    /// A Unix socket that hands out the vectors' eventfds to other processes.
    pub socket: Option<PathBuf>,
    /// INTA#, a level on the slot's I/O APIC input (the INTX register drives it).
    pub intx: bool,
}

/// Parses a `[[device]]` table of kind "irq-test".
pub fn parse(
    cx: &ParseCx,
    v: Value<'_>,
) -> std::result::Result<Arc<dyn PciDeviceSpec>, ConfigError> {
    let raw: Raw = cx.deserialize(v)?;
    let t = "[device]";
    Ok(Arc::new(IrqTestSpec {
        msix_vectors: cx.int(&raw.msix_vectors, "msix_vectors", t, 1..=2048, 8)? as u16,
        msi_vectors: cx.pow2(&raw.msi_vectors, "msi_vectors", t, 1..=32, 4)? as u16,
        socket: raw.socket.map(|s| cx.path(s.get_ref())),
        intx: raw.intx.is_some_and(|v| *v.get_ref()),
    }))
}

impl PciDeviceSpec for IrqTestSpec {
    fn kind(&self) -> &'static str {
        "irq-test"
    }

    fn vectors(&self) -> u32 {
        self.msix_vectors.max(self.msi_vectors) as u32
    }

    fn sockets(&self) -> Vec<PathBuf> {
        self.socket.iter().cloned().collect()
    }

    fn build(&self, bdf: Bdf, w: &mut Wiring<'_>) -> Result<Arc<Mutex<dyn PciFunction>>> {
        let handles = w
            .router
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add_device(bdf, "irq-test", self.vectors() as u16)
            .map_err(crate::Error::from)?;
        if let Some(path) = &self.socket {
            let server = irq_socket::serve(path, "irq-test", handles.clone())?;
            w.services
                .on_stop(format!("irq-test {bdf} socket"), move || server.stop());
        }
        let dev = IrqTest::new(
            self.msix_vectors,
            self.msi_vectors,
            handles,
            w.chip.clone(),
            w.injector.clone(),
        )?;
        let dev = if self.intx {
            let gsi = intx_gsi(bdf, 1);
            dev.with_intx(w.lines.line(gsi), Some(gsi as u8))
        } else {
            dev
        };
        let firing = dev.stopper();
        w.services
            .on_stop(format!("irq-test {bdf}"), move || firing.stop());
        Ok(Arc::new(Mutex::new(dev)))
    }
}
