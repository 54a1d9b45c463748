//! Stopping without waiting for backends: a [`GatewayStopper`] ends every synchronous
//! call that waits for a service (answered EBUSY) at once, so a vCPU blocked in CALL_LO
//! on a stalled backend leaves it as soon as the VM stops, not `backend_timeout` later.

use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

/// Shared stop state: closing the sender wakes every receiver.
#[derive(Debug)]
pub(crate) struct StopSignal {
    tx: Mutex<Option<Sender<()>>>,
    rx: Receiver<()>,
}

impl StopSignal {
    pub(crate) fn new() -> Arc<StopSignal> {
        let (tx, rx) = crossbeam_channel::bounded(0);
        Arc::new(StopSignal {
            tx: Mutex::new(Some(tx)),
            rx,
        })
    }

    /// Becomes ready (disconnected) once the gateway stops.
    pub(crate) fn receiver(&self) -> &Receiver<()> {
        &self.rx
    }

    fn stop(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Ends the gateway's waits for services; cheap to clone, callable from any thread
/// (e.g. from the VM's stop request, before the vCPUs are joined).
#[derive(Debug, Clone)]
pub struct GatewayStopper(pub(crate) Arc<StopSignal>);

impl GatewayStopper {
    /// From now on no synchronous call waits for a service: waiting ones and new ones
    /// are answered EBUSY at once.
    pub fn stop(&self) {
        self.0.stop();
    }
}
