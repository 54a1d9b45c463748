//! The PCI tree of every VM, from the info gauges; a vfio-user function also shows its
//! server's state, forwarded vs mapped accesses and the round trip.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::app::App;
use crate::tui::data;

pub(super) fn draw(f: &mut Frame, area: Rect, app: &App) {
    let tree = data::pci_tree(&app.frames());
    if tree.is_empty() {
        let msg = "no data: no PCI info gauges (kvmbus_pci_function_info)";
        f.render_widget(Paragraph::new(msg), area);
        return;
    }
    let mut vm_shown = true;
    let lines: Vec<Line> = tree
        .into_iter()
        .filter(|(depth, text)| {
            if *depth == 0 {
                vm_shown = app.shows_vm(text.strip_prefix("vm ").unwrap_or(text));
            }
            vm_shown
        })
        .filter(|(_, text)| app.passes(text))
        .map(|(depth, text)| match depth {
            0 => Line::styled(text, Style::new().add_modifier(Modifier::BOLD)),
            1 => Line::from(format!("  {text}")),
            _ => Line::from(format!("      {text}")),
        })
        .collect();
    let skip = app.scroll.min(lines.len().saturating_sub(1));
    f.render_widget(Paragraph::new(lines).scroll((skip as u16, 0)), area);
}
