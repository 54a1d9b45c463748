//! One panel per VM: state, uptime, sizes, rates, and sparklines of exit and IRQ rates.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Sparkline};
use ratatui::Frame;

use crate::tui::app::App;
use crate::tui::data::{self, VmOverview};
use crate::tui::fmt;

/// Rows one VM panel takes.
const PANEL: u16 = 8;

pub(super) fn draw(f: &mut Frame, area: Rect, app: &App) {
    let vms: Vec<VmOverview> = data::overview(&app.frames())
        .into_iter()
        .filter(|o| app.passes(&o.vm))
        .collect();
    if vms.is_empty() {
        f.render_widget(Paragraph::new("no data: no metrics with a vm label"), area);
        return;
    }
    let skip = app.scroll.min(vms.len() - 1);
    let mut y = area.y;
    for o in vms.iter().skip(skip) {
        if y >= area.bottom() {
            break;
        }
        let h = PANEL.min(area.bottom() - y);
        draw_vm(f, Rect::new(area.x, y, area.width, h), app, o);
        y += h;
    }
}

fn pair((total, rate): (Option<f64>, Option<f64>)) -> String {
    format!("{}/s ({} total)", fmt::rate(rate), fmt::count(total))
}

fn draw_vm(f: &mut Frame, area: Rect, app: &App, o: &VmOverview) {
    let block = Block::bordered().title(format!(" {} ", o.vm));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let [text, sparks] =
        Layout::horizontal([Constraint::Length(44), Constraint::Fill(1)]).areas(inner);
    let lines = vec![
        Line::from(format!(
            "{}  up {}  {} vCPU  {}",
            o.state.as_deref().unwrap_or("?"),
            fmt::uptime(o.uptime),
            fmt::count(o.vcpus),
            fmt::bytes(o.memory)
        )),
        Line::from(format!("exits user {}", pair(o.user_exits))),
        Line::from(format!("exits KVM  {}", pair(o.kvm_exits))),
        Line::from(format!("irqs       {}", pair(o.irqs))),
        Line::from(format!("hypercalls {}", pair(o.hypercalls))),
        Line::from(format!(
            "unclaimed {}  cfg {}/s",
            fmt::count(o.unclaimed.0),
            fmt::rate(o.pci_config.1)
        )),
    ];
    f.render_widget(Paragraph::new(lines), text);
    if sparks.width < 8 {
        return;
    }
    let history = app.history.get(&o.vm).cloned().unwrap_or_default();
    let [top, bottom] = Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(sparks);
    let tail = |q: &std::collections::VecDeque<u64>, w: u16| -> Vec<u64> {
        q.iter()
            .skip(q.len().saturating_sub(w as usize))
            .copied()
            .collect()
    };
    f.render_widget(
        Sparkline::default()
            .block(Block::new().title("exits/s"))
            .data(tail(&history.exits, top.width)),
        top,
    );
    f.render_widget(
        Sparkline::default()
            .block(Block::new().title("irqs/s"))
            .data(tail(&history.irqs, bottom.width)),
        bottom,
    );
}
