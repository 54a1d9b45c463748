//! The dashboard's state and its reaction to keys and fetched snapshots; drawing lives in
//! `views`, so everything here is testable without a terminal.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent};

use super::data::{self, Frames};
use super::keys::{self, Action};
use crate::model::Snapshot;
use crate::Fetched;

/// The views, in tab order.
pub(crate) const VIEWS: [&str; 5] = ["Overview", "Exits", "Interrupts", "PCI", "Hypercalls"];

/// Refresh intervals `+`/`-` step through.
const REFRESH_STEPS: [Duration; 7] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(3),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// Points kept per sparkline.
const HISTORY: usize = 120;

/// How table rows are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sort {
    Rate,
    Total,
    Name,
}

impl Sort {
    pub fn name(self) -> &'static str {
        match self {
            Sort::Rate => "rate",
            Sort::Total => "total",
            Sort::Name => "name",
        }
    }
}

/// Rates of one VM over time, for the sparklines.
#[derive(Debug, Default, Clone)]
pub(crate) struct History {
    pub exits: VecDeque<u64>,
    pub kvm_exits: VecDeque<u64>,
    pub irqs: VecDeque<u64>,
}

/// The dashboard state.
pub(crate) struct App {
    pub view: usize,
    pub paused: bool,
    pub help: bool,
    pub sort: Sort,
    /// The applied filter (lower case).
    pub filter: String,
    /// The filter being typed, while editing.
    pub editing: Option<String>,
    /// The VM name being typed after `g`.
    pub picking: Option<String>,
    /// The one VM shown, if chosen.
    pub vm: Option<String>,
    /// Per-vCPU rows folded into their VM.
    pub fold: bool,
    /// Rows whose counts are all zero are shown.
    pub show_zero: bool,
    pub refresh: Duration,
    pub scroll: usize,
    pub base: Snapshot,
    pub prev: Snapshot,
    pub cur: Snapshot,
    pub fetches: u64,
    pub errors: Vec<String>,
    pub history: BTreeMap<String, History>,
    pub source: String,
}

impl App {
    pub fn new(source: String, refresh: Duration) -> App {
        App {
            view: 0,
            paused: false,
            help: false,
            sort: Sort::Rate,
            filter: String::new(),
            editing: None,
            picking: None,
            vm: None,
            fold: false,
            show_zero: false,
            refresh: refresh.max(Duration::from_millis(100)),
            scroll: 0,
            base: Snapshot::default(),
            prev: Snapshot::default(),
            cur: Snapshot::default(),
            fetches: 0,
            errors: Vec::new(),
            history: BTreeMap::new(),
            source,
        }
    }

