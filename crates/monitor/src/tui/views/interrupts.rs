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
        .filter(|(vm, dev, ..)| app.passes(&format!("{vm} {dev}")))
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
            let gsi = match r.gsi {
                Some(g) if g >= 0.0 => format!("{g}"),
                Some(_) => "none".into(),
                None => "-".into(),
            };
            let masked = match r.masked.as_str() {
                "1" | "true" => "yes".into(),
                "0" | "false" => "no".into(),
                other => other.to_owned(),
            };
            vec![
                r.vm,
                r.device,
                r.vector,
                r.source,
                gsi,
                r.dest,
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
            Constraint::Length(5),
            Constraint::Length(4),
            Constraint::Length(4),
            Constraint::Length(9),
            Constraint::Length(8),
        ],
        rows,
        "no interrupt metrics (kvmbus_irq_triggers_total, kvmbus_irq_route_gsi)",
    );
    let text = if updates.is_empty() {
        "MSI route updates: none".to_owned()
    } else {
        format!("MSI route updates: {}", updates.join("  "))
    };
    f.render_widget(Paragraph::new(text), foot);
}
