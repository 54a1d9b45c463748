//! [`IrqRouter`]: from the guest's MSI/MSI-X programming to KVM routes and irqfds.
//!
//! Every device vector gets one eventfd ([`IrqHandle`]) for the device's lifetime,
//! whichever of MSI or MSI-X is active. The router follows the [`VectorChange`] events
//! that pci-emu emits and keeps KVM in step:
//!
//! * a vector is *live* when the active capability has it enabled and unmasked; then its
//!   eventfd is bound (KVM_IRQFD) to a GSI whose route carries the vector's message;
//! * while it is masked or disabled the eventfd is unbound, so triggers stay in its
//!   counter: that is the pending bit, and KVM delivers it once when the vector is bound
//!   again, as a device would send the pending message on unmask.

use std::collections::BTreeMap;
use std::sync::Arc;

use metrics::{Counter, Gauge};
use pci_emu::{Bdf, FunctionEvent, IrqSource, MsiMessage, PciEvent, VectorChange};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::signal::{Dispatcher, Target};
use crate::table::{GsiAllocator, RouteTable, FIRST_MSI_GSI};
use crate::{Error, IrqChip, IrqHandle, Result};

// Metric names, as in monitor's catalog (`monitor::names`); this crate does not depend on it.
const IRQ_TRIGGERS: &str = "kvmbus_irq_triggers_total";
const MSI_ROUTE_UPDATES: &str = "kvmbus_msi_route_updates_total";
const IRQ_ROUTE_GSI: &str = "kvmbus_irq_route_gsi";

/// How live vectors reach the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeliveryMode {
    /// KVM_IRQFD on an MSI route: no VMM thread on the interrupt path.
    #[default]
    Irqfd,
    /// Fallback where irqfd routing is unavailable: a router thread epolls the vector
    /// eventfds and injects with KVM_SIGNAL_MSI. No GSIs are allocated and the routing
    /// table is never set (KVM's default table stays).
    SignalMsi,
}

/// How to build an [`IrqRouter`].
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// The VM's name, the `vm` label of the metrics.
    pub vm: String,
    /// KVM's routing table limit (the value of KVM_CAP_IRQ_ROUTING).
    pub max_routes: u32,
    /// How interrupts are delivered.
    pub mode: DeliveryMode,
}

/// One device vector as the router sees it (see [`IrqRouter::routes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorRoute {
    /// The function.
    pub bdf: Bdf,
    /// The device name given to [`IrqRouter::add_device`].
    pub device: String,
    /// The vector (MSI message number or MSI-X table entry).
    pub vector: u16,
    /// The device's active capability (MSI-X if enabled, else MSI if enabled).
    pub source: Option<IrqSource>,
    /// The GSI the vector holds: from its first unmask until it is disabled, also while
    /// masked. Always `None` in [`DeliveryMode::SignalMsi`].
    pub gsi: Option<u32>,
    /// The message programmed in the active capability, if it enables this vector.
    pub message: Option<MsiMessage>,
    /// The active capability's mask for this vector (false when none is active).
    pub masked: bool,
}

/// What the guest last programmed for one vector in one capability.
#[derive(Clone, Copy, Debug, Default)]
struct Programmed {
    message: Option<MsiMessage>,
    masked: bool,
}

/// What KVM (or the delivery thread) currently does with a vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Live {
    source: IrqSource,
    message: MsiMessage,
    /// The delivery thread's token (SignalMsi mode; 0 otherwise).
    token: u64,
}

/// The current series of the IRQ_ROUTE_GSI gauge of one vector.
struct Series {
    labels: [String; 3],
    gauge: Gauge,
}

struct Vector {
    handle: IrqHandle,
    msi: Programmed,
    msix: Programmed,
    gsi: Option<u32>,
    live: Option<Live>,
    series: Option<Series>,
}

impl Vector {
    /// Message and mask in the active capability.
    fn programmed(&self, active: Option<IrqSource>) -> (Option<MsiMessage>, bool) {
        match active {
            Some(IrqSource::Msi) => (self.msi.message, self.msi.masked),
            Some(IrqSource::Msix) => (self.msix.message, self.msix.masked),
            None => (None, false),
        }
    }

