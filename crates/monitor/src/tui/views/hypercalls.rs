//! Hypercalls per number and path: rate, p50/p99 latency and status counts.

use ratatui::layout::{Constraint, Rect};
use ratatui::Frame;

use super::{sort_rows, table};
use crate::tui::app::App;
use crate::tui::data;
use crate::tui::fmt;

pub(super) fn draw(f: &mut Frame, area: Rect, app: &App) {
    let mut rows: Vec<data::HypercallRow> = data::hypercalls(&app.frames())
        .into_iter()
        .filter(|r| app.shows_vm(&r.vm) && app.shows_counts(&[r.total]))
        .filter(|r| app.passes(&format!("{} {} {}", r.vm, r.nr, r.path)))
        .collect();
    sort_rows(
        app,
        &mut rows,
        |r| r.rate.unwrap_or(0.0),
        |r| r.total.unwrap_or(0.0),
    );
    let rows = rows
        .into_iter()
        .map(|r| {
            let statuses: Vec<String> = r
                .statuses
                .iter()
                .map(|(s, n)| format!("{s}:{}", fmt::count(Some(*n))))
                .collect();
            vec![
                r.vm,
                r.nr,
                r.path,
                fmt::count(r.total),
                fmt::rate(r.rate),
                fmt::secs(r.p50),
                fmt::secs(r.p99),
                statuses.join(" "),
            ]
        })
        .collect();
    table(
        f,
        area,
        app,
        &[
            "VM", "Nr", "Path", "Total", "Rate/s", "p50", "p99", "Status",
        ],
        &[
            Constraint::Fill(1),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Fill(2),
        ],
        rows,
        "no hypercall metrics (kvmbus_hypercalls_total, kvmbus_hypercall_seconds)",
    );
}
