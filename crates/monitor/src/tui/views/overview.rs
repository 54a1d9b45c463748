//! One panel per VM: state and totals, the top exit reasons, per-vCPU exit rates,
//! interrupt routes, and sparklines of exit and IRQ rates over time beside a histogram
//! of recent hypercall latency. A single VM gets the whole screen; several share it.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Sparkline};
use ratatui::Frame;

use crate::model::Histogram;
use crate::names;
use crate::tui::app::App;
use crate::tui::data::{self, ExitRow, VmOverview, ALL_EXITS};
use crate::tui::fmt;

/// Rows a VM panel needs for its first section (border included).
const PANEL_MIN: u16 = 8;
/// Rows a panel needs to show the second section too.
const PANEL_FULL: u16 = 10;

pub(super) fn draw(f: &mut Frame, area: Rect, app: &App) {
    let vms: Vec<VmOverview> = data::overview(&app.frames())
        .into_iter()
        .filter(|o| app.shows_vm(&o.vm) && app.passes(&o.vm))
        .collect();
    if vms.is_empty() {
        f.render_widget(Paragraph::new("no data: no metrics with a vm label"), area);
        return;
    }
    let skip = app.scroll.min(vms.len() - 1);
    let shown = (vms.len() - skip) as u16;
    let height = (area.height / shown.max(1)).max(PANEL_MIN);
    let exits = data::exits(&app.frames());
    let irqs = data::interrupts(&app.frames());
    let mut y = area.y;
    for (i, o) in vms.iter().skip(skip).enumerate() {
        if y >= area.bottom() {
            break;
        }
        let last = i as u16 + 1 == shown;
        let h = if last {
            area.bottom() - y
        } else {
            height.min(area.bottom() - y)
        };
        draw_vm(
            f,
            Rect::new(area.x, y, area.width, h),
            app,
            o,
            &exits,
            &irqs,
        );
        y += h;
    }
}

fn pair((total, rate): (Option<f64>, Option<f64>)) -> String {
    format!("{:>7}/s {:>9}", fmt::rate(rate), fmt::count(total))
}

fn draw_vm(
    f: &mut Frame,
    area: Rect,
    app: &App,
    o: &VmOverview,
    exits: &[ExitRow],
    irqs: &[data::IrqRow],
) {
    let title = format!(
        " {} · {} · up {} · {} vCPU · {} ",
        o.vm,
        o.state.as_deref().unwrap_or("state unknown"),
        fmt::uptime(o.uptime),
        fmt::count(o.vcpus),
        fmt::bytes(o.memory)
    );
    let block = Block::bordered().title(fmt::ellipsize(&title, area.width.saturating_sub(2)));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let (upper, lower) = if area.height >= PANEL_FULL {
        let [u, l] = Layout::vertical([Constraint::Length(6), Constraint::Fill(1)]).areas(inner);
        (u, Some(l))
    } else {
        (inner, None)
    };
    let wide = inner.width >= 150;
    let vm_exits: Vec<&ExitRow> = exits.iter().filter(|r| r.vm == o.vm).collect();
    let totals = text_totals(o);
    let reasons = text_reasons(&vm_exits);
    let vcpus = text_vcpus(&vm_exits);
    let routes = text_routes(irqs.iter().filter(|r| r.vm == o.vm).collect());
    if wide {
        let [a, b, c] = Layout::horizontal([
            Constraint::Length(42),
            Constraint::Length(44),
            Constraint::Fill(1),
        ])
        .spacing(2)
        .areas(upper);
        f.render_widget(Paragraph::new(totals), a);
        f.render_widget(Paragraph::new(reasons), b);
        f.render_widget(Paragraph::new(vcpus), c);
        if let Some(lower) = lower {
            let [r, s] = Layout::horizontal([Constraint::Length(42), Constraint::Fill(1)])
                .spacing(2)
                .areas(lower);
            f.render_widget(Paragraph::new(routes), r);
            sparklines(f, s, app, o);
        }
    } else {
        let [a, b] = Layout::horizontal([Constraint::Length(38), Constraint::Fill(1)])
            .spacing(1)
            .areas(upper);
        f.render_widget(Paragraph::new(totals), a);
        f.render_widget(Paragraph::new(reasons), b);
        if let Some(lower) = lower {
            let [l, s] = Layout::horizontal([Constraint::Length(38), Constraint::Fill(1)])
                .spacing(1)
                .areas(lower);
            let mut left = vcpus;
            left.push(Line::raw(""));
            left.extend(routes);
            f.render_widget(Paragraph::new(left), l);
            sparklines(f, s, app, o);
        }
    }
}