    /// Where the vector should deliver, if it should.
    fn desired(&self, active: Option<IrqSource>) -> Option<(IrqSource, MsiMessage)> {
        match self.programmed(active) {
            (Some(message), false) => active.map(|source| (source, message)),
            _ => None,
        }
    }
}

struct Device {
    name: String,
    vectors: Vec<Vector>,
    /// Vectors with an enabled message, per capability: [MSI, MSI-X].
    enabled: [usize; 2],
    updates: Counter,
}

impl Device {
    /// MSI-X if its last events enabled it, else MSI if enabled, else none.
    fn active(&self) -> Option<IrqSource> {
        if self.enabled[1] > 0 {
            Some(IrqSource::Msix)
        } else if self.enabled[0] > 0 {
            Some(IrqSource::Msi)
        } else {
            None
        }
    }

    /// Remembers what the guest programmed (the vector must be in range).
    fn record(&mut self, change: &VectorChange) {
        let v = &mut self.vectors[usize::from(change.vector)];
        let (slot, count) = match change.source {
            IrqSource::Msi => (&mut v.msi, &mut self.enabled[0]),
            IrqSource::Msix => (&mut v.msix, &mut self.enabled[1]),
        };
        match (slot.message.is_some(), change.message.is_some()) {
            (false, true) => *count += 1,
            (true, false) => *count -= 1,
            _ => {}
        }
        *slot = Programmed {
            message: change.message,
            masked: change.masked,
        };
    }

    /// Brings vector `i`'s IRQ_ROUTE_GSI series up to date. A label change (new
    /// destination, mask, capability) moves the vector to a new series and sets the
    /// old one to -1, since series cannot be deleted.
    fn publish(&mut self, vm: &str, i: u16) {
        let active = self.active();
        let v = &mut self.vectors[usize::from(i)];
        let (message, masked) = v.programmed(active);
        let source = match active {
            Some(IrqSource::Msi) => "msi",
            Some(IrqSource::Msix) => "msix",
            None => "none",
        };
        // Destination APIC ID: address bits 19:12.
        let dest = message.map_or_else(
            || "-1".to_string(),
            |m| ((m.address >> 12) & 0xff).to_string(),
        );
        let labels = [source.to_string(), dest, u8::from(masked).to_string()];
        if v.series.as_ref().map(|s| &s.labels) != Some(&labels) {
            if let Some(old) = v.series.take() {
                old.gauge.set(-1.0);
            }
            let gauge = metrics::gauge!(IRQ_ROUTE_GSI,
                "vm" => vm.to_string(),
                "device" => self.name.clone(),
                "vector" => i.to_string(),
                "source" => labels[0].clone(),
                "dest" => labels[1].clone(),
                "masked" => labels[2].clone());
            v.series = Some(Series { labels, gauge });
        }
        if let Some(series) = &v.series {
            series.gauge.set(v.gsi.map_or(-1.0, f64::from));
        }
    }

    /// Retires every gauge series of the device.
    fn unpublish(&mut self) {
        for v in &mut self.vectors {
            if let Some(series) = v.series.take() {
                series.gauge.set(-1.0);
            }
        }
    }
}

/// A legacy INTx line.
struct IntxLine {
    handle: IrqHandle,
    gsi: u32,
    token: u64,
}

/// Mode-specific state.
enum Backend {
    Irqfd {
        table: RouteTable,
        gsis: GsiAllocator,
    },
    Signal(Dispatcher),
}

/// Routes device vectors to the guest; see the [module documentation](self).
///
/// Shared as `Arc<Mutex<IrqRouter>>` with the vCPU threads: [`IrqRouter::apply`] runs
/// inside a guest's config or MSI-X table write and does no blocking work besides the
/// KVM ioctls, so that when the write returns the routes already reflect it.
pub struct IrqRouter {
    chip: Arc<dyn IrqChip>,
    vm: String,
    backend: Backend,
    devices: BTreeMap<Bdf, Device>,
    intx: BTreeMap<Bdf, IntxLine>,
}

