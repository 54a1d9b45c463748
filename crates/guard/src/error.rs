//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Errors of the guard helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket path is taken by a listener that answers.
    #[error("{0} is in use by a running listener")]
    InUse(PathBuf),
    /// The socket path names something that is not a socket.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// A system call on the path failed.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
