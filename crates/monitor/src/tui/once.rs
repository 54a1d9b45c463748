//! `kvmbus top --once`: one plain-text snapshot, like `kvm_stat -1`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::data::{self, Frames};
use super::fmt;
use crate::model::Snapshot;
use crate::{Result, Source};

/// One snapshot with rates: two scrapes one second apart (see [`snapshot_text_with`]).
pub fn snapshot_text(source: &Source) -> Result<String> {
    snapshot_text_with(source, Duration::from_secs(1))
}

/// Scrapes `source`, waits `interval`, scrapes again and prints per VM: state, exits per
/// reason summed over vCPUs (userspace and KVM, totals since start and rates), interrupts
/// and hypercalls. With a zero `interval` it scrapes once and prints totals only (`-`
/// rates). Fails only when no endpoint answers.
pub fn snapshot_text_with(source: &Source, interval: Duration) -> Result<String> {
    snapshot_text_opts(source, interval, false)
}

/// [`snapshot_text_with`], leaving out rows whose totals are all zero when `skip_zero`
/// (`kvmbus top --once -z`).
pub fn snapshot_text_opts(source: &Source, interval: Duration, skip_zero: bool) -> Result<String> {
    let first = source.fetch_all()?;
    let second = if interval.is_zero() {
        None
    } else {
        std::thread::sleep(interval);
        Some(source.fetch_all()?)
    };
    let empty = Snapshot::default();
    let frames = match &second {
        Some(cur) => Frames {
            base: &empty,
            prev: &first,
            cur,
        },
        None => Frames {
            base: &first,
            prev: &first,
            cur: &first,
        },
    };
    Ok(render(&frames, skip_zero))
}

fn render(f: &Frames, skip_zero: bool) -> String {
    let nonzero = |vs: &[Option<f64>]| !skip_zero || vs.iter().any(|v| v.is_some_and(|v| v != 0.0));
    let mut out = String::new();
    let overview = data::overview(f);
    if overview.is_empty() {
        out.push_str("no data: no metrics with a vm label\n");
    }
    let exits = data::exits(f);
    let irqs = data::interrupts(f);
    let calls = data::hypercalls(f);
    for o in overview {
        let _ = writeln!(
            out,
            "vm {}  state {}  uptime {}  vcpus {}  memory {}",
            o.vm,
            o.state.as_deref().unwrap_or("?"),
            fmt::uptime(o.uptime),
            fmt::count(o.vcpus),
            fmt::bytes(o.memory)
        );
        let mut by_reason: BTreeMap<&str, [Option<f64>; 4]> = BTreeMap::new();
        for r in exits.iter().filter(|r| r.vm == o.vm) {
            let e = by_reason.entry(r.reason.as_str()).or_default();
            for (slot, v) in e
                .iter_mut()
                .zip([r.user_total, r.user_rate, r.kvm_total, r.kvm_rate])
            {
                if let Some(v) = v {
                    *slot.get_or_insert(0.0) += v;
                }
            }
        }
        let mut reasons: Vec<_> = by_reason.into_iter().collect();
        reasons.sort_by(|a, b| {
            let t = |v: &[Option<f64>; 4]| v[0].unwrap_or(0.0).max(v[2].unwrap_or(0.0));
            t(&b.1).total_cmp(&t(&a.1))
        });
        let _ = writeln!(
            out,
            " {:<24}{:>12}{:>12}{:>12}{:>12}",
            "exit reason", "user", "user/s", "kvm", "kvm/s"
        );
        for (reason, v) in reasons.into_iter().filter(|(_, v)| nonzero(&[v[0], v[2]])) {
            let _ = writeln!(
                out,
                " {reason:<24}{:>12}{:>12}{:>12}{:>12}",
                fmt::count(v[0]),
                fmt::rate(v[1]),
                fmt::count(v[2]),
                fmt::rate(v[3])
            );
        }
        let _ = writeln!(
            out,
            " {:<24}{:>12}{:>12}{:>12}",
            "interrupt (device vec)", "total", "rate/s", "gsi"
        );
        for r in irqs.iter().filter(|r| r.vm == o.vm && nonzero(&[r.total])) {
            let name = format!("{} {}", r.device, r.vector);
            let gsi = r.gsi.map_or("-".into(), |g| format!("{g}"));
            let _ = writeln!(
                out,
                " {name:<24}{:>12}{:>12}{gsi:>12}",
                fmt::count(r.total),
                fmt::rate(r.rate)
            );
        }
        let _ = writeln!(
            out,
            " {:<24}{:>12}{:>12}{:>12}{:>12}",
            "hypercall (nr path)", "total", "rate/s", "p50", "p99"
        );
        for r in calls.iter().filter(|r| r.vm == o.vm && nonzero(&[r.total])) {
            let name = format!("{} {}", r.nr, r.path);
            let _ = writeln!(
                out,
                " {name:<24}{:>12}{:>12}{:>12}{:>12}",
                fmt::count(r.total),
                fmt::rate(r.rate),
                fmt::secs(r.p50),
                fmt::secs(r.p99)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixture;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn once_prints_exits_interrupts_and_hypercalls() {
        let step = Arc::new(AtomicU64::new(0));
        let s = step.clone();
        let source =
            Source::in_process(move || fixture::text(s.fetch_add(1, Ordering::SeqCst).min(1)));
        let text = snapshot_text_with(&source, Duration::from_millis(20)).unwrap();
        assert!(
            text.starts_with("vm demo  state running  uptime 1:02:04  vcpus 2  memory 64 MiB"),
            "{text}"
        );
        let io = text
            .lines()
            .find(|l| l.trim_start().starts_with("io "))
            .unwrap();
        assert!(io.contains(" 4530 "), "user io total = 1515 + 3015: {io}");
        assert!(text.contains(" ALL "));
        assert!(text
            .lines()
            .any(|l| l.trim_start().starts_with("hypercall-gw 0")));
        assert!(text.lines().any(|l| l.trim_start().starts_with("1 sync")));
    }

    #[test]
    fn once_skip_zero_leaves_out_zero_rows() {
        let source = Source::in_process(|| {
            fixture::text(0)
                + "kvmbus_vcpu_exits_total{vm=\"demo\",vcpu=\"0\",reason=\"shutdown\"} 0\n"
        });
        let all = snapshot_text_opts(&source, Duration::ZERO, false).unwrap();
        let some = snapshot_text_opts(&source, Duration::ZERO, true).unwrap();
        let zero_row = |t: &str| {
            t.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() >= 3 && w[1..].iter().all(|x| *x == "0" || *x == "-")
            })
        };
        assert!(zero_row(&all), "the fixture has a zero row:\n{all}");
        assert!(!zero_row(&some), "{some}");
        assert!(some.contains(" io "), "{some}");
    }

    #[test]
    fn once_without_interval_has_totals_only() {
        let source = Source::in_process(|| fixture::text(0));
        let text = snapshot_text_with(&source, Duration::ZERO).unwrap();
        let io = text
            .lines()
            .find(|l| l.trim_start().starts_with("io "))
            .unwrap();
        assert!(io.contains(" 3020 ") && io.contains(" -"), "{io}");
    }

    #[test]
    fn once_reports_unreachable_endpoints() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let source = Source::Http(vec![format!("127.0.0.1:{port}")]);
        assert!(snapshot_text_with(&source, Duration::ZERO).is_err());
        let empty = Source::in_process(String::new);
        assert!(snapshot_text_with(&empty, Duration::ZERO)
            .unwrap()
            .starts_with("no data"));
    }
}