/// Keeps the first error of a batch and logs the others; a failing vector does not stop
/// the router from handling the rest.
fn note(first: &mut Option<Error>, e: Error) {
    match first {
        None => *first = Some(e),
        Some(_) => log::warn!("interrupt routing: {e}"),
    }
}

fn done(first: Option<Error>) -> Result<()> {
    first.map_or(Ok(()), Err)
}

/// KVM_SET_GSI_ROUTING with the whole table, counted per device.
fn push(chip: &dyn IrqChip, table: &RouteTable, updates: &Counter) -> Result<()> {
    chip.set_gsi_routing(&table.entries())?;
    updates.increment(1);
    Ok(())
}

fn new_eventfd() -> Result<Arc<EventFd>> {
    // Non-blocking: the delivery thread and KvmIrqChip read it only to consume.
    EventFd::new(EFD_NONBLOCK)
        .map(Arc::new)
        .map_err(Error::EventFd)
}

impl IrqRouter {
    /// Creates the router. In [`DeliveryMode::Irqfd`] it pushes KVM's default legacy
    /// routes at once (every later push carries them too); in
    /// [`DeliveryMode::SignalMsi`] it starts the delivery thread.
    pub fn new(chip: Arc<dyn IrqChip>, config: RouterConfig) -> Result<Self> {
        let backend = match config.mode {
            DeliveryMode::Irqfd => {
                let table = RouteTable::new();
                chip.set_gsi_routing(&table.entries())?;
                let gsis = GsiAllocator::new(config.max_routes, table.default_len());
                Backend::Irqfd { table, gsis }
            }
            DeliveryMode::SignalMsi => {
                Backend::Signal(Dispatcher::start(chip.clone(), &config.vm)?)
            }
        };
        Ok(IrqRouter {
            chip,
            vm: config.vm,
            backend,
            devices: BTreeMap::new(),
            intx: BTreeMap::new(),
        })
    }

    /// The delivery mode.
    pub fn mode(&self) -> DeliveryMode {
        match self.backend {
            Backend::Irqfd { .. } => DeliveryMode::Irqfd,
            Backend::Signal(_) => DeliveryMode::SignalMsi,
        }
    }

    /// Registers a device with `vectors` interrupt vectors and returns one handle per
    /// vector, index = vector number in whichever of MSI and MSI-X is active. Nothing is
    /// routed until the guest enables and unmasks a vector. Triggers are counted as
    /// `kvmbus_irq_triggers_total{vm, device, vector}`.
    pub fn add_device(&mut self, bdf: Bdf, device: &str, vectors: u16) -> Result<Vec<IrqHandle>> {
        if self.devices.contains_key(&bdf) {
            return Err(Error::DeviceExists { bdf });
        }
        let mut dev = Device {
            name: device.to_string(),
            vectors: Vec::with_capacity(usize::from(vectors)),
            enabled: [0, 0],
            updates: metrics::counter!(MSI_ROUTE_UPDATES,
                "vm" => self.vm.clone(), "device" => device.to_string()),
        };
        for i in 0..vectors {
            let triggers = metrics::counter!(IRQ_TRIGGERS,
                "vm" => self.vm.clone(), "device" => device.to_string(), "vector" => i.to_string());
            dev.vectors.push(Vector {
                handle: IrqHandle::new(new_eventfd()?, triggers),
                msi: Programmed::default(),
                msix: Programmed::default(),
                gsi: None,
                live: None,
                series: None,
            });
            dev.publish(&self.vm, i);
        }
        let handles = dev.vectors.iter().map(|v| v.handle.clone()).collect();
        self.devices.insert(bdf, dev);
        Ok(handles)
    }

