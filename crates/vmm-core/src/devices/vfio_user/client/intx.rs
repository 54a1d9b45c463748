//! INTx of a vfio-user device: the server's trigger eventfd is a KVM irqfd on an IOAPIC
//! pin with a resample eventfd. KVM holds the line asserted from a trigger until the
//! guest's EOI, then deasserts it and signals the resample fd; a thread here answers
//! with SET_IRQS UNMASK, and a server whose line is still asserted triggers again. So a
//! level stays a level: nothing lost (a still-pending line is re-raised) and nothing
//! duplicated (one assertion per EOI).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use kvm_ioctls::VmFd;
use vmm_sys_util::eventfd::EventFd;

use super::conn::Conn;
use crate::{Error, Result};

/// Binds a level-triggered interrupt: trigger fd, resample fd, IOAPIC pin.
pub trait IntxRoute: Send + Sync {
    /// Binds `trigger` to `gsi` with `resample` signalled on EOI.
    fn bind(&self, trigger: &EventFd, resample: &EventFd, gsi: u32) -> Result<()>;
    /// Unbinds it.
    fn unbind(&self, trigger: &EventFd, gsi: u32);
}

/// KVM_IRQFD with KVM_IRQFD_FLAG_RESAMPLE.
pub struct KvmIntxRoute(pub Arc<VmFd>);

impl IntxRoute for KvmIntxRoute {
    fn bind(&self, trigger: &EventFd, resample: &EventFd, gsi: u32) -> Result<()> {
        self.0
            .register_irqfd_with_resample(trigger, resample, gsi)
            .map_err(|e| Error::Kvm {
                op: "KVM_IRQFD (resample)",
                source: e,
            })
    }
    fn unbind(&self, trigger: &EventFd, gsi: u32) {
        if let Err(e) = self.0.unregister_irqfd(trigger, gsi) {
            log::warn!("KVM_IRQFD deassign gsi {gsi}: {e}");
        }
    }
}

/// The INTx wiring of one device.
pub(crate) struct Intx {
    pub(crate) trigger: Arc<EventFd>,
    resample: Arc<EventFd>,
    route: Arc<dyn IntxRoute>,
    gsi: u32,
    stop: Arc<AtomicBool>,
}

impl Intx {
    /// Binds the pin and starts the resample thread.
    pub(crate) fn new(
        name: &str,
        route: Arc<dyn IntxRoute>,
        gsi: u32,
        conn: Weak<Mutex<Conn>>,
    ) -> Result<Intx> {
        let io = |source| Error::Io {
            what: "INTx eventfds".into(),
            source,
        };
        let trigger = Arc::new(EventFd::new(libc::EFD_NONBLOCK).map_err(io)?);
        // Blocking: the resample thread waits on it.
        let resample = Arc::new(EventFd::new(0).map_err(io)?);
        route.bind(&trigger, &resample, gsi)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (resample.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("{name}-intx"))
            .spawn(move || resample_loop(&r, &s, &conn))
            .map_err(|e| Error::Io {
                what: "spawning the INTx resample thread".into(),
                source: e,
            })?;
        Ok(Intx {
            trigger,
            resample,
            route,
            gsi,
            stop,
        })
    }
}

fn resample_loop(resample: &EventFd, stop: &AtomicBool, conn: &Weak<Mutex<Conn>>) {
    loop {
        if resample.read().is_err() || stop.load(Ordering::Acquire) {
            return;
        }
        let Some(c) = conn.upgrade() else { return };
        let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
        c.unmask_intx();
    }
}

impl Drop for Intx {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.resample.write(1);
        self.route.unbind(&self.trigger, self.gsi);
    }
}
