//! The ACPI platform as a registry device: tables in guest memory, the PM1 blocks and PM
//! timer (SCI on GSI 9), the RTC/CMOS (IRQ 8). Always present; no section of its own.
//! PM1a_CNT at 0x604 replaces the old power-off register: 0x2000 (SLP_EN with QEMU's
//! S5 type 0) still powers off with exit code 0; S3 suspends until the RTC alarm (with
//! RTC_EN) resumes vCPU 0 at the FACS waking vector (see [`crate::devices::pm::S3Sleep`]).

use std::sync::Arc;

use crate::config::{ConfigError, ParseCx, Value};
use crate::devices::pm::{AcpiPlatform, S3Sleep};
use crate::devices::registry::PlatformSpec;
use crate::devices::wiring::Wiring;
use crate::Result;

/// The ACPI platform's spec (nothing to configure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiSpec;

/// Always present.
pub fn parse(
    _cx: &ParseCx,
    _v: Option<Value<'_>>,
) -> std::result::Result<Option<Arc<dyn PlatformSpec>>, ConfigError> {
    Ok(Some(Arc::new(AcpiSpec)))
}

impl PlatformSpec for AcpiSpec {
    fn name(&self) -> &'static str {
        "acpi"
    }

    fn build(&self, w: &mut Wiring<'_>) -> Result<()> {
        let lines = w.lines;
        // S3 suspends (vCPUs park at the control's gate) until the RTC alarm wakes it.
        let sleep = Arc::new(S3Sleep::new(w.control.clone()));
        let mut acpi = AcpiPlatform::build(
            &w.ram.memory,
            w.ram.size,
            w.config.vcpus,
            w.pio,
            |gsi| lines.line(gsi),
            sleep.clone(),
        )?;
        sleep.attach(&acpi, w.ram.memory.clone());
        // The timer threads raise interrupts: stop them before the vCPUs go.
        w.services.on_stop("acpi timers", move || acpi.stop());
        Ok(())
    }
}
