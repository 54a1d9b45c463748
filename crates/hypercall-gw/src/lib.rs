//! The hypercall gateway: a PCI function through which a guest calls services in (or
//! beside) the VMM.
//!
//! The guest finds the function on the PCI bus (vendor 0x1234, device 0x4843), reads
//! the vendor capability for the ABI version and queue limits, and then either
//! * writes a call block's address to CALL_LO (synchronous path: the call runs on the
//!   exiting vCPU), or
//! * posts requests on split virtqueues and rings QUEUE_NOTIFY, an ioeventfd (ring
//!   path: a queue thread serves them and raises the queue's MSI-X/MSI vector).
//!
//! Numbers 0–3 are built in; numbers from 0x100 are routed by configuration to
//! in-process services (each on its own thread) or to external backend processes over
//! a Unix socket, in relay or direct mode. The guest-visible ABI and the backend
//! protocol are documented in `docs/hypercall-abi.md`.
#![deny(missing_docs)]

pub mod abi;
mod backend;
mod config;
mod error;
mod function;
mod gateway;
mod metrics;
mod queue;
mod ring;
mod service;
mod stop;
mod sys;
#[cfg(test)]
mod tests;

pub use backend::proto;
pub use backend::{run_backend, BackendOptions};
pub use config::{BackendMode, GatewayConfig, GuestMemoryShare, ServiceConfig};
pub use error::{Error, Result};
pub use function::{GatewayFunction, MSIX_BAR};
pub use gateway::Gateway;
pub use metrics::{Path, HYPERCALLS, HYPERCALL_SECONDS};
#[cfg(any(test, feature = "test-utils"))]
pub use ring::test_driver;
pub use service::kv::{KvStore, KV_NUMBERS};
pub use service::{Echo, Service};
pub use stop::GatewayStopper;