    pub fn frames(&self) -> Frames<'_> {
        Frames {
            base: &self.base,
            prev: &self.prev,
            cur: &self.cur,
        }
    }

    /// Takes a new scrape (ignored while paused).
    pub fn on_fetched(&mut self, f: Fetched) {
        if self.paused {
            return;
        }
        self.errors = f.errors;
        if self.fetches == 0 {
            self.prev = f.snapshot.clone();
        } else {
            self.prev = std::mem::take(&mut self.cur);
        }
        self.cur = f.snapshot;
        self.fetches += 1;
        if self.fetches > 1 {
            self.record_history();
        }
    }

    fn record_history(&mut self) {
        for o in data::overview(&self.frames()) {
            let h = self.history.entry(o.vm).or_default();
            for (q, v) in [
                (&mut h.exits, o.user_exits.1),
                (&mut h.kvm_exits, o.kvm_exits.1),
                (&mut h.irqs, o.irqs.1),
            ] {
                q.push_back(v.unwrap_or(0.0).round() as u64);
                if q.len() > HISTORY {
                    q.pop_front();
                }
            }
        }
    }

    /// Whether `text` passes the filter.
    pub fn passes(&self, text: &str) -> bool {
        self.filter.is_empty() || text.to_lowercase().contains(&self.filter)
    }

    /// Whether VM `vm` is shown (all are unless one was chosen with `g`/`b`).
    pub fn shows_vm(&self, vm: &str) -> bool {
        self.vm.as_deref().is_none_or(|v| v == vm)
    }

    /// Whether a row with these counts is shown (zero rows only after `z`).
    pub fn shows_counts(&self, counts: &[Option<f64>]) -> bool {
        self.show_zero || counts.iter().any(|c| c.is_some_and(|c| c != 0.0))
    }

    /// The VM named by `text`: an exact name, or the only one starting with it.
    fn resolve_vm(&self, text: &str) -> Option<String> {
        let vms = self.cur.vms();
        if vms.iter().any(|v| v == text) {
            return Some(text.to_owned());
        }
        let mut matching = vms.into_iter().filter(|v| v.starts_with(text));
        match (matching.next(), matching.next()) {
            (Some(v), None) => Some(v),
            _ => None,
        }
    }

    fn on_pick_key(&mut self, key: KeyEvent) -> bool {
        let Some(text) = self.picking.as_mut() else {
            return false;
        };
        match key.code {
            KeyCode::Enter => {
                let text = std::mem::take(text);
                self.picking = None;
                self.vm = if text.is_empty() {
                    None
                } else {
                    match self.resolve_vm(&text) {
                        Some(v) => Some(v),
                        None => {
                            self.errors = vec![format!("no single VM matches {text:?}")];
                            self.vm.take()
                        }
                    }
                };
                self.scroll = 0;
            }
            KeyCode::Esc => self.picking = None,
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char('c')
                if key
                    .modifiers
                    .contains(crossterm::event::KeyModifiers::CONTROL) =>
            {
                return true
            }
            KeyCode::Char(c) => text.push(c),
            _ => {}
        }
        false
    }

    fn next_vm(&mut self) {
        let vms = self.cur.vms();
        self.vm = match &self.vm {
            None => vms.first().cloned(),
            Some(cur) => vms
                .iter()
                .position(|v| v == cur)
                .and_then(|i| vms.get(i + 1))
                .cloned(),
        };
        self.scroll = 0;
    }

    /// Handles one key; `true` means quit.
    pub fn on_key(&mut self, key: KeyEvent) -> bool {
        if self.picking.is_some() {
            return self.on_pick_key(key);
        }
        if let Some(text) = self.editing.as_mut() {
            match key.code {
                KeyCode::Enter => {
                    self.filter = text.to_lowercase();
                    self.editing = None;
                    self.scroll = 0;
                }
                KeyCode::Esc => {
                    self.filter.clear();
                    self.editing = None;
                }
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c)
                    if !key
                        .modifiers
                        .contains(crossterm::event::KeyModifiers::CONTROL) =>
                {
                    text.push(c)
                }
                KeyCode::Char('c') => return true,
                _ => {}
            }
            return false;
        }
        match keys::action(key) {
            Action::Quit => return true,
            Action::Help => self.help = !self.help,
            Action::Close => self.help = false,
            Action::Pause => self.paused = !self.paused,
            Action::Sort => {
                self.sort = match self.sort {
                    Sort::Rate => Sort::Total,
                    Sort::Total => Sort::Name,
                    Sort::Name => Sort::Rate,
                }
            }
            Action::Filter => self.editing = Some(String::new()),
            Action::Reset => {
                self.base = self.cur.clone();
                self.prev = self.cur.clone();
                self.history.clear();
            }
            Action::NextView => self.set_view((self.view + 1) % VIEWS.len()),
            Action::PrevView => self.set_view((self.view + VIEWS.len() - 1) % VIEWS.len()),
            Action::View(i) => self.set_view(i),
            Action::Slower => self.refresh = step(self.refresh, 1),
            Action::Faster => self.refresh = step(self.refresh, -1),
            Action::Scroll(d) => self.scroll = self.scroll.saturating_add_signed(d as isize),
            Action::ScrollHome => self.scroll = 0,
            Action::PickVm => self.picking = Some(String::new()),
            Action::NextVm => self.next_vm(),
            Action::Fold => self.fold = !self.fold,
            Action::Zero => self.show_zero = !self.show_zero,
            Action::None => {}
        }
        false
    }

    fn set_view(&mut self, v: usize) {
        self.view = v;
        self.scroll = 0;
    }
}

