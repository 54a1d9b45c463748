//! Key bindings, in kvm_stat's spirit.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Quit,
    Help,
    Pause,
    Sort,
    Filter,
    Reset,
    NextView,
    PrevView,
    View(usize),
    Slower,
    Faster,
    Scroll(i32),
    ScrollHome,
    /// Prompt for one VM to show (`g`, as kvm_stat's guest selection).
    PickVm,
    /// Show the next VM alone, then all again (`b`).
    NextVm,
    /// Fold per-vCPU rows into their VM (`x`).
    Fold,
    /// Show or hide rows whose counts are all zero (`z`).
    Zero,
    Close,
    None,
}

/// The action of `key` outside filter editing.
pub(crate) fn action(key: KeyEvent) -> Action {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return match key.code {
            KeyCode::Char('c') | KeyCode::Char('d') => Action::Quit,
            _ => Action::None,
        };
    }
    match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('h') | KeyCode::Char('?') | KeyCode::F(1) => Action::Help,
        KeyCode::Char('p') | KeyCode::Char(' ') => Action::Pause,
        KeyCode::Char('s') => Action::Sort,
        KeyCode::Char('f') | KeyCode::Char('/') => Action::Filter,
        KeyCode::Char('r') => Action::Reset,
        KeyCode::Tab | KeyCode::Right => Action::NextView,
        KeyCode::BackTab | KeyCode::Left => Action::PrevView,
        KeyCode::Char(c @ '1'..='5') => Action::View(c as usize - '1' as usize),
        KeyCode::Char('+') | KeyCode::Char('=') => Action::Slower,
        KeyCode::Char('-') | KeyCode::Char('_') => Action::Faster,
        KeyCode::Down | KeyCode::Char('j') => Action::Scroll(1),
        KeyCode::Up | KeyCode::Char('k') => Action::Scroll(-1),
        KeyCode::PageDown => Action::Scroll(10),
        KeyCode::PageUp => Action::Scroll(-10),
        KeyCode::Home => Action::ScrollHome,
        KeyCode::Char('g') => Action::PickVm,
        KeyCode::Char('b') => Action::NextVm,
        KeyCode::Char('x') => Action::Fold,
        KeyCode::Char('z') => Action::Zero,
        KeyCode::Esc => Action::Close,
        _ => Action::None,
    }
}

/// The keys, as the help overlay lists them.
pub(crate) const HELP: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("h, ?", "toggle this help"),
    ("p, space", "pause / resume sampling"),
    ("s", "cycle sort: rate, total, name"),
    ("f, /", "filter: type text, Enter applies, Esc clears"),
    ("r", "reset totals and rates from now"),
    ("g / b", "show one VM: type its name / next VM (then all)"),
    ("x", "fold per-vCPU rows into their VM"),
    ("z", "show / hide rows that are all zero"),
    ("tab, shift-tab", "next / previous view (1-5 direct)"),
    ("+ / -", "longer / shorter refresh interval"),
    ("up/down, PgUp/PgDn", "scroll, Home to top"),
];