fn bold(s: &str) -> Line<'static> {
    Line::styled(s.to_owned(), Style::new().add_modifier(Modifier::BOLD))
}

fn text_totals(o: &VmOverview) -> Vec<Line<'static>> {
    vec![
        bold(&format!("{:<11}{:>9} {:>9}", "", "rate", "total")),
        Line::raw(format!("exits user {}", pair(o.user_exits))),
        Line::raw(format!("exits KVM  {}", pair(o.kvm_exits))),
        Line::raw(format!("irqs       {}", pair(o.irqs))),
        Line::raw(format!("hypercalls {}", pair(o.hypercalls))),
        Line::raw(format!(
            "cfg space  {:>7}/s  unclaimed {}",
            fmt::rate(o.pci_config.1),
            fmt::count(o.unclaimed.0)
        )),
    ]
}

/// Exit reasons of the VM summed over vCPUs, busiest first (at most 5).
fn text_reasons(rows: &[&ExitRow]) -> Vec<Line<'static>> {
    let mut by: Vec<(String, f64, f64)> = Vec::new();
    for r in rows.iter().filter(|r| r.reason != ALL_EXITS) {
        let (u, k) = (r.user_rate.unwrap_or(0.0), r.kvm_rate.unwrap_or(0.0));
        match by.iter_mut().find(|b| b.0 == r.reason) {
            Some(b) => {
                b.1 += u;
                b.2 += k;
            }
            None => by.push((r.reason.clone(), u, k)),
        }
    }
    by.retain(|b| b.1 > 0.0 || b.2 > 0.0);
    by.sort_by(|a, b| (b.1 + b.2).total_cmp(&(a.1 + a.2)).then(a.0.cmp(&b.0)));
    let mut out = vec![bold("top exits       user/s     kvm/s")];
    if by.is_empty() {
        out.push(Line::raw("(no exits in the last interval)"));
    }
    for (reason, u, k) in by.into_iter().take(5) {
        out.push(Line::raw(format!(
            "{:<12} {:>9} {:>9}",
            fmt::ellipsize(&reason, 12),
            fmt::rate(Some(u)),
            fmt::rate(Some(k))
        )));
    }
    out
}

fn text_vcpus(rows: &[&ExitRow]) -> Vec<Line<'static>> {
    let mut all: Vec<&&ExitRow> = rows.iter().filter(|r| r.reason == ALL_EXITS).collect();
    all.sort_by_key(|r| r.vcpu.parse::<u64>().unwrap_or(u64::MAX));
    let mut out = vec![bold("vCPU   exits/s     kvm/s   avg")];
    for r in all.iter().take(8) {
        out.push(Line::raw(format!(
            "{:<4} {:>9} {:>9} {:>7}",
            r.vcpu,
            fmt::rate(r.user_rate),
            fmt::rate(r.kvm_rate),
            fmt::secs(r.avg)
        )));
    }
    if all.len() > 8 {
        out.push(Line::raw(format!(
            "... {} more (Exits view)",
            all.len() - 8
        )));
    }
    out
}

