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
//!
//! When KVM's routing table is full, a vector that should go live is not lost: it
//! *spills* to a delivery thread (the one [`DeliveryMode::SignalMsi`] uses) that
//! injects its triggers with KVM_SIGNAL_MSI, and moves back to a GSI of its own at its
//! next change once one is free (or as soon as GSIs are freed by a device removal).

use std::collections::BTreeMap;
use std::sync::Arc;

use metrics::{Counter, Gauge};
use pci_emu::{Bdf, FunctionEvent, IrqSource, MsiMessage, PciEvent, VectorChange};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::signal::{Dispatcher, Target};
use crate::table::{GsiAllocator, RouteTable, FIRST_MSI_GSI};
use crate::{Error, IrqChip, IrqHandle, Result};

use crate::names::{
    IRQ_ROUTE_DEST, IRQ_ROUTE_GSI, IRQ_ROUTE_MASKED, IRQ_ROUTE_SPILLS, IRQ_TRIGGERS,
    MSI_ROUTE_UPDATES,
};

/// How live vectors reach the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeliveryMode {
    /// KVM_IRQFD on an MSI route: no VMM thread on the interrupt path.
    #[default]
    Irqfd,
    /// Fallback where irqfd routing is unavailable: a router thread epolls the vector
    /// eventfds and injects with KVM_SIGNAL_MSI. No GSIs are allocated and the routing
    /// table is never set (KVM's default table stays), so `kvmbus_irq_route_gsi` reads
    /// -1 for every vector; INTx lines are pulsed with KVM_IRQ_LINE.
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

/// The route gauges of one vector. Only the capability is a label of IRQ_ROUTE_GSI (at
/// most three series per vector); what the guest writes freely (destination, mask) is
/// a value of its own gauge, so the series a guest can create are bounded by the
/// device's vector count.
struct Series {
    source: &'static str,
    gsi: Gauge,
    dest: Gauge,
    masked: Gauge,
}

struct Vector {
    handle: IrqHandle,
    msi: Programmed,
    msix: Programmed,
    gsi: Option<u32>,
    live: Option<Live>,
    /// Live through the overflow delivery thread (token in `live`): no GSI was free.
    spilled: bool,
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

