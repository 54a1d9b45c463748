//! Errors of the vfio-user codec and transport.

/// What can go wrong on a vfio-user connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A message payload is shorter than its command requires, or inconsistent.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// The message or structure.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A header announces a size outside the negotiated bounds.
    #[error("message size {size} outside {min}..={max}")]
    Size {
        /// The announced size.
        size: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// More file descriptors arrived than allowed (they are closed).
    #[error("{got} file descriptors in one message, at most {max} allowed")]
    TooManyFds {
        /// How many arrived.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// The command number is not one this side knows.
    #[error("unknown command {0}")]
    UnknownCommand(u16),
    /// A reply did not arrive before the deadline.
    #[error("no reply within {0:?}")]
    Timeout(std::time::Duration),
    /// The wait was cut short: this side was told to stop waiting (see
    /// [`Channel::set_cancel`](crate::Channel::set_cancel)) and nothing came in the grace.
    #[error("stopped waiting (this side is stopping)")]
    Stopped,
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
    /// A reply does not match the request (id or command).
    #[error("reply mismatch: {0}")]
    Mismatch(String),
    /// The peer answered with an error reply.
    #[error("peer answered {command:?} with errno {errno}")]
    Peer {
        /// The command.
        command: crate::Command,
        /// The errno it set.
        errno: u32,
    },
    /// The VERSION JSON is invalid or unsupported.
    #[error("version negotiation: {0}")]
    Version(String),
    /// A socket operation failed.
    #[error("{what} failed")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Error {
    Error::Malformed {
        what,
        detail: detail.into(),
    }
}
