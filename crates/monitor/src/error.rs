//! The crate's one error type.

use std::net::SocketAddr;

/// Everything that can go wrong in the monitor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The metrics listener could not bind its address (taken port, no permission, ...).
    #[error("cannot listen for metrics on {addr}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// Why the bind failed.
        #[source]
        source: std::io::Error,
    },
    /// The http_sd listener could not bind its address.
    #[error("cannot listen for http_sd on {addr}")]
    SdBind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// Why the bind failed.
        #[source]
        source: std::io::Error,
    },
    /// A global metrics recorder is already installed in this process.
    #[error("a metrics recorder is already installed")]
    AlreadyInstalled,
    /// A thread could not be started.
    #[error("cannot start the {0} thread")]
    Thread(&'static str, #[source] std::io::Error),
    /// KVM_GET_STATS_FD failed.
    #[error("KVM_GET_STATS_FD failed")]
    StatsFd(#[source] std::io::Error),
    /// Reading KVM's binary statistics failed.
    #[error("cannot read KVM statistics")]
    StatsRead(#[source] std::io::Error),
    /// KVM's binary statistics header or descriptors are malformed.
    #[error("malformed KVM statistics: {0}")]
    StatsFormat(String),
    /// A metrics endpoint URL is not `http://host:port[/path]`.
    #[error("bad metrics URL {0:?}; expected http://host:port[/path]")]
    BadUrl(String),
    /// Fetching a metrics endpoint failed.
    #[error("cannot scrape {url}")]
    Scrape {
        /// The endpoint.
        url: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A metrics endpoint answered something other than 200 OK.
    #[error("{url} answered {status:?}")]
    HttpStatus {
        /// The endpoint.
        url: String,
        /// The status line.
        status: String,
    },
    /// The Prometheus text could not be parsed.
    #[error("bad exposition text at line {line}: {msg}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        msg: String,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    /// A thread panicked while the dashboard ran; the terminal was restored.
    #[error("a thread panicked; the dashboard stopped")]
    Panicked,
    /// A `--match` selector is not `{label matchers}`.
    #[error("bad selector {0:?}; expected {{label=\"value\", ...}}")]
    BadSelector(String),
    /// A Prometheus server's answer was unusable.
    #[error("Prometheus: {0}")]
    Prometheus(String),
    /// A service-discovery file could not be written or removed.
    #[error("SD file {path}: {what}")]
    Sd {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The terminal could not be set up, drawn or restored.
    #[error("terminal error")]
    Terminal(#[source] std::io::Error),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