    /// Applies one event: vector events of registered devices change routes, others are
    /// ignored. On error the router stays consistent with KVM and keeps working; the
    /// vector that failed is retried at its next event.
    pub fn apply(&mut self, event: &PciEvent) -> Result<()> {
        let FunctionEvent::Vector(change) = event.event else {
            return Ok(());
        };
        let Some(dev) = self.devices.get_mut(&event.bdf) else {
            log::debug!("vector event for unregistered device {}", event.bdf);
            return Ok(());
        };
        if usize::from(change.vector) >= dev.vectors.len() {
            log::warn!(
                "device {} ({}) programmed vector {} but has {} vectors; ignored",
                event.bdf,
                dev.name,
                change.vector,
                dev.vectors.len()
            );
            return Ok(());
        }
        let before = dev.active();
        dev.record(&change);
        // A switch between MSI and MSI-X changes every vector; otherwise only this one.
        let indices: Vec<u16> = if dev.active() == before {
            vec![change.vector]
        } else {
            (0..dev.vectors.len() as u16).collect()
        };
        self.reconcile(event.bdf, &indices)
    }

    /// Tears a device down: unbinds its irqfds (first), drops its routes and pushes the
    /// table, frees its GSIs, and unbinds its INTx line. Vectors of other devices that
    /// found no free GSI are routed now.
    pub fn remove_device(&mut self, bdf: Bdf) -> Result<()> {
        let dev = self.devices.remove(&bdf);
        let line = self.intx.remove(&bdf);
        if dev.is_none() && line.is_none() {
            return Err(Error::UnknownDevice { bdf });
        }
        let mut first = None;
        let mut freed = false;
        if let Some(mut dev) = dev {
            match &mut self.backend {
                Backend::Irqfd { table, gsis } => {
                    let mut changed = false;
                    for v in &mut dev.vectors {
                        if let (Some(_), Some(gsi)) = (v.live.take(), v.gsi) {
                            // Deassign before the route goes (see `reconcile_irqfd`).
                            if let Err(e) = self.chip.unregister_irqfd(v.handle.eventfd(), gsi) {
                                note(&mut first, e);
                            }
                            table.remove(gsi);
                            changed = true;
                        }
                    }
                    if changed {
                        if let Err(e) = push(self.chip.as_ref(), table, &dev.updates) {
                            // KVM keeps routes nobody is bound to; the next push drops them.
                            note(&mut first, e);
                        }
                    }
                    for v in &mut dev.vectors {
                        if let Some(gsi) = v.gsi.take() {
                            gsis.free(gsi);
                            freed = true;
                        }
                    }
                }
                Backend::Signal(dispatcher) => {
                    for v in &mut dev.vectors {
                        if let Some(live) = v.live.take() {
                            if let Err(e) = dispatcher.remove(live.token) {
                                note(&mut first, e);
                            }
                        }
                    }
                }
            }
            dev.unpublish();
        }
        if let Some(line) = line {
            if let Err(e) = self.unbind_intx(&line) {
                note(&mut first, e);
            }
        }
        if freed {
            self.retry_starved();
        }
        done(first)
    }

    /// Legacy INTx for a device without MSI: an eventfd bound to the IOAPIC GSI
    /// `pin_gsi` (0-23, which the default routes always carry). Triggers are counted
    /// with `vector="intx"`.
    ///
    /// An irqfd on an irqchip route pulses the line (edge). Level-triggered sharing
    /// with EOI resampling (KVM_IRQFD_FLAG_RESAMPLE) is not provided.
    pub fn intx(&mut self, bdf: Bdf, device: &str, pin_gsi: u32) -> Result<IrqHandle> {
        if pin_gsi >= FIRST_MSI_GSI {
            return Err(Error::NotIoapicPin { gsi: pin_gsi });
        }
        if self.intx.contains_key(&bdf) {
            return Err(Error::IntxExists { bdf });
        }
        let triggers = metrics::counter!(IRQ_TRIGGERS,
            "vm" => self.vm.clone(), "device" => device.to_string(), "vector" => "intx");
        let handle = IrqHandle::new(new_eventfd()?, triggers);
        let token = match &mut self.backend {
            Backend::Irqfd { .. } => {
                self.chip.register_irqfd(handle.eventfd(), pin_gsi)?;
                0
            }
            Backend::Signal(dispatcher) => {
                dispatcher.add(handle.eventfd(), Target::Line(pin_gsi))?
            }
        };
        self.intx.insert(
            bdf,
            IntxLine {
                handle: handle.clone(),
                gsi: pin_gsi,
                token,
            },
        );
        Ok(handle)
    }

