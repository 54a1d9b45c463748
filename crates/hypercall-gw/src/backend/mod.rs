//! External backends: processes that serve hypercall numbers over a Unix socket.
//!
//! The VMM listens on the configured socket; a backend connects and says HELLO. In
//! relay mode the relay thread forwards each call as a REQUEST and waits for the
//! RESPONSE; in direct mode it additionally hands the backend the guest memory memfd
//! and the queue's doorbell eventfd and completion irqfd (QUEUE message, SCM_RIGHTS),
//! and the backend serves that queue itself. [`run_backend`] is the example backend.

pub mod proto;
mod relay;
mod run;

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

pub(crate) use relay::{spawn_relay, RelayHandle, RelayParams};
pub use run::{run_backend, BackendOptions};

/// What the relay thread of one external service is told.
#[derive(Debug)]
pub(crate) enum RelayEvent {
    /// The acceptor got a connection that said HELLO with `mode`.
    Connected { stream: UnixStream, mode: u32 },
    /// A message from connection `conn`.
    Message { conn: u64, msg: proto::Msg },
    /// Connection `conn` hit EOF or an error.
    Closed { conn: u64 },
    /// A queue thread released its queue for connection `conn`.
    Handoff { conn: u64, info: Handoff },
    /// A queue thread saw no progress from connection `conn`'s backend.
    Stalled { conn: u64 },
    /// The guest reset the queue connection `conn` held.
    Revoked { conn: u64 },
    /// The gateway is shutting down.
    Stop,
}

/// A queue released for a direct backend.
#[derive(Debug)]
pub(crate) struct Handoff {
    /// Queue state (regions are filled in by the relay thread).
    pub msg: proto::QueueMsg,
    /// The queue's doorbell.
    pub doorbell: Arc<EventFd>,
    /// The completion irqfd, if the queue has a vector.
    pub irq: Option<Arc<EventFd>>,
}
