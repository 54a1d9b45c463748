//! `[hypercall]` and its `[[hypercall.service]]` tables, parsed into the gateway's own
//! [`ServiceConfig`]s. Every rule about services is checked here, once, with its place;
//! the rules that involve the gateway device are in [`super::rules`].

use hypercall_gw::{BackendMode, ServiceConfig};
use serde::Deserialize;
use toml::Spanned;

use super::cx::{ParseCx, Value};
use super::schema::HypercallConfig;
use super::ConfigError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHypercall {
    backend_timeout_ms: Option<Spanned<i64>>,
    #[serde(default)]
    service: Vec<Spanned<RawService>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    nr: Spanned<i64>,
    kind: Spanned<String>,
    socket: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    count: Option<Spanned<i64>>,
    queue: Option<Spanned<i64>>,
}

/// A parsed service and the place later rules point at.
pub struct PlacedService {
    /// The service.
    pub service: ServiceConfig,
    /// The line of its `[[hypercall.service]]` header.
    pub line: usize,
    /// The span of its `nr`.
    pub span: std::ops::Range<usize>,
    /// The span of its `queue` (direct services).
    pub queue_span: Option<std::ops::Range<usize>>,
}

const T: &str = "[hypercall.service]";

/// Parses `[hypercall]`; absent means no services and the default timeout.
pub(crate) fn parse(
    cx: &ParseCx,
    value: Option<Value<'_>>,
) -> Result<(HypercallConfig, Vec<PlacedService>), ConfigError> {
    let Some(value) = value else {
        return Ok((HypercallConfig::default(), Vec::new()));
    };
    let raw: RawHypercall = cx.deserialize(value)?;
    let timeout = cx.int(
        &raw.backend_timeout_ms,
        "backend_timeout_ms",
        "hypercall",
        1..=600_000,
        1000,
    )? as u64;
    let mut out: Vec<PlacedService> = Vec::new();
    for s in raw.service {
        let line = cx.place(&s).0;
        let mut placed = service(cx, s.into_inner())?;
        placed.line = line;
        let (nr, end) = range(&placed.service);
        if out.iter().any(|o| o.service.nr() == placed.service.nr()) {
            return cx.err(
                placed.span,
                format!("key 'nr' in [[hypercall.service]] repeats {nr:#x}, already routed above"),
            );
        }
        if let Some(o) = out.iter().find(|o| {
            let (a, b) = range(&o.service);
            nr < b && a < end
        }) {
            return cx.err(
                placed.span,
                format!("[[hypercall.service]] numbers {nr:#x}..{end:#x} overlap those of the service at line {}", o.line),
            );
        }
        out.push(placed);
    }
    Ok((
        HypercallConfig {
            backend_timeout_ms: timeout,
            services: out.iter().map(|p| p.service.clone()).collect(),
        },
        out,
    ))
}

fn range(s: &ServiceConfig) -> (u64, u64) {
    (s.nr() as u64, s.nr() as u64 + s.count() as u64)
}

fn service(cx: &ParseCx, s: RawService) -> Result<PlacedService, ConfigError> {
    let nr = cx.int(&Some(s.nr.clone()), "nr", T, 0x100..=0xFFFF_FFFF, 0)? as u32;
    let kind = cx.choice(
        Some(&s.kind),
        "kind",
        T,
        &[("kv", "kv"), ("echo", "echo"), ("external", "external")],
        "kv",
    )?;
    if kind != "external" {
        if let Some(k) = s.socket.as_ref().or(s.mode.as_ref()) {
            return cx.err(
                k.span(),
                format!("keys 'socket' and 'mode' in [[hypercall.service]] are for kind 'external', not '{kind}'"),
            );
        }
        if let Some(k) = s.count.as_ref().or(s.queue.as_ref()) {
            return cx.err(
                k.span(),
                format!("keys 'count' and 'queue' in [[hypercall.service]] are for kind 'external', not '{kind}'"),
            );
        }
        let service = if kind == "kv" {
            ServiceConfig::Kv { nr }
        } else {
            ServiceConfig::Echo { nr }
        };
        return Ok(PlacedService {
            service,
            line: 0,
            span: s.nr.span(),
            queue_span: None,
        });
    }
    let Some(socket) = &s.socket else {
        return cx.err(
            s.kind.span(),
            "[[hypercall.service]] of kind 'external' needs key 'socket'".into(),
        );
    };
    let count = cx.int(&s.count, "count", T, 1..=0x1_0000, 1)? as u32;
    if nr as u64 + count as u64 > 1 << 32 {
        let span = s.count.as_ref().map_or(s.nr.span(), |c| c.span());
        return cx.err(
            span,
            format!("[[hypercall.service]] nr {nr:#x} + count {count} passes 2^32"),
        );
    }
    let mode = cx.choice(
        s.mode.as_ref(),
        "mode",
        T,
        &[
            ("relay", BackendMode::Relay),
            ("direct", BackendMode::Direct),
        ],
        BackendMode::Relay,
    )?;
    let queue = match &s.queue {
        None => None,
        Some(q) => Some(cx.int(&Some(q.clone()), "queue", T, 0..=63, 0)? as u16),
    };
    if (mode == BackendMode::Direct) != queue.is_some() {
        let span = s.queue.as_ref().map_or(s.kind.span(), |q| q.span());
        return cx.err(
            span,
            "key 'queue' in [[hypercall.service]] goes with mode = 'direct' (the queue handed to the backend), and only with it".into(),
        );
    }
    Ok(PlacedService {
        service: ServiceConfig::External {
            nr,
            count,
            socket: cx.path(socket.get_ref()),
            mode,
            queue,
        },
        line: 0,
        span: s.nr.span(),
        queue_span: s.queue.as_ref().map(|q| q.span()),
    })
}