fn step(cur: Duration, dir: i32) -> Duration {
    let i = REFRESH_STEPS
        .iter()
        .position(|&d| d >= cur)
        .unwrap_or(REFRESH_STEPS.len() - 1);
    let i = if dir > 0 {
        if REFRESH_STEPS[i] > cur {
            i
        } else {
            (i + 1).min(REFRESH_STEPS.len() - 1)
        }
    } else {
        i.saturating_sub(1)
    };
    REFRESH_STEPS[i]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn refresh_steps() {
        assert_eq!(step(Duration::from_secs(1), 1), Duration::from_secs(2));
        assert_eq!(step(Duration::from_secs(1), -1), Duration::from_millis(500));
        assert_eq!(
            step(Duration::from_millis(250), -1),
            Duration::from_millis(250)
        );
        assert_eq!(step(Duration::from_secs(10), 1), Duration::from_secs(10));
        assert_eq!(step(Duration::from_millis(1500), 1), Duration::from_secs(2));
    }

    #[test]
    fn keys_change_state() {
        let mut a = App::new("x".into(), Duration::from_secs(1));
        assert!(!a.on_key(key(KeyCode::Tab)));
        assert_eq!(a.view, 1);
        a.on_key(key(KeyCode::BackTab));
        a.on_key(key(KeyCode::BackTab));
        assert_eq!(a.view, 4);
        a.on_key(key(KeyCode::Char('p')));
        assert!(a.paused);
        a.on_key(key(KeyCode::Char('s')));
        assert_eq!(a.sort, Sort::Total);
        a.on_key(key(KeyCode::Char('+')));
        assert_eq!(a.refresh, Duration::from_secs(2));
        a.on_key(key(KeyCode::Char('h')));
        assert!(a.help);
        a.on_key(key(KeyCode::Esc));
        assert!(!a.help);
        assert!(a.on_key(key(KeyCode::Char('q'))));
        assert!(a.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)));
    }

    #[test]
    fn vm_selection_fold_and_zero_keys() {
        let mut a = App::new("x".into(), Duration::from_secs(1));
        let two = "x_total{vm=\"alpha\"} 1\nx_total{vm=\"beta\"} 1\nx_total{vm=\"alps\"} 1\n";
        a.on_fetched(Fetched {
            snapshot: Snapshot::parse(two).unwrap(),
            errors: vec![],
        });
        a.on_key(key(KeyCode::Char('b')));
        assert_eq!(a.vm.as_deref(), Some("alpha"));
        assert!(a.shows_vm("alpha") && !a.shows_vm("beta"));
        a.on_key(key(KeyCode::Char('b')));
        a.on_key(key(KeyCode::Char('b')));
        assert_eq!(a.vm.as_deref(), Some("beta"));
        a.on_key(key(KeyCode::Char('b')));
        assert_eq!(a.vm, None, "after the last VM, all again");
        a.on_key(key(KeyCode::Char('g')));
        for c in "be".chars() {
            a.on_key(key(KeyCode::Char(c)));
        }
        a.on_key(key(KeyCode::Enter));
        assert_eq!(a.vm.as_deref(), Some("beta"), "a unique prefix picks");
        a.on_key(key(KeyCode::Char('g')));
        a.on_key(key(KeyCode::Char('a')));
        a.on_key(key(KeyCode::Char('l')));
        a.on_key(key(KeyCode::Enter));
        assert_eq!(
            a.vm.as_deref(),
            Some("beta"),
            "an ambiguous prefix keeps the choice"
        );
        assert!(a.errors[0].contains("no single VM"), "{:?}", a.errors);
        a.on_key(key(KeyCode::Char('g')));
        a.on_key(key(KeyCode::Enter));
        assert_eq!(a.vm, None, "empty means all");
        assert!(!a.fold && !a.show_zero);
        a.on_key(key(KeyCode::Char('x')));
        a.on_key(key(KeyCode::Char('z')));
        assert!(a.fold && a.show_zero);
        assert!(a.shows_counts(&[Some(0.0)]));
        a.on_key(key(KeyCode::Char('z')));
        assert!(!a.shows_counts(&[Some(0.0), None]) && a.shows_counts(&[None, Some(2.0)]));
    }

    #[test]
    fn filter_editing() {
        let mut a = App::new("x".into(), Duration::from_secs(1));
        a.on_key(key(KeyCode::Char('f')));
        for c in "Qx".chars() {
            assert!(!a.on_key(key(KeyCode::Char(c))), "q types while editing");
        }
        a.on_key(key(KeyCode::Backspace));
        a.on_key(key(KeyCode::Char('I')));
        a.on_key(key(KeyCode::Enter));
        assert_eq!(a.filter, "qi");
        assert!(a.passes("a QI b") && !a.passes("nope"));
        a.on_key(key(KeyCode::Char('f')));
        a.on_key(key(KeyCode::Esc));
        assert!(a.filter.is_empty() && a.editing.is_none());
    }

    #[test]
    fn pause_ignores_fetches_and_reset_rebases() {
        let (s0, s1) = super::super::fixture::pair();
        let mut a = App::new("x".into(), Duration::from_secs(1));
        a.on_fetched(Fetched {
            snapshot: s0,
            errors: vec![],
        });
        a.on_fetched(Fetched {
            snapshot: s1.clone(),
            errors: vec![],
        });
        assert_eq!(a.history["demo"].exits, VecDeque::from([1510]));
        a.on_key(key(KeyCode::Char('p')));
        a.on_fetched(Fetched {
            snapshot: Snapshot::default(),
            errors: vec!["x".into()],
        });
        assert_eq!(a.fetches, 2);
        a.on_key(key(KeyCode::Char('r')));
        assert!(a.history.is_empty());
        let rows = data::exits(&a.frames());
        assert!(rows.iter().all(|r| r.user_total.unwrap_or(0.0) == 0.0));
    }
}
