//! Defences shared by the kvmbus crates against a hostile guest and hostile local
//! processes.
//!
//! * [`ratelog`]: every log line a guest can cause goes through [`guest_log!`], which
//!   lets a few lines per call site through per second, counts the rest in
//!   `kvmbus_log_suppressed_total` and prints a summary line for what it held back.
//! * [`unix_socket`]: binding a Unix socket listener safely (never taking over a path a
//!   live listener owns, never deleting what is not a socket, mode 0600) and checking a
//!   connecting peer's uid with `SO_PEERCRED`.
//!
//! The crate depends on no other kvmbus crate, so every component may use it.
#![deny(missing_docs)]

pub mod ratelog;
pub mod unix_socket;

mod error;

pub use error::{Error, Result};
pub use ratelog::{log_summary, RateLimit, LOG_SUPPRESSED};
pub use unix_socket::{bind_private, peer_uid, PeerCheck};

#[doc(hidden)]
pub use log as __log;