    /// Every vector of every device, by BDF then vector (INTx lines are not listed).
    pub fn routes(&self) -> Vec<VectorRoute> {
        self.devices
            .iter()
            .flat_map(|(&bdf, dev)| {
                let active = dev.active();
                dev.vectors.iter().enumerate().map(move |(i, v)| {
                    let (message, masked) = v.programmed(active);
                    VectorRoute {
                        bdf,
                        device: dev.name.clone(),
                        vector: i as u16,
                        source: active,
                        gsi: v.gsi,
                        message,
                        masked,
                    }
                })
            })
            .collect()
    }

    /// MSI GSIs currently held (INTx lines use fixed legacy GSIs and are not counted).
    pub fn gsis_in_use(&self) -> usize {
        match &self.backend {
            Backend::Irqfd { gsis, .. } => gsis.in_use(),
            Backend::Signal(_) => 0,
        }
    }

    fn unbind_intx(&self, line: &IntxLine) -> Result<()> {
        match &self.backend {
            Backend::Irqfd { .. } => self.chip.unregister_irqfd(line.handle.eventfd(), line.gsi),
            Backend::Signal(dispatcher) => dispatcher.remove(line.token),
        }
    }

    /// Routes vectors that want to deliver but hold no GSI (they met `GsiExhausted`).
    fn retry_starved(&mut self) {
        let starved: Vec<(Bdf, Vec<u16>)> = self
            .devices
            .iter()
            .filter_map(|(&bdf, dev)| {
                let active = dev.active();
                let indices: Vec<u16> = (0..dev.vectors.len() as u16)
                    .filter(|&i| {
                        let v = &dev.vectors[usize::from(i)];
                        v.live.is_none() && v.desired(active).is_some()
                    })
                    .collect();
                (!indices.is_empty()).then_some((bdf, indices))
            })
            .collect();
        for (bdf, indices) in starved {
            if let Err(e) = self.reconcile(bdf, &indices) {
                log::warn!("routing {bdf} after GSIs were freed: {e}");
            }
        }
    }

    /// Makes KVM (or the delivery thread) match what the guest programmed for
    /// `indices` of device `bdf`.
    fn reconcile(&mut self, bdf: Bdf, indices: &[u16]) -> Result<()> {
        let Some(dev) = self.devices.get_mut(&bdf) else {
            return Ok(());
        };
        let mut first = None;
        match &mut self.backend {
            Backend::Irqfd { table, gsis } => {
                reconcile_irqfd(self.chip.as_ref(), table, gsis, dev, indices, &mut first)
            }
            Backend::Signal(dispatcher) => reconcile_signal(dispatcher, dev, indices, &mut first),
        }
        for &i in indices {
            dev.publish(&self.vm, i);
        }
        done(first)
    }
}