    /// Brings vector `i`'s route gauges up to date. A capability change moves the vector
    /// to another IRQ_ROUTE_GSI series and sets the old one to -1, since series cannot
    /// be deleted.
    fn publish(&mut self, vm: &str, i: u16) {
        let active = self.active();
        let v = &mut self.vectors[usize::from(i)];
        let (message, masked) = v.programmed(active);
        let source = match active {
            Some(IrqSource::Msi) => "msi",
            Some(IrqSource::Msix) => "msix",
            None => "none",
        };
        let labels = |extra: Option<&'static str>| {
            let mut l = vec![
                ("vm", vm.to_string()),
                ("device", self.name.clone()),
                ("vector", i.to_string()),
            ];
            if let Some(source) = extra {
                l.push(("source", source.to_string()));
            }
            l
        };
        match &mut v.series {
            Some(series) if series.source == source => {}
            Some(series) => {
                series.gsi.set(-1.0);
                series.gsi = metrics::gauge!(IRQ_ROUTE_GSI, &labels(Some(source)));
                series.source = source;
            }
            None => {
                v.series = Some(Series {
                    source,
                    gsi: metrics::gauge!(IRQ_ROUTE_GSI, &labels(Some(source))),
                    dest: metrics::gauge!(IRQ_ROUTE_DEST, &labels(None)),
                    masked: metrics::gauge!(IRQ_ROUTE_MASKED, &labels(None)),
                })
            }
        }
        // The value is the GSI only while the route is in KVM's table and the irqfd
        // bound; a masked vector keeps its GSI (see `VectorRoute::gsi`) but shows -1.
        let routed = v.live.and(v.gsi);
        if let Some(series) = &v.series {
            series.gsi.set(routed.map_or(-1.0, f64::from));
            // Destination APIC ID: address bits 19:12.
            series
                .dest
                .set(message.map_or(-1.0, |m| ((m.address >> 12) & 0xff) as f64));
            series.masked.set(f64::from(u8::from(masked)));
        }
    }

    /// Retires every gauge series of the device.
    fn unpublish(&mut self) {
        for v in &mut self.vectors {
            if let Some(series) = v.series.take() {
                series.gsi.set(-1.0);
                series.dest.set(-1.0);
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
        overflow: Overflow,
    },
    Signal(Dispatcher),
}

/// Irqfd mode's delivery thread for vectors that found no free GSI, started on first
/// use.
struct Overflow {
    chip: Arc<dyn IrqChip>,
    vm: String,
    dispatcher: Option<Dispatcher>,
    spills: Counter,
}

impl Overflow {
    fn add(&mut self, fd: &Arc<EventFd>, message: MsiMessage) -> Result<u64> {
        let d = match &mut self.dispatcher {
            Some(d) => d,
            None => self
                .dispatcher
                .insert(Dispatcher::start(self.chip.clone(), &self.vm)?),
        };
        self.spills.increment(1);
        d.add(fd, Target::Msi(message))
    }

    fn update(&self, token: u64, message: MsiMessage) {
        if let Some(d) = &self.dispatcher {
            d.update(token, Target::Msi(message));
        }
    }

    fn remove(&self, token: u64) -> Result<()> {
        self.dispatcher.as_ref().map_or(Ok(()), |d| d.remove(token))
    }
}

/// Routes device vectors to the guest.
///
/// Every device vector gets one eventfd ([`IrqHandle`]) for the device's lifetime,
/// whichever of MSI or MSI-X is active. A vector is *live* while the active capability
/// has it enabled and unmasked: its eventfd is then bound (KVM_IRQFD) to a GSI whose
/// route carries the vector's message. While it is masked or disabled the eventfd is
/// unbound and triggers stay in its counter, the pending bit, which KVM delivers once
/// when the vector is bound again.
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
        Some(_) => guard::guest_log!(log::Level::Warn, "interrupt routing: {e}"),
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
                let overflow = Overflow {
                    chip: chip.clone(),
                    vm: config.vm.clone(),
                    dispatcher: None,
                    spills: metrics::counter!(IRQ_ROUTE_SPILLS, "vm" => config.vm.clone()),
                };
                Backend::Irqfd {
                    table,
                    gsis,
                    overflow,
                }
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
                spilled: false,
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
            guard::guest_log!(
                log::Level::Warn,
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
                Backend::Irqfd {
                    table,
                    gsis,
                    overflow,
                } => {
                    let mut changed = false;
                    for v in &mut dev.vectors {
                        if let (Some(live), true) = (v.live, v.spilled) {
                            v.live = None;
                            v.spilled = false;
                            if let Err(e) = overflow.remove(live.token) {
                                note(&mut first, e);
                            }
                        }
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
                        (v.live.is_none() || v.spilled) && v.desired(active).is_some()
                    })
                    .collect();
                (!indices.is_empty()).then_some((bdf, indices))
            })
            .collect();
        for (bdf, indices) in starved {
            if let Err(e) = self.reconcile(bdf, &indices) {
                guard::guest_log!(log::Level::Warn, "routing {bdf} after GSIs were freed: {e}");
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
            Backend::Irqfd {
                table,
                gsis,
                overflow,
            } => reconcile_irqfd(
                self.chip.as_ref(),
                (table, gsis),
                overflow,
                dev,
                indices,
                &mut first,
            ),
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
///   `max_routes`; with none left the vector spills to the overflow delivery thread
///   (KVM_SIGNAL_MSI), and only if that fails too does it stay unrouted (triggers pend)
///   with the error returned. A spilled vector moves to a GSI at its next change once
///   one is free. A vector keeps its GSI while masked and frees it when disabled or
///   when its device is removed.
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
    (table, gsis): (&mut RouteTable, &mut GsiAllocator),
    overflow: &mut Overflow,
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
        if let (Some(live), true) = (v.live, v.spilled) {
            let want = v.desired(active);
            let gsi = match want {
                Some(_) => gsis.alloc().ok(),
                None => None,
            };
            if want.is_none() || gsi.is_some() {
                // Down, or back to a GSI: leave the delivery thread first (triggers
                // from here on pend in the eventfd until the irqfd is bound).
                if let Err(e) = overflow.remove(live.token) {
                    note(first, e);
                }
                v.live = None;
                v.spilled = false;
                v.gsi = gsi;
                if gsi.is_none() {
                    continue;
                }
            } else if let Some((source, message)) = want {
                overflow.update(live.token, message);
                v.live = Some(Live {
                    source,
                    message,
                    token: live.token,
                });
                continue;
            }
        }
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
                        Err(full) => {
                            match overflow.add(v.handle.eventfd(), message) {
                                Ok(token) => {
                                    guard::guest_log!(
                                        log::Level::Warn,
                                        "{} vector {i}: {full}; delivered with KVM_SIGNAL_MSI",
                                        dev.name
                                    );
                                    v.live = Some(Live {
                                        source,
                                        message,
                                        token,
                                    });
                                    v.spilled = true;
                                }
                                Err(e) => {
                                    note(first, full);
                                    note(first, e);
                                }
                            }
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

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use super::*;
    use crate::table::default_routes;
    use crate::{ChipCall, ChipOp, GsiRoute, RecordingIrqChip};

    fn bdf(device: u8) -> Bdf {
        Bdf::new(0, device, 0).unwrap()
    }

    /// An MSI message to local APIC `dest`, IDT vector `vector`.
    fn msg(dest: u8, vector: u8) -> MsiMessage {
        MsiMessage {
            address: 0xfee0_0000 | (u64::from(dest) << 12),
            data: u32::from(vector),
        }
    }

    fn ev(
        bdf: Bdf,
        source: IrqSource,
        vector: u16,
        message: Option<MsiMessage>,
        masked: bool,
    ) -> PciEvent {
        PciEvent {
            bdf,
            event: FunctionEvent::Vector(VectorChange {
                source,
                vector,
                message,
                masked,
            }),
        }
    }

    fn msix(bdf: Bdf, vector: u16, message: Option<MsiMessage>, masked: bool) -> PciEvent {
        ev(bdf, IrqSource::Msix, vector, message, masked)
    }

    fn msi(bdf: Bdf, vector: u16, message: Option<MsiMessage>, masked: bool) -> PciEvent {
        ev(bdf, IrqSource::Msi, vector, message, masked)
    }

    fn router_with(max_routes: u32, mode: DeliveryMode) -> (Arc<RecordingIrqChip>, IrqRouter) {
        let chip = Arc::new(RecordingIrqChip::new());
        let config = RouterConfig {
            vm: "test".into(),
            max_routes,
            mode,
        };
        let router = IrqRouter::new(chip.clone(), config).unwrap();
        (chip, router)
    }

    fn router() -> (Arc<RecordingIrqChip>, IrqRouter) {
        router_with(4096, DeliveryMode::Irqfd)
    }

    fn assign(h: &IrqHandle, gsi: u32, pending: bool) -> ChipCall {
        ChipCall::RegisterIrqfd {
            fd: h.as_raw_fd(),
            gsi,
            pending,
        }
    }

    fn deassign(h: &IrqHandle, gsi: u32) -> ChipCall {
        ChipCall::UnregisterIrqfd {
            fd: h.as_raw_fd(),
            gsi,
        }
    }

    /// The MSI routes of a pushed table, asserting the defaults lead it.
    fn pushed(call: &ChipCall) -> Vec<(u32, MsiMessage)> {
        let ChipCall::SetGsiRouting(table) = call else {
            panic!("expected a routing push, got {call:?}");
        };
        let defaults = default_routes();
        assert_eq!(
            &table[..defaults.len()],
            &defaults[..],
            "defaults lead the table"
        );
        table[defaults.len()..]
            .iter()
            .map(|r| match *r {
                GsiRoute::Msi { gsi, message } => (gsi, message),
                GsiRoute::Irqchip { .. } => panic!("irqchip route after the defaults"),
            })
            .collect()
    }

    #[test]
    fn default_routes_in_every_push() {
        let (chip, mut r) = router();
        assert_eq!(
            chip.calls(),
            vec![ChipCall::SetGsiRouting(default_routes())]
        );
        let b = bdf(3);
        r.add_device(b, "dev", 3).unwrap();
        for v in 0..3 {
            r.apply(&msix(b, v, Some(msg(0, 0x40 + v as u8)), false))
                .unwrap();
        }
        r.apply(&msix(b, 1, Some(msg(0, 0x41)), true)).unwrap();
        r.apply(&msix(b, 2, Some(msg(1, 0x42)), false)).unwrap();
        r.remove_device(b).unwrap();
        let pushes: Vec<_> = chip
            .calls()
            .into_iter()
            .filter(|c| matches!(c, ChipCall::SetGsiRouting(_)))
            .collect();
        assert_eq!(pushes.len(), 7);
        for p in &pushes {
            pushed(p); // asserts the defaults
        }
        assert!(pushed(pushes.last().unwrap()).is_empty());
    }

    #[test]
    fn gsi_allocated_lazily_on_first_unmask() {
        let (chip, mut r) = router();
        let b = bdf(3);
        r.add_device(b, "dev", 4).unwrap();
        chip.take_calls();
        // Enabled but masked (MSI-X reset state): nothing allocated, nothing pushed.
        for v in 0..4 {
            r.apply(&msix(b, v, Some(msg(0, 0x40)), true)).unwrap();
        }
        assert_eq!(r.gsis_in_use(), 0);
        assert!(chip.calls().is_empty());
        assert!(r.routes().iter().all(|v| v.gsi.is_none()));
        // Unmasked but disabled: nothing either.
        let other = bdf(4);
        r.add_device(other, "other", 1).unwrap();
        r.apply(&msix(other, 0, None, false)).unwrap();
        assert_eq!(r.gsis_in_use(), 0);
        // First unmask of an enabled vector.
        r.apply(&msix(b, 2, Some(msg(0, 0x42)), false)).unwrap();
        assert_eq!(r.gsis_in_use(), 1);
        assert_eq!(r.routes()[2].gsi, Some(24));
        // Masked: the route goes, the GSI stays with the vector.
        r.apply(&msix(b, 2, Some(msg(0, 0x42)), true)).unwrap();
        assert_eq!(r.routes()[2].gsi, Some(24));
        assert!(chip.msi_routes().is_empty());
        // Next vector gets the next GSI; disabling frees both.
        r.apply(&msix(b, 0, Some(msg(0, 0x40)), false)).unwrap();
        assert_eq!(r.routes()[0].gsi, Some(25));
        for v in 0..4 {
            r.apply(&msix(b, v, None, false)).unwrap();
        }
        assert_eq!(r.gsis_in_use(), 0);
        assert!(chip.irqfds().is_empty());
        assert!(chip.msi_routes().is_empty());
    }

    #[test]
    fn push_before_assign_and_deassign_before_removal() {
        let (chip, mut r) = router();
        let b = bdf(3);
        let h = r.add_device(b, "dev", 1).unwrap();
        chip.take_calls();
        r.apply(&msix(b, 0, Some(msg(0, 0x40)), false)).unwrap();
        let calls = chip.take_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(pushed(&calls[0]), vec![(24, msg(0, 0x40))]);
        assert_eq!(calls[1], assign(&h[0], 24, false));

        r.apply(&msix(b, 0, Some(msg(0, 0x40)), true)).unwrap();
        let calls = chip.take_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0], deassign(&h[0], 24));
        assert!(pushed(&calls[1]).is_empty());

        // Re-applying the same state does nothing.
        r.apply(&msix(b, 0, Some(msg(0, 0x40)), true)).unwrap();
        assert!(chip.take_calls().is_empty());
    }

    #[test]
    fn pending_while_masked_delivered_on_unmask() {
        let (chip, mut r) = router();
        let b = bdf(3);
        let h = r.add_device(b, "dev", 1).unwrap();
        r.apply(&msix(b, 0, Some(msg(0, 0x40)), false)).unwrap();
        r.apply(&msix(b, 0, Some(msg(0, 0x40)), true)).unwrap();
        assert!(!h[0].is_pending());
        h[0].trigger().unwrap();
        h[0].trigger().unwrap();
        assert!(
            h[0].is_pending(),
            "a trigger while masked is the pending bit"
        );
        assert!(chip.irqfds().is_empty());
        chip.take_calls();
        r.apply(&msix(b, 0, Some(msg(0, 0x40)), false)).unwrap();
        let calls = chip.take_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(pushed(&calls[0]), vec![(24, msg(0, 0x40))]);
        // KVM finds the eventfd readable on assign and injects it once.
        assert_eq!(calls[1], assign(&h[0], 24, true));
    }

    #[test]
    fn signal_msi_mode_delivers_pending_exactly_once() {
        let (chip, mut r) = router_with(4096, DeliveryMode::SignalMsi);
        assert_eq!(r.mode(), DeliveryMode::SignalMsi);
        let b = bdf(3);
        let h = r.add_device(b, "dev", 2).unwrap();
        let is_msi = |c: &ChipCall| matches!(c, ChipCall::SignalMsi(_));
        let count = |calls: &[ChipCall]| calls.iter().filter(|c| is_msi(c)).count();

        // Masked: triggers stay pending, nothing is delivered.
        r.apply(&msix(b, 0, Some(msg(0, 0x40)), true)).unwrap();
        h[0].trigger().unwrap();
        h[0].trigger().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(count(&chip.calls()), 0);
        assert!(h[0].is_pending());

        // Unmask: exactly one MSI for the pending bit.
        r.apply(&msix(b, 0, Some(msg(0, 0x40)), false)).unwrap();
        assert!(chip.wait_for(Duration::from_secs(5), |c| count(c) == 1));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(chip.calls(), vec![ChipCall::SignalMsi(msg(0, 0x40))]);
        assert!(!h[0].is_pending());

        // Live: each trigger is delivered; a retarget takes effect for the next one.
        h[0].trigger().unwrap();
        assert!(chip.wait_for(Duration::from_secs(5), |c| count(c) == 2));
        r.apply(&msix(b, 0, Some(msg(1, 0x50)), false)).unwrap();
        h[0].trigger().unwrap();
        assert!(chip.wait_for(Duration::from_secs(5), |c| count(c) == 3));
        assert_eq!(
            chip.calls().last(),
            Some(&ChipCall::SignalMsi(msg(1, 0x50)))
        );

        // Masked again: pending, not delivered, thread not spinning on it.
        r.apply(&msix(b, 0, Some(msg(1, 0x50)), true)).unwrap();
        h[0].trigger().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(count(&chip.calls()), 3);
        assert!(h[0].is_pending());

        // No routing table or GSI in this mode.
        assert!(!chip
            .calls()
            .iter()
            .any(|c| matches!(c, ChipCall::SetGsiRouting(_))));
        assert_eq!(r.gsis_in_use(), 0);
        r.remove_device(b).unwrap();
        drop(r); // stops and joins the delivery thread
    }

    #[test]
    fn retarget_while_live_pushes_and_keeps_irqfd() {
        let (chip, mut r) = router();
        let b = bdf(3);
        let h = r.add_device(b, "dev", 1).unwrap();
        r.apply(&msix(b, 0, Some(msg(0, 0x40)), false)).unwrap();
        h[0].trigger().unwrap();
        chip.take_calls();
        r.apply(&msix(b, 0, Some(msg(2, 0x41)), false)).unwrap();
        let calls = chip.take_calls();
        assert_eq!(calls.len(), 1, "only a push: {calls:?}");
        assert_eq!(pushed(&calls[0]), vec![(24, msg(2, 0x41))]);
        assert_eq!(chip.irqfds().get(&h[0].as_raw_fd()), Some(&24));
        assert_eq!(r.routes()[0].message, Some(msg(2, 0x41)));
    }

    #[test]
    fn msi_multiple_vectors() {
        let (chip, mut r) = router();
        let b = bdf(5);
        let h = r.add_device(b, "dev", 4).unwrap();
        for v in 0..4u16 {
            // Multiple message enable: data already OR-ed with the message number.
            r.apply(&msi(b, v, Some(msg(0, 0x60 | v as u8)), false))
                .unwrap();
        }
        let routes = chip.msi_routes();
        for v in 0..4u16 {
            let gsi = 24 + u32::from(v);
            assert_eq!(routes.get(&gsi), Some(&msg(0, 0x60 | v as u8)));
            assert_eq!(
                chip.irqfds().get(&h[usize::from(v)].as_raw_fd()),
                Some(&gsi)
            );
            let route = &r.routes()[usize::from(v)];
            assert_eq!(route.source, Some(IrqSource::Msi));
            assert_eq!(route.gsi, Some(gsi));
        }
        // Disabling MSI tears all four down.
        for v in 0..4 {
            r.apply(&msi(b, v, None, false)).unwrap();
        }
        assert!(chip.irqfds().is_empty());
        assert_eq!(r.gsis_in_use(), 0);
        assert!(r.routes().iter().all(|v| v.source.is_none()));
    }

    #[test]
    fn msix_preferred_over_msi() {
        let (chip, mut r) = router();
        let b = bdf(3);
        let h = r.add_device(b, "dev", 2).unwrap();
        r.apply(&msi(b, 0, Some(msg(0, 0x30)), false)).unwrap();
        assert_eq!(chip.msi_routes().get(&24), Some(&msg(0, 0x30)));

        // MSI-X enabled (entries masked) while MSI is still on: MSI-X wins, vector 0
        // stops delivering through its MSI message.
        chip.take_calls();
        r.apply(&msix(b, 0, Some(msg(0, 0x40)), true)).unwrap();
        let calls = chip.take_calls();
        assert_eq!(calls[0], deassign(&h[0], 24));
        assert!(pushed(&calls[1]).is_empty());
        r.apply(&msix(b, 1, Some(msg(1, 0x41)), false)).unwrap();
        let routes = r.routes();
        assert!(routes.iter().all(|v| v.source == Some(IrqSource::Msix)));
        assert_eq!(routes[0].gsi, Some(24), "masked, keeps its GSI");
        assert_eq!(routes[1].gsi, Some(25));
        assert_eq!(
            chip.msi_routes().into_iter().collect::<Vec<_>>(),
            vec![(25, msg(1, 0x41))]
        );

        // MSI-X unmasked on vector 0: the MSI-X message, not the MSI one.
        r.apply(&msix(b, 0, Some(msg(0, 0x40)), false)).unwrap();
        assert_eq!(chip.msi_routes().get(&24), Some(&msg(0, 0x40)));

        // MSI-X disabled: back to MSI (vector 0 enabled there, vector 1 not).
        chip.take_calls();
        r.apply(&msix(b, 0, None, false)).unwrap();
        r.apply(&msix(b, 1, None, false)).unwrap();
        assert_eq!(
            chip.msi_routes().into_iter().collect::<Vec<_>>(),
            vec![(24, msg(0, 0x30))]
        );
        assert_eq!(chip.irqfds().get(&h[0].as_raw_fd()), Some(&24));
        assert_eq!(chip.irqfds().get(&h[1].as_raw_fd()), None);
        assert_eq!(r.gsis_in_use(), 1);
    }

    #[test]
    fn exhaustion_spills_then_recovers_after_removal() {
        // 42 entries: 40 defaults leave two MSI routes.
        let (chip, mut r) = router_with(42, DeliveryMode::Irqfd);
        let (a, b) = (bdf(3), bdf(4));
        let ha = r.add_device(a, "a", 2).unwrap();
        let hb = r.add_device(b, "b", 1).unwrap();
        r.apply(&msix(a, 0, Some(msg(0, 0x40)), false)).unwrap();
        r.apply(&msix(a, 1, Some(msg(0, 0x41)), false)).unwrap();
        // The table is full: b's vector spills to KVM_SIGNAL_MSI instead of being lost.
        r.apply(&msix(b, 0, Some(msg(0, 0x50)), false)).unwrap();
        assert_eq!(r.routes()[2].gsi, None);
        assert!(!chip.irqfds().contains_key(&hb[0].as_raw_fd()));
        hb[0].trigger().unwrap();
        assert!(
            chip.wait_for(Duration::from_secs(5), |c| c
                .contains(&ChipCall::SignalMsi(msg(0, 0x50)))),
            "{:?}",
            chip.calls()
        );
        // Retargeting a spilled vector takes effect on its next trigger.
        r.apply(&msix(b, 0, Some(msg(1, 0x51)), false)).unwrap();
        hb[0].trigger().unwrap();
        assert!(chip.wait_for(Duration::from_secs(5), |c| c
            .contains(&ChipCall::SignalMsi(msg(1, 0x51)))));
        // Masked: triggers pend.
        r.apply(&msix(b, 0, Some(msg(1, 0x51)), true)).unwrap();
        chip.take_calls();
        hb[0].trigger().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(hb[0].is_pending(), "masked: the trigger waits");
        assert!(chip.calls().is_empty(), "{:?}", chip.calls());
        r.apply(&msix(b, 0, Some(msg(1, 0x51)), false)).unwrap();
        assert!(chip.wait_for(Duration::from_secs(5), |c| c
            .contains(&ChipCall::SignalMsi(msg(1, 0x51)))));

        // The rest keeps working.
        r.apply(&msix(a, 1, Some(msg(1, 0x41)), false)).unwrap();
        assert_eq!(chip.msi_routes().get(&25), Some(&msg(1, 0x41)));
        assert_eq!(chip.irqfds().len(), 2);

        // Removing `a` frees its GSIs and `b` moves to a GSI of its own without
        // another event.
        chip.take_calls();
        r.remove_device(a).unwrap();
        let calls = chip.take_calls();
        assert!(
            matches!(calls.last(), Some(ChipCall::RegisterIrqfd { fd, gsi: 24, .. }) if *fd == hb[0].as_raw_fd()),
            "{calls:?}"
        );
        assert_eq!(
            chip.msi_routes().into_iter().collect::<Vec<_>>(),
            vec![(24, msg(1, 0x51))]
        );
        assert_eq!(r.gsis_in_use(), 1);
        assert!(!chip.irqfds().contains_key(&ha[0].as_raw_fd()));
    }

    #[test]
    fn three_devices_of_2048_vectors_lose_no_vector() {
        // A KVM table of 4096 entries cannot route 6144 vectors; every one still
        // delivers.
        let (chip, mut r) = router_with(4096, DeliveryMode::Irqfd);
        let mut handles = Vec::new();
        for d in 0..3u8 {
            let h = r.add_device(bdf(3 + d), "irq-test", 2048).unwrap();
            for v in 0..2048u16 {
                r.apply(&msix(bdf(3 + d), v, Some(msg(0, 0x40)), false))
                    .unwrap();
            }
            handles.push(h);
        }
        assert_eq!(r.gsis_in_use(), 4096 - 40);
        let last = &handles[2][2047];
        chip.take_calls();
        last.trigger().unwrap();
        assert!(chip.wait_for(Duration::from_secs(5), |c| c
            .contains(&ChipCall::SignalMsi(msg(0, 0x40)))));
        assert!(handles[0][0].eventfd().as_raw_fd() > 0);
        assert!(chip.irqfds().contains_key(&handles[0][0].as_raw_fd()));
    }

    #[test]
    fn remove_device_frees_everything() {
        let (chip, mut r) = router();
        let b = bdf(3);
        let h = r.add_device(b, "dev", 3).unwrap();
        let line = r.intx(b, "dev", 11).unwrap();
        r.apply(&msix(b, 0, Some(msg(0, 0x40)), false)).unwrap();
        r.apply(&msix(b, 1, Some(msg(0, 0x41)), false)).unwrap();
        r.apply(&msix(b, 1, Some(msg(0, 0x41)), true)).unwrap(); // masked, holds GSI 25
        r.apply(&msix(b, 2, Some(msg(0, 0x42)), true)).unwrap(); // never unmasked
        assert_eq!(r.gsis_in_use(), 2);
        chip.take_calls();
        r.remove_device(b).unwrap();
        let calls = chip.take_calls();
        // Deassign first, then the push without the routes, then INTx.
        assert_eq!(calls[0], deassign(&h[0], 24));
        assert!(pushed(&calls[1]).is_empty());
        assert_eq!(calls[2], deassign(&line, 11));
        assert_eq!(calls.len(), 3);
        assert_eq!(r.gsis_in_use(), 0);
        assert!(r.routes().is_empty());
        assert!(chip.irqfds().is_empty());
        assert!(chip.msi_routes().is_empty());
        assert!(matches!(
            r.remove_device(b),
            Err(Error::UnknownDevice { .. })
        ));
        // The BDF can be registered again.
        r.add_device(b, "dev", 1).unwrap();
    }

    #[test]
    fn failed_push_leaves_router_consistent() {
        let (chip, mut r) = router();
        let b = bdf(3);
        let h = r.add_device(b, "dev", 1).unwrap();
        chip.fail_next(ChipOp::SetGsiRouting, libc::ENOMEM);
        let err = r.apply(&msix(b, 0, Some(msg(0, 0x40)), false)).unwrap_err();
        assert!(matches!(
            err,
            Error::Kvm {
                op: "KVM_SET_GSI_ROUTING",
                ..
            }
        ));
        assert!(chip.irqfds().is_empty(), "no irqfd without its route");
        // The same state again (any later event) retries.
        r.apply(&msix(b, 0, Some(msg(0, 0x40)), false)).unwrap();
        assert_eq!(chip.irqfds().get(&h[0].as_raw_fd()), Some(&24));

        // A failed retarget keeps the old message, as KVM does, and is retried.
        chip.fail_next(ChipOp::SetGsiRouting, libc::ENOMEM);
        assert!(r.apply(&msix(b, 0, Some(msg(1, 0x41)), false)).is_err());
        assert_eq!(chip.msi_routes().get(&24), Some(&msg(0, 0x40)));
        chip.take_calls();
        r.apply(&msix(b, 0, Some(msg(1, 0x41)), false)).unwrap();
        assert_eq!(pushed(&chip.take_calls()[0]), vec![(24, msg(1, 0x41))]);

        // A failed assign leaves the vector unrouted; the next event retries.
        r.apply(&msix(b, 0, Some(msg(1, 0x41)), true)).unwrap();
        chip.fail_next(ChipOp::RegisterIrqfd, libc::EINVAL);
        assert!(r.apply(&msix(b, 0, Some(msg(1, 0x41)), false)).is_err());
        assert!(chip.irqfds().is_empty());
        r.apply(&msix(b, 0, Some(msg(1, 0x41)), false)).unwrap();
        assert_eq!(chip.irqfds().get(&h[0].as_raw_fd()), Some(&24));
    }

    #[test]
    fn intx_lines() {
        let (chip, mut r) = router();
        let b = bdf(6);
        chip.take_calls();
        let h = r.intx(b, "legacy", 10).unwrap();
        assert_eq!(chip.take_calls(), vec![assign(&h, 10, false)]);
        assert!(matches!(
            r.intx(b, "legacy", 10),
            Err(Error::IntxExists { .. })
        ));
        assert!(matches!(
            r.intx(bdf(7), "legacy", 24),
            Err(Error::NotIoapicPin { gsi: 24 })
        ));
        assert!(r.routes().is_empty());
        r.remove_device(b).unwrap();
        assert_eq!(chip.take_calls(), vec![deassign(&h, 10)]);

        // SignalMsi mode: the thread pulses the line.
        let (chip, mut r) = router_with(4096, DeliveryMode::SignalMsi);
        let h = r.intx(b, "legacy", 5).unwrap();
        h.trigger().unwrap();
        assert!(chip.wait_for(Duration::from_secs(5), |c| c.len() == 2));
        assert_eq!(
            chip.calls(),
            vec![
                ChipCall::SetIrqLine {
                    irq: 5,
                    level: true
                },
                ChipCall::SetIrqLine {
                    irq: 5,
                    level: false
                }
            ]
        );
    }

    #[test]
    fn ignores_other_events_and_unknown_vectors() {
        let (chip, mut r) = router();
        let b = bdf(3);
        r.add_device(b, "dev", 1).unwrap();
        assert!(matches!(
            r.add_device(b, "dev", 1),
            Err(Error::DeviceExists { .. })
        ));
        chip.take_calls();
        let command = PciEvent {
            bdf: b,
            event: FunctionEvent::Command {
                io: true,
                memory: true,
                bus_master: true,
            },
        };
        r.apply(&command).unwrap();
        r.apply(&msix(b, 7, Some(msg(0, 0x40)), false)).unwrap(); // out of range
        r.apply(&msix(bdf(9), 0, Some(msg(0, 0x40)), false))
            .unwrap(); // unknown device
        assert!(chip.calls().is_empty());
        assert_eq!(r.gsis_in_use(), 0);
    }

    #[test]
    fn metrics() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};

        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let (_chip, mut r, h) = metrics::with_local_recorder(&recorder, || {
            let (chip, mut r) = router();
            let b = bdf(3);
            let h = r.add_device(b, "gw", 1).unwrap();
            r.apply(&msix(b, 0, Some(msg(0, 0x40)), true)).unwrap();
            r.apply(&msix(b, 0, Some(msg(3, 0x40)), false)).unwrap();
            (chip, r, h)
        });
        h[0].trigger().unwrap();
        h[0].trigger().unwrap();
        let snapshot = snapshotter.snapshot().into_vec();
        let find = |name: &str, labels: &[(&str, &str)]| {
            snapshot
                .iter()
                .find(|(k, ..)| {
                    k.key().name() == name
                        && labels.iter().all(|(n, v)| {
                            k.key().labels().any(|l| l.key() == *n && l.value() == *v)
                        })
                })
                .map(|(.., value)| value)
        };
        assert_eq!(
            find(
                IRQ_TRIGGERS,
                &[("vm", "test"), ("device", "gw"), ("vector", "0")]
            ),
            Some(&DebugValue::Counter(2))
        );
        assert_eq!(
            find(MSI_ROUTE_UPDATES, &[("vm", "test"), ("device", "gw")]),
            Some(&DebugValue::Counter(1))
        );
        let vector = [("device", "gw"), ("vector", "0")];
        assert_eq!(
            find(IRQ_ROUTE_GSI, &[("source", "msix"), ("vector", "0")]),
            Some(&DebugValue::Gauge(24.0.into()))
        );
        // Destination and mask are values: the vector moved from (APIC 0, masked) to
        // (APIC 3, unmasked) in the same series.
        assert_eq!(
            find(IRQ_ROUTE_DEST, &vector),
            Some(&DebugValue::Gauge(3.0.into()))
        );
        assert_eq!(
            find(IRQ_ROUTE_MASKED, &vector),
            Some(&DebugValue::Gauge(0.0.into()))
        );
        let per_vector = |name: &str| {
            snapshot
                .iter()
                .filter(|(k, ..)| k.key().name() == name)
                .count()
        };
        // `none` before MSI-X was enabled, then `msix`; one destination and mask each.
        assert_eq!(
            (
                per_vector(IRQ_ROUTE_GSI),
                per_vector(IRQ_ROUTE_DEST),
                per_vector(IRQ_ROUTE_MASKED)
            ),
            (2, 1, 1)
        );
        r.remove_device(bdf(3)).unwrap();
        let snapshot = snapshotter.snapshot().into_vec();
        // (A debugging snapshot reads a gauge as set since the previous snapshot.)
        let gauge = snapshot
            .iter()
            .find(|(k, ..)| {
                k.key().name() == IRQ_ROUTE_GSI && k.key().labels().any(|l| l.value() == "msix")
            })
            .map(|(.., v)| v);
        assert_eq!(gauge, Some(&DebugValue::Gauge((-1.0).into())));
    }

    /// A guest reprogramming one vector's destination and mask through every value
    /// creates no new series: what it can grow is bounded by the vector count.
    #[test]
    fn reprogramming_a_vector_creates_no_series() {
        use metrics_util::debugging::DebuggingRecorder;
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let (_chip, mut r) = router();
            let b = bdf(3);
            r.add_device(b, "gw", 1).unwrap();
            for dest in 0..=255u8 {
                for masked in [false, true] {
                    r.apply(&msix(b, 0, Some(msg(dest, 0x40)), masked)).unwrap();
                }
            }
            r.apply(&msi(b, 0, Some(msg(1, 0x41)), false)).unwrap();
        });
        let snapshot = snapshotter.snapshot().into_vec();
        let count = |name: &str| {
            snapshot
                .iter()
                .filter(|(k, ..)| k.key().name() == name)
                .count()
        };
        assert!(count(IRQ_ROUTE_GSI) <= 3, "{}", count(IRQ_ROUTE_GSI));
        assert_eq!(count(IRQ_ROUTE_DEST), 1);
        assert_eq!(count(IRQ_ROUTE_MASKED), 1);
    }

    #[test]
    fn router_is_send() {
        fn send<T: Send>() {}
        send::<IrqRouter>();
        send::<std::sync::Mutex<IrqRouter>>();
    }
}
