//! Interrupts per device and vector, with their current route.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{sort_rows, table};
use crate::tui::app::App;
use crate::tui::data;
use crate::tui::fmt;

pub(super) fn draw(f: &mut Frame, area: Rect, app: &App) {
    let frames = app.frames();
    let updates: Vec<String> = data::route_updates(&frames)
        .into_iter()
        .filter(|(vm, dev, ..)| app.shows_vm(vm) && app.passes(&format!("{vm} {dev}")))
        .map(|(vm, dev, total, rate)| {
            format!(
                "{vm}/{dev} {} ({}/s)",
                fmt::count(Some(total)),
                fmt::rate(rate)
            )
        })
        .collect();
    let [main, foot] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
    let mut rows: Vec<data::IrqRow> = data::interrupts(&frames)
        .into_iter()
        .filter(|r| app.shows_vm(&r.vm))
        .filter(|r| {
            app.show_zero || r.gsi.is_some_and(|g| g >= 0.0) || r.total.unwrap_or(0.0) > 0.0
        })
        .filter(|r| app.passes(&format!("{} {} {} {}", r.vm, r.device, r.vector, r.source)))
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
            let routed = r.gsi.is_some_and(|g| g >= 0.0);
            let gsi = match r.gsi {
                Some(g) if g >= 0.0 => format!("{g}"),
                Some(_) if r.total.unwrap_or(0.0) > 0.0 => "unrouted".into(),
                Some(_) => "unused".into(),
                None => "-".into(),
            };
            // An unrouted vector's source, destination and mask are stale labels.
            let (dest, masked) = if routed {
                let masked = match r.masked.as_str() {
                    "1" | "true" => "yes".into(),
                    "0" | "false" => "no".into(),
                    other => other.to_owned(),
                };
                let dest = if r.dest.starts_with('-') {
                    String::new()
                } else {
                    r.dest
                };
                (dest, masked)
            } else {
                (String::new(), String::new())
            };
            vec![
                r.vm,
                r.device,
                r.vector,
                r.source,
                gsi,
                dest,
                masked,
                fmt::count(r.total),
                fmt::rate(r.rate),
            ]
        })
        .collect();
    table(
        f,
        main,
        app,
        &[
            "VM", "Device", "Vec", "Src", "GSI", "Dest", "Mask", "Total", "Rate/s",
        ],
        &[
            Constraint::Fill(1),
            Constraint::Fill(2),
            Constraint::Length(4),
            Constraint::Length(5),
            Constraint::Length(8),
            Constraint::Length(4),
            Constraint::Length(4),
            Constraint::Length(9),
            Constraint::Length(8),
        ],
        rows,
        if app.show_zero {
            "no interrupt metrics (kvmbus_irq_triggers_total, kvmbus_irq_route_gsi)"
        } else {
            "no routed or fired vectors (z shows unused ones)"
        },
    );
    let text = if updates.is_empty() {
        "MSI route updates: none".to_owned()
    } else {
        format!("MSI route updates: {}", updates.join("  "))
    };
    f.render_widget(Paragraph::new(fmt::ellipsize(&text, foot.width)), foot);
}
