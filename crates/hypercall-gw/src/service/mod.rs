//! Services: what a hypercall number does.
//!
//! Built-ins (0–3) run inline on the thread that sees the call. Configured in-process
//! services each run on their own thread and are fed [`Job`]s over a crossbeam channel;
//! external backends are fed the same jobs by their relay thread (`backend::relay`).
//! A job carries where its reply goes ([`ReplyTo`]): back to a waiting vCPU (sync path)
//! or to the queue thread that popped it (ring path), which writes the used entry.

pub mod builtin;
pub mod kv;
mod registry;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use vmm_sys_util::eventfd::EventFd;

use crate::abi::{Request, Response};
use crate::error::{Error, Result};
use crate::metrics::Path;

pub(crate) use registry::{Registry, Route};

/// A service: turns a request into a response.
pub trait Service: Send {
    /// Serves one call.
    fn call(&mut self, req: &Request) -> Response;
}

/// The in-process echo service: ret = `args[0]`.
#[derive(Debug, Default)]
pub struct Echo;

impl Service for Echo {
    fn call(&mut self, req: &Request) -> Response {
        Response::ok(req.args[0] as i64)
    }
}

/// Where a ring request's response goes once it is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RingCtx {
    /// Queue generation (bumped on every enable) so stale replies are dropped.
    pub gen: u64,
    /// Head descriptor index (the used entry's id).
    pub head: u16,
    /// Guest address of the 16-byte device-writable buffer.
    pub resp_addr: u64,
    /// Service number (for metrics).
    pub nr: u32,
    /// When the queue thread popped the request.
    pub start: Instant,
}

/// A completed ring request on its way back to its queue thread.
#[derive(Debug)]
pub(crate) struct Completion {
    /// Which request.
    pub ctx: RingCtx,
    /// Its response.
    pub resp: Response,
    /// Where it was served (ring for in-process services, relay for external ones).
    pub path: Path,
}

/// Where a job's response goes.
#[derive(Debug)]
pub(crate) enum ReplyTo {
    /// A vCPU waiting in CALL_LO.
    Sync(Sender<(Response, Path)>),
    /// A queue thread; `wake` is signalled after the completion is sent.
    Ring {
        tx: Sender<Completion>,
        wake: Arc<EventFd>,
        ctx: RingCtx,
    },
}

impl ReplyTo {
    /// Delivers the response; a receiver that went away is ignored (its queue was
    /// reset or the gateway is shutting down).
    pub fn send(self, resp: Response, path: Path) {
        match self {
            ReplyTo::Sync(tx) => {
                let _ = tx.send((resp, path));
            }
            ReplyTo::Ring { tx, wake, ctx } => {
                if tx.send(Completion { ctx, resp, path }).is_ok() {
                    let _ = wake.write(1);
                }
            }
        }
    }
}

/// One call for a service thread.
#[derive(Debug)]
pub(crate) struct Job {
    /// The call.
    pub req: Request,
    /// Where the response goes.
    pub reply: ReplyTo,
}

/// Starts an in-process service on its own thread; it runs until `stop` is dropped
/// (or every sender of its channel is).
pub(crate) fn spawn_local(
    name: String,
    mut svc: Box<dyn Service>,
    stop: Receiver<()>,
) -> Result<(Sender<Job>, JoinHandle<()>)> {
    let (tx, rx): (Sender<Job>, Receiver<Job>) = crossbeam_channel::unbounded();
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || loop {
            crossbeam_channel::select! {
                recv(rx) -> job => match job {
                    Ok(job) => {
                        let resp = svc.call(&job.req);
                        job.reply.send(resp, Path::Ring);
                    }
                    Err(_) => return,
                },
                recv(stop) -> _ => return,
            }
        })
        .map_err(|e| Error::Spawn(name, e))?;
    Ok((tx, handle))
}
