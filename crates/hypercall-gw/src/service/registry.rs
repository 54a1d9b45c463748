//! The registry: hypercall number → service.

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::{builtin, Job, ReplyTo};
use crate::abi::{Request, Response, Status};

/// Where a configured number goes: the channel of its service thread (in-process
/// service or external backend relay).
pub(crate) type Route = Sender<Job>;

/// Immutable number → route map, shared by the sync path and every queue thread.
#[derive(Clone, Debug, Default)]
pub(crate) struct Registry {
    routes: Arc<HashMap<u32, Route>>,
}

impl Registry {
    /// A registry over `routes` (each number listed individually).
    pub fn new(routes: HashMap<u32, Route>) -> Registry {
        Registry {
            routes: Arc::new(routes),
        }
    }

    /// True if `nr` has a service (built-in or configured).
    pub fn known(&self, nr: u32) -> bool {
        builtin::is_builtin(nr) || self.routes.contains_key(&nr)
    }

    /// Serves `req`: built-ins and unknown numbers are answered at once (`Some`);
    /// configured numbers are queued to their service, which answers through `reply`
    /// (`None`). A service thread that is gone answers EBUSY.
    pub fn dispatch(&self, req: Request, reply: impl FnOnce() -> ReplyTo) -> Option<Response> {
        if let Some(resp) = builtin::call(&req) {
            return Some(resp);
        }
        let Some(tx) = self.routes.get(&req.nr) else {
            return Some(Response::err(Status::Enosys));
        };
        match tx.send(Job {
            req,
            reply: reply(),
        }) {
            Ok(()) => None,
            Err(_) => Some(Response::err(Status::Ebusy)),
        }
    }
}
