//! The COM1 UART (16550A at 0x3F8, IRQ 4); `[serial] output` is a core section of the
//! configuration because `kvmbus run --tui` redirects it.

use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use crate::config::{ConfigError, ParseCx, Value};
use crate::devices::registry::PlatformSpec;
use crate::devices::wiring::Wiring;
use crate::devices::{SerialConsole, SerialSink, COM1_PORT};
use crate::{Error, Result};

/// The serial port's legacy interrupt line.
pub const COM1_GSI: u32 = 4;

/// COM1 is always present.
#[derive(Debug)]
pub struct SerialSpec;

/// COM1 has no section of its own (see `[serial]` in the core configuration).
pub fn parse(
    _cx: &ParseCx,
    _v: Option<Value<'_>>,
) -> std::result::Result<Option<Arc<dyn PlatformSpec>>, ConfigError> {
    Ok(Some(Arc::new(SerialSpec)))
}

impl PlatformSpec for SerialSpec {
    fn name(&self) -> &'static str {
        "serial"
    }

    fn build(&self, w: &mut Wiring<'_>) -> Result<()> {
        let irq = match w.lines.irqfd(COM1_GSI)? {
            Some(fd) => fd,
            None => {
                log::warn!("KVM lacks irqfd: the UART raises no interrupts (guests must poll)");
                EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::Io {
                    what: "eventfd".into(),
                    source: e,
                })?
            }
        };
        let serial = Arc::new(SerialConsole::new(
            Arc::new(irq),
            SerialSink::open(&w.config.serial)?,
        ));
        w.pio
            .insert(COM1_PORT as u64, 8, "serial", serial.clone())?;
        w.services
            .on_finish("serial output", move || serial.flush());
        Ok(())
    }
}
