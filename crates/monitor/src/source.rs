//! Where the dashboard reads metrics from: the in-process exporter or HTTP endpoints.

use std::sync::Arc;

use crate::model::Snapshot;
use crate::{http_client, Error, Exporter, PromQuery, Result};

/// A metrics source.
#[derive(Clone)]
pub enum Source {
    /// This process's recorder (`kvmbus run --tui`): a function returning exposition text.
    InProcess(Arc<dyn Fn() -> String + Send + Sync>),
    /// Scrape endpoints (`kvmbus top URL...`), e.g. `http://127.0.0.1:9464/metrics` or
    /// `127.0.0.1:9464`; one per VM, merged by their `vm` label.
    Http(Vec<String>),
    /// A Prometheus server's HTTP API (`kvmbus top --prometheus URL [--match SELECTOR]`):
    /// every VM it scrapes, across hosts.
    Prometheus(PromQuery),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl From<Exporter> for Source {
    fn from(exporter: Exporter) -> Source {
        Source::InProcess(Arc::new(move || exporter.render()))
    }
}

/// One fetch: the merged snapshot and a message per endpoint that failed.
#[derive(Debug, Default)]
pub struct Fetched {
    /// What was read (empty if everything failed).
    pub snapshot: Snapshot,
    /// One message per failing endpoint.
    pub errors: Vec<String>,
}

impl Source {
    /// An in-process source from any text producer.
    pub fn in_process(f: impl Fn() -> String + Send + Sync + 'static) -> Source {
        Source::InProcess(Arc::new(f))
    }

    /// An HTTP source; checks every URL now.
    pub fn http(urls: Vec<String>) -> Result<Source> {
        for u in &urls {
            http_client::parse_url(u)?;
        }
        if urls.is_empty() {
            return Err(Error::BadUrl(String::new()));
        }
        Ok(Source::Http(urls))
    }

    /// A Prometheus source: `url` of the server, `selector` of label matchers.
    pub fn prometheus(url: &str, selector: Option<&str>) -> Result<Source> {
        PromQuery::new(url, selector).map(Source::Prometheus)
    }

    /// A short description for the title bar.
    pub fn describe(&self) -> String {
        match self {
            Source::InProcess(_) => "in-process".into(),
            Source::Http(urls) => urls.join(" "),
            Source::Prometheus(q) if q.matchers.is_empty() => format!("prometheus {}", q.base),
            Source::Prometheus(q) => format!("prometheus {} {{{}}}", q.base, q.matchers),
        }
    }

    /// Reads every endpoint; failures are collected, not fatal.
    pub fn fetch(&self) -> Fetched {
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        for r in self.fetch_each() {
            match r {
                Ok(s) => parts.push(s),
                Err(e) => errors.push(error_chain(&e)),
            }
        }
        Fetched {
            snapshot: Snapshot::merge(parts),
            errors,
        }
    }

    /// Like [`Source::fetch`], but the first error when no endpoint could be read.
    pub fn fetch_all(&self) -> Result<Snapshot> {
        let mut parts = Vec::new();
        let mut first_err = None;
        for r in self.fetch_each() {
            match r {
                Ok(s) => parts.push(s),
                Err(e) => {
                    log::warn!("{}", error_chain(&e));
                    first_err.get_or_insert(e);
                }
            }
        }
        match (parts.is_empty(), first_err) {
            (true, Some(e)) => Err(e),
            _ => Ok(Snapshot::merge(parts)),
        }
    }

    fn fetch_each(&self) -> Vec<Result<Snapshot>> {
        match self {
            Source::InProcess(f) => vec![Snapshot::parse(&f())],
            Source::Http(urls) => urls
                .iter()
                .map(|u| http_client::get(u).and_then(|t| Snapshot::parse(&t)))
                .collect(),
            Source::Prometheus(q) => vec![q.fetch()],
        }
    }
}

/// `error: cause: cause` in one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
