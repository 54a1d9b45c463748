//! Drawing: the frame (title, tabs, footer, help overlay) and one module per view.

mod exits;
mod hypercalls;
mod interrupts;
mod overview;
mod pci;

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Tabs};
use ratatui::Frame;

use super::app::{App, Sort, VIEWS};
use super::fmt::ellipsize;
use super::keys::HELP;

/// Draws the whole screen.
pub(crate) fn draw(f: &mut Frame, app: &App) {
    let [title, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_title(f, title, app);
    let tab_titles: Vec<String> = VIEWS
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{} {v}", i + 1))
        .collect();
    f.render_widget(
        Tabs::new(tab_titles)
            .select(app.view)
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
        tabs,
    );
    if app.fetches == 0 {
        let msg = app
            .errors
            .first()
            .map_or("waiting for the first sample...", String::as_str);
        f.render_widget(Paragraph::new(format!("no data: {msg}")), body);
    } else {
        match app.view {
            0 => overview::draw(f, body, app),
            1 => exits::draw(f, body, app),
            2 => interrupts::draw(f, body, app),
            3 => pci::draw(f, body, app),
            _ => hypercalls::draw(f, body, app),
        }
    }
    draw_footer(f, footer, app);
    if app.help {
        draw_help(f, body);
    }
}

fn draw_title(f: &mut Frame, area: Rect, app: &App) {
    let mut spans = vec![
        Span::styled(
            " kvmbus top ",
            Style::new().add_modifier(Modifier::REVERSED),
        ),
        Span::raw(format!(
            " {}  every {:.2}s  sort {}",
            app.source,
            app.refresh.as_secs_f64(),
            app.sort.name()
        )),
    ];
    if let Some(vm) = &app.vm {
        spans.push(Span::raw(format!("  vm {vm}")));
    }
    if !app.filter.is_empty() {
        spans.push(Span::raw(format!("  filter \"{}\"", app.filter)));
    }
    if app.fold {
        spans.push(Span::raw("  vCPUs folded"));
    }
    if app.show_zero {
        spans.push(Span::raw("  zeros shown"));
    }
    if app.paused {
        spans.push(Span::styled("  PAUSED", Style::new().fg(Color::Yellow)));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(f: &mut Frame, area: Rect, app: &App) {
    let line = if let Some(text) = &app.editing {
        Line::from(format!("filter: {text}_  (Enter apply, Esc clear)"))
    } else if let Some(text) = &app.picking {
        Line::from(format!(
            "VM: {text}_  (Enter shows it, empty for all, Esc cancels)"
        ))
    } else if let Some(e) = app.errors.first() {
        Line::styled(format!("error: {e}"), Style::new().fg(Color::Red))
    } else {
        Line::styled(
            "q quit  h help  p pause  s sort  f filter  g/b VM  x fold  z zeros  tab view",
            Style::new().add_modifier(Modifier::DIM),
        )
    };
    f.render_widget(Paragraph::new(line), area);
}

fn draw_help(f: &mut Frame, area: Rect) {
    let w = 62.min(area.width);
    let h = (HELP.len() as u16 + 2).min(area.height);
    let rect = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| Line::from(format!(" {k:<20} {what}")))
        .collect();
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys ")),
        rect,
    );
}

/// Column headers of figures, right-aligned.
const NUMERIC: &[&str] = &[
    "User", "User/s", "KVM", "KVM/s", "Avg", "Total", "Rate/s", "p50", "p99", "GSI", "Vec",
];

/// A table with a bold header, after `scroll` rows, or a "no data" line when empty.
pub(super) fn table(
    f: &mut Frame,
    area: Rect,
    app: &App,
    header: &[&str],
    widths: &[Constraint],
    rows: Vec<Vec<String>>,
    empty: &str,
) {
    if rows.is_empty() {
        f.render_widget(Paragraph::new(format!("no data: {empty}")), area);
        return;
    }
    let skip = app.scroll.min(rows.len().saturating_sub(1));
    // Cut cells to their column's width with an ellipsis rather than silently.
    let cols: Vec<u16> = Layout::horizontal(widths.to_vec())
        .flex(Flex::Start)
        .spacing(1)
        .split(area)
        .iter()
        .map(|r| r.width)
        .collect();
    let cut = |cells: Vec<String>| -> Vec<String> {
        cells
            .into_iter()
            .zip(cols.iter().chain(std::iter::repeat(&u16::MAX)))
            .map(|(c, &w)| ellipsize(&c, w))
            .collect()
    };
    let rows: Vec<Vec<String>> = rows.into_iter().map(cut).collect();
    // Figures are right-aligned under right-aligned headers.
    let numeric: Vec<bool> = header.iter().map(|h| NUMERIC.contains(h)).collect();
    let cells = |cells: Vec<String>| -> Row<'static> {
        Row::new(cells.into_iter().enumerate().map(|(i, c)| {
            let line = Line::from(c);
            if numeric.get(i).copied().unwrap_or(false) {
                Cell::from(line.right_aligned())
            } else {
                Cell::from(line)
            }
        }))
    };
    let header = cells(header.iter().map(|h| h.to_string()).collect())
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let rows = rows.into_iter().skip(skip).map(cells);
    f.render_widget(
        Table::new(rows, widths.to_vec())
            .header(header)
            .column_spacing(1),
        area,
    );
}

/// Orders rows by the app's sort: rate or total descending, or by name (their order).
pub(super) fn sort_rows<T>(
    app: &App,
    rows: &mut [T],
    rate: impl Fn(&T) -> f64,
    total: impl Fn(&T) -> f64,
) {
    match app.sort {
        Sort::Rate => rows.sort_by(|a, b| rate(b).total_cmp(&rate(a))),
        Sort::Total => rows.sort_by(|a, b| total(b).total_cmp(&total(a))),
        Sort::Name => {}
    }
}

#[cfg(test)]
mod tests;
