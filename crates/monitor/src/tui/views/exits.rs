//! Exits per vCPU and reason: userspace (kvmbus) and in-kernel (KVM stats) side by side.

use ratatui::layout::{Constraint, Rect};
use ratatui::Frame;

use super::{sort_rows, table};
use crate::tui::app::App;
use crate::tui::data;
use crate::tui::fmt;

pub(super) fn draw(f: &mut Frame, area: Rect, app: &App) {
    let mut rows = data::exits(&app.frames());
    if app.fold {
        rows = data::fold_vcpus(rows);
    }
    let mut rows: Vec<data::ExitRow> = rows
        .into_iter()
        .filter(|r| app.shows_vm(&r.vm))
        .filter(|r| app.shows_counts(&[r.user_total, r.kvm_total]))
        .filter(|r| app.passes(&format!("{} {} {}", r.vm, r.vcpu, r.reason)))
        .collect();
    sort_rows(
        app,
        &mut rows,
        |r| r.user_rate.unwrap_or(0.0) + r.kvm_rate.unwrap_or(0.0),
        |r| r.user_total.unwrap_or(0.0) + r.kvm_total.unwrap_or(0.0),
    );
    let rows = rows
        .into_iter()
        .map(|r| {
            vec![
                r.vm,
                r.vcpu,
                r.reason,
                fmt::count(r.user_total),
                fmt::rate(r.user_rate),
                fmt::count(r.kvm_total),
                fmt::rate(r.kvm_rate),
                fmt::secs(r.avg),
            ]
        })
        .collect();
    table(
        f,
        area,
        app,
        &[
            "VM", "vCPU", "Reason", "User", "User/s", "KVM", "KVM/s", "Avg",
        ],
        &[
            Constraint::Fill(1),
            Constraint::Length(4),
            Constraint::Length(12),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(8),
        ],
        rows,
        if app.show_zero {
            "no exit counters (kvmbus_vcpu_exits_total, kvmbus_kvm_vcpu_*_exits_total)"
        } else {
            "no exits counted yet (z shows zero rows)"
        },
    );
}
