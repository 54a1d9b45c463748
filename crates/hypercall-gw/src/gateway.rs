//! [`Gateway`]: builds the PCI function, the queue threads and the service threads.

use std::collections::HashMap;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use irq_router::IrqHandle;
use pci_emu::PciFunction;
use vm_memory::GuestMemoryMmap;

use crate::backend::{spawn_relay, RelayHandle, RelayParams};
use crate::config::{BackendMode, GatewayConfig, GuestMemoryShare, ServiceConfig};
use crate::error::{Error, Result};
use crate::function::GatewayFunction;
use crate::queue::{self, QueueHandle, QueueParams};
use crate::service::{kv::KvStore, spawn_local, Echo, Registry, Route, Service};
use crate::stop::{GatewayStopper, StopSignal};

/// The hypercall gateway: a PCI function plus the threads that serve it.
pub struct Gateway {
    function: Arc<Mutex<GatewayFunction>>,
    queues: Vec<QueueHandle>,
    relays: Vec<RelayHandle>,
    services: Vec<JoinHandle<()>>,
    stop_services: Option<crossbeam_channel::Sender<()>>,
    stop: GatewayStopper,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("queues", &self.queues.len())
            .field("relays", &self.relays.len())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds the gateway: `irqs` holds one handle per vector (MSI-X entry / MSI
    /// message, same index), `share` is required by direct-mode backends. Spawns one
    /// thread per queue, per in-process service and per external backend (plus its
    /// socket acceptor).
    pub fn new(
        config: GatewayConfig,
        mem: GuestMemoryMmap,
        share: Option<GuestMemoryShare>,
        irqs: Vec<IrqHandle>,
    ) -> Result<Gateway> {
        config.validate()?;
        if irqs.len() < usize::from(config.msix_vectors) {
            return Err(Error::Config(format!(
                "{} interrupt handles for {} vectors",
                irqs.len(),
                config.msix_vectors
            )));
        }
        let mut ports = Vec::new();
        let mut ctl_rx = Vec::new();
        for _ in 0..config.queues {
            let (p, rx) = queue::port()?;
            ports.push(p);
            ctl_rx.push(rx);
        }
        let mut routes: HashMap<u32, Route> = HashMap::new();
        let mut services = Vec::new();
        let mut relays = Vec::new();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        for s in &config.services {
            let tx = match s {
                ServiceConfig::Kv { nr } | ServiceConfig::Echo { nr } => {
                    let svc: Box<dyn Service> = match s {
                        ServiceConfig::Kv { .. } => Box::new(KvStore::new(*nr)),
                        _ => Box::new(Echo),
                    };
                    let (tx, join) =
                        spawn_local(format!("hcgw-svc-{nr:#x}"), svc, stop_rx.clone())?;
                    services.push(join);
                    tx
                }
                ServiceConfig::External {
                    nr,
                    count,
                    socket,
                    mode,
                    queue,
                } => {
                    if *mode == BackendMode::Direct && share.is_none() {
                        return Err(Error::Config(format!(
                            "direct service {nr:#x} needs guest memory shared as a memfd"
                        )));
                    }
                    let r = spawn_relay(RelayParams {
                        vm: config.vm.clone(),
                        first_nr: *nr,
                        count: *count,
                        socket: socket.clone(),
                        mode: *mode,
                        queue: queue.and_then(|q| ports.get(usize::from(q)).cloned()),
                        share: share.clone(),
                        timeout: config.backend_timeout,
                    })?;
                    let tx = r.jobs.clone();
                    relays.push(r);
                    tx
                }
            };
            for n in s.nr()..s.nr() + s.count() {
                routes.insert(n, tx.clone());
            }
        }
        let registry = Registry::new(routes);
        let isr = Arc::new(AtomicU8::new(0));
        let mut queues = Vec::new();
        for (i, rx) in ctl_rx.into_iter().enumerate() {
            queues.push(queue::spawn(
                QueueParams {
                    index: i as u16,
                    max_size: config.queue_size,
                    vm: config.vm.clone(),
                    mem: mem.clone(),
                    registry: registry.clone(),
                    irqs: irqs.clone(),
                    isr: isr.clone(),
                    timeout: config.backend_timeout,
                },
                ports[i].clone(),
                rx,
            )?);
        }
        let stop = StopSignal::new();
        let function =
            GatewayFunction::new(&config, mem, registry, irqs, ports, isr, stop.clone())?;
        Ok(Gateway {
            function: Arc::new(Mutex::new(function)),
            queues,
            relays,
            services,
            stop_services: Some(stop_tx),
            stop: GatewayStopper(stop),
        })
    }

    /// The PCI function to add to the bus.
    pub fn function(&self) -> Arc<Mutex<dyn PciFunction>> {
        self.function.clone()
    }

    /// A handle that ends every wait for a service at once (see [`GatewayStopper`]).
    /// Call it when the VM is asked to stop, before joining the vCPUs: a vCPU in a
    /// synchronous call to a stalled backend then returns at once.
    pub fn stopper(&self) -> GatewayStopper {
        self.stop.clone()
    }

    /// Stops every thread. Calls in flight are answered EBUSY where possible.
    pub fn shutdown(mut self) {
        self.stop.stop();
        for q in &mut self.queues {
            q.stop();
        }
        for r in &mut self.relays {
            r.stop();
        }
        // In-process service threads exit when their stop channel closes; a sync call
        // that arrives later finds the service gone and gets EBUSY.
        self.stop_services.take();
        for s in self.services.drain(..) {
            let _ = s.join();
        }
    }
}
