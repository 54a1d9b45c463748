//! The 16550A UART at 0x3F8 (vm-superio's model), its output sink and its interrupt,
//! which is an eventfd bound to GSI 4 with KVM_IRQFD.

use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use vm_superio::{serial::NoEvents, Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;
use crate::config::SerialOutput;
use crate::{Error, Result};

/// Where guest serial output goes. Output is written out a line at a time (or when
/// 4 KiB accumulate, or on [`SerialSink::flush_out`]), not a syscall per byte.
pub struct SerialSink {
    out: Option<Box<dyn Write + Send>>,
    buf: Vec<u8>,
}

impl SerialSink {
    /// Opens the sink for `[serial] output`.
    pub fn open(output: &SerialOutput) -> Result<SerialSink> {
        let out: Option<Box<dyn Write + Send>> = match output {
            SerialOutput::Stdout => Some(Box::new(io::stdout())),
            SerialOutput::None => None,
            SerialOutput::File(p) => Some(Box::new(
                File::options()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| Error::Io {
                        what: format!("cannot open serial output {}", p.display()),
                        source,
                    })?,
            )),
        };
        Ok(SerialSink::from_writer(out))
    }

    /// A sink over any writer (`None` discards).
    pub fn from_writer(out: Option<Box<dyn Write + Send>>) -> SerialSink {
        SerialSink {
            out,
            buf: Vec::with_capacity(256),
        }
    }

    /// Writes out what is buffered.
    pub fn flush_out(&mut self) {
        if let Some(out) = self.out.as_mut() {
            // Output errors (a closed stdout) must not stop the guest: drop the bytes.
            let _ = out.write_all(&self.buf);
            let _ = out.flush();
        }
        self.buf.clear();
    }
}

impl Write for SerialSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.out.is_some() {
            self.buf.extend_from_slice(data);
            if data.contains(&b'\n') || self.buf.len() >= 4096 {
                self.flush_out();
            }
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        // vm-superio flushes after every byte; lines are flushed as they complete.
        Ok(())
    }
}

/// Raises IRQ 4 by writing an eventfd that KVM_IRQFD binds to GSI 4.
pub struct IrqFdTrigger(pub Arc<EventFd>);

impl Trigger for IrqFdTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// The UART as a bus device.
pub struct SerialConsole(Mutex<Serial<IrqFdTrigger, NoEvents, SerialSink>>);

impl SerialConsole {
    /// A UART that interrupts through `irq` and writes to `sink`.
    pub fn new(irq: Arc<EventFd>, sink: SerialSink) -> SerialConsole {
        SerialConsole(Mutex::new(Serial::new(IrqFdTrigger(irq), sink)))
    }

    /// Writes out any partial line (at VM stop).
    pub fn flush(&self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .writer_mut()
            .flush_out();
    }
}

impl BusDevice for SerialConsole {
    fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        if data.len() == 1 && offset < 8 {
            data[0] = self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .read(offset as u8);
        }
    }
    fn write(&self, offset: u64, data: &[u8]) {
        if data.len() == 1 && offset < 8 {
            let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = s.write(offset as u8, data[0]) {
                guard::guest_log!(log::Level::Warn, "serial: {e:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, d: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(d);
            Ok(d.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_is_line_buffered_and_flushed_at_stop() {
        let out = Shared::default();
        let irq = Arc::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        let s = SerialConsole::new(irq, SerialSink::from_writer(Some(Box::new(out.clone()))));
        for b in b"hi\npartial" {
            s.write(0, &[*b]);
        }
        assert_eq!(out.0.lock().unwrap().as_slice(), b"hi\n");
        s.flush();
        assert_eq!(out.0.lock().unwrap().as_slice(), b"hi\npartial");
        // LSR says the transmitter is empty.
        let mut lsr = [0u8];
        s.read(5, &mut lsr);
        assert_eq!(lsr[0] & 0x60, 0x60);
        // Wrong widths read all-ones and are ignored.
        let mut w = [0u8; 2];
        s.read(0, &mut w);
        assert_eq!(w, [0xff, 0xff]);
    }
}