/// Irqfd mode. Rules:
///
/// * A GSI is allocated lazily, on the first unmask of an enabled vector (never for a
///   vector that stays masked or disabled), lowest free from 24 up, within
///   `max_routes`; with none left the vector stays unrouted (triggers pend) and the
///   caller gets [`Error::GsiExhausted`]. A vector keeps its GSI while masked and frees
///   it when disabled or when its device is removed.
/// * Becoming live: update the table, KVM_SET_GSI_ROUTING, *then* KVM_IRQFD assign, so
///   the irqfd never points at a GSI without its route.
/// * Masked or disabled: KVM_IRQFD deassign *first*, then drop the route and push, so
///   nothing is injected through a route being dropped.
/// * Live vector whose message changes: push the new table, the irqfd stays bound; the
///   next interrupt goes to the new destination.
///
/// One push covers the whole batch. If it fails, KVM kept its previous table: ours is
/// put back to match (retargets keep their old message, new routes are not bound).
fn reconcile_irqfd(
    chip: &dyn IrqChip,
    table: &mut RouteTable,
    gsis: &mut GsiAllocator,
    dev: &mut Device,
    indices: &[u16],
    first: &mut Option<Error>,
) {
    let active = dev.active();
    let mut changed = false;
    let mut ups = Vec::new();
    let mut retargets = Vec::new();
    for &i in indices {
        let v = &mut dev.vectors[usize::from(i)];
        match (v.live, v.desired(active), v.gsi) {
            (Some(_), None, Some(gsi)) => {
                // Down: deassign first. From here on triggers stay in the eventfd.
                if let Err(e) = chip.unregister_irqfd(v.handle.eventfd(), gsi) {
                    note(first, e);
                }
                v.live = None;
                table.remove(gsi);
                changed = true;
            }
            (None, Some((source, message)), gsi) => {
                let gsi = match gsi {
                    Some(gsi) => gsi,
                    None => match gsis.alloc() {
                        Ok(gsi) => *v.gsi.insert(gsi),
                        Err(e) => {
                            note(first, e);
                            continue;
                        }
                    },
                };
                table.insert(gsi, message);
                ups.push((i, gsi, source, message));
                changed = true;
            }
            (Some(old), Some((source, message)), Some(gsi))
                if (old.source, old.message) != (source, message) =>
            {
                // Retarget while live: the new table is enough, the irqfd stays bound.
                table.insert(gsi, message);
                v.live = Some(Live {
                    source,
                    message,
                    token: 0,
                });
                retargets.push((i, gsi, old));
                changed = true;
            }
            _ => {}
        }
    }
    if changed {
        if let Err(e) = push(chip, table, &dev.updates) {
            for &(_, gsi, ..) in &ups {
                table.remove(gsi);
            }
            for &(i, gsi, old) in &retargets {
                table.insert(gsi, old.message);
                dev.vectors[usize::from(i)].live = Some(old);
            }
            ups.clear();
            note(first, e);
        }
    }
    // The route is in KVM's table now: bind the irqfd. KVM checks the eventfd on assign
    // and injects a trigger that pended while the vector was masked, once, through the
    // new route.
    for (i, gsi, source, message) in ups {
        let v = &mut dev.vectors[usize::from(i)];
        match chip.register_irqfd(v.handle.eventfd(), gsi) {
            Ok(()) => {
                v.live = Some(Live {
                    source,
                    message,
                    token: 0,
                })
            }
            Err(e) => {
                // KVM keeps a route nobody is bound to until the next push.
                table.remove(gsi);
                note(first, e);
            }
        }
    }
    // Disabled vectors give their GSI back; masked ones keep it.
    for &i in indices {
        let v = &mut dev.vectors[usize::from(i)];
        if v.live.is_none() && v.programmed(active).0.is_none() {
            if let Some(gsi) = v.gsi.take() {
                gsis.free(gsi);
            }
        }
    }
}

/// SignalMsi mode: live vectors are in the delivery thread's epoll set (see
/// `signal.rs`); masking removes them, so triggers pend in the eventfd, and unmasking
/// adds them back, so a pending trigger is delivered once.
fn reconcile_signal(
    dispatcher: &mut Dispatcher,
    dev: &mut Device,
    indices: &[u16],
    first: &mut Option<Error>,
) {
    let active = dev.active();
    for &i in indices {
        let v = &mut dev.vectors[usize::from(i)];
        match (v.live, v.desired(active)) {
            (Some(live), None) => {
                if let Err(e) = dispatcher.remove(live.token) {
                    note(first, e);
                }
                v.live = None;
            }
            (None, Some((source, message))) => {
                match dispatcher.add(v.handle.eventfd(), Target::Msi(message)) {
                    Ok(token) => {
                        v.live = Some(Live {
                            source,
                            message,
                            token,
                        })
                    }
                    Err(e) => note(first, e),
                }
            }
            (Some(live), Some((source, message)))
                if (live.source, live.message) != (source, message) =>
            {
                dispatcher.update(live.token, Target::Msi(message));
                v.live = Some(Live {
                    source,
                    message,
                    token: live.token,
                });
            }
            _ => {}
        }
    }
}