/// Routed vectors with their rates; unrouted, idle vectors are left out.
fn text_routes(rows: Vec<&data::IrqRow>) -> Vec<Line<'static>> {
    let mut routed: Vec<&data::IrqRow> = rows
        .into_iter()
        .filter(|r| r.gsi.is_some_and(|g| g >= 0.0))
        .collect();
    routed.sort_by(|a, b| b.rate.unwrap_or(0.0).total_cmp(&a.rate.unwrap_or(0.0)));
    let mut out = vec![bold("interrupt routes            irqs/s")];
    if routed.is_empty() {
        out.push(Line::raw("(no vector routed)"));
    }
    for r in routed.iter().take(4) {
        let name = fmt::ellipsize(&format!("{} {}", r.device, r.vector), 14);
        let gsi = r.gsi.map_or(String::new(), |g| format!("{g}"));
        out.push(Line::raw(format!(
            "{name:<14} gsi {gsi:>3} cpu {:<3} {:>7}",
            fmt::ellipsize(
                if r.dest.starts_with('-') {
                    "-"
                } else {
                    &r.dest
                },
                3
            ),
            fmt::rate(r.rate)
        )));
    }
    if routed.len() > 4 {
        out.push(Line::raw(format!(
            "... {} more (Interrupts view)",
            routed.len() - 4
        )));
    }
    out
}

fn sparklines(f: &mut Frame, area: Rect, app: &App, o: &VmOverview) {
    if area.width < 10 || area.height < 3 {
        return;
    }
    let history = app.history.get(&o.vm).cloned().unwrap_or_default();
    let thirds = [
        Constraint::Fill(1),
        Constraint::Fill(1),
        Constraint::Fill(1),
    ];
    let [top, mid, bottom] = if area.width >= 100 {
        Layout::horizontal(thirds).spacing(2).areas(area)
    } else {
        Layout::vertical(thirds).areas(area)
    };
    let tail = |q: &std::collections::VecDeque<u64>, w: u16| -> Vec<u64> {
        q.iter()
            .skip(q.len().saturating_sub(w as usize))
            .copied()
            .collect()
    };
    let last = |q: &std::collections::VecDeque<u64>| q.back().map(|&v| v as f64);
    f.render_widget(
        Sparkline::default()
            .block(Block::new().title(format!("exits/s  now {}", fmt::rate(last(&history.exits)))))
            .data(tail(&history.exits, top.width)),
        top,
    );
    f.render_widget(
        Sparkline::default()
            .block(Block::new().title(format!("irqs/s  now {}", fmt::rate(last(&history.irqs)))))
            .data(tail(&history.irqs, mid.width)),
        mid,
    );
    let frames = app.frames();
    let recent: Vec<Histogram> = frames
        .cur
        .histograms(names::HYPERCALL_SECONDS)
        .into_iter()
        .filter(|h| h.labels.iter().any(|(k, v)| k == "vm" && *v == o.vm))
        .map(|h| frames.recent(names::HYPERCALL_SECONDS, &h))
        .collect();
    let (counts, p50, p99) = latency_histogram(&recent);
    // Each bucket as a bar as wide as the area allows.
    let per = (bottom.width as usize / counts.len().max(1)).clamp(1, 8);
    let bars: Vec<u64> = counts
        .iter()
        .flat_map(|&c| std::iter::repeat_n(c, per))
        .collect();
    let title = if counts.iter().all(|&c| c == 0) {
        "hypercall latency: no calls".to_owned()
    } else {
        format!(
            "hypercall latency 1µs..1s  p50 {}  p99 {}",
            fmt::secs(p50),
            fmt::secs(p99)
        )
    };
    f.render_widget(
        Sparkline::default()
            .block(Block::new().title(fmt::ellipsize(&title, bottom.width)))
            .data(bars),
        bottom,
    );
}

/// Per-bucket (not cumulative) counts of the finite buckets of several histograms added
/// up, and their p50/p99.
fn latency_histogram(hs: &[Histogram]) -> (Vec<u64>, Option<f64>, Option<f64>) {
    let Some(first) = hs.first() else {
        return (Vec::new(), None, None);
    };
    let mut sum = first.clone();
    for h in &hs[1..] {
        if h.buckets.len() == sum.buckets.len() {
            for (a, b) in sum.buckets.iter_mut().zip(&h.buckets) {
                a.1 += b.1;
            }
            sum.count += h.count;
            sum.sum += h.sum;
        }
    }
    let mut prev = 0.0;
    let counts = sum
        .buckets
        .iter()
        .filter(|(le, _)| le.is_finite())
        .map(|&(_, c)| {
            let n = (c - prev).max(0.0);
            prev = c;
            n.round() as u64
        })
        .collect();
    (counts, sum.quantile(0.5), sum.quantile(0.99))
}
