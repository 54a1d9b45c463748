//! TestBackend tests: every view at 80x24 from the synthetic exposition.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::draw;
use crate::tui::app::App;
use crate::tui::fixture;
use crate::Fetched;

fn app() -> App {
    let (a, b) = fixture::pair();
    let mut app = App::new("test".into(), Duration::from_secs(1));
    app.on_fetched(Fetched {
        snapshot: a,
        errors: vec![],
    });
    app.on_fetched(Fetched {
        snapshot: b,
        errors: vec![],
    });
    app
}

fn render(app: &App, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect()
}

fn screen(app: &App) -> String {
    render(app, 80, 24).join("\n")
}

fn key(app: &mut App, c: KeyCode) {
    app.on_key(KeyEvent::new(c, KeyModifiers::NONE));
}

#[test]
fn overview_at_80x24() {
    let s = screen(&app());
    assert!(s.contains("kvmbus top"), "{s}");
    assert!(s.contains("1 Overview"));
    assert!(s.contains(" demo "));
    assert!(
        s.contains("demo · running · up 1:02:04 · 2 vCPU · 64 MiB"),
        "{s}"
    );
    assert!(s.contains("exits user    1510/s      4544"), "{s}");
    assert!(s.contains("exits KVM    27000/s    297000"), "{s}");
    assert!(s.contains("irqs/s"));
    // The top exit reasons, per-vCPU rates, routes and the latency histogram.
    assert!(s.contains("io                1510      7515"), "{s}");
    assert!(s.contains("1         1005     18000"), "{s}");
    assert!(s.contains("hypercall-gw 0 gsi  24 cpu 0       100"), "{s}");
    assert!(s.contains("hypercall latency 1µs..1s  p50 10.0µs"), "{s}");
    assert!(s.contains("q quit"));
}

#[test]
fn exits_view_side_by_side_and_sorted() {
    let mut a = app();
    key(&mut a, KeyCode::Tab);
    let s = screen(&a);
    assert!(
        s.contains("Reason") && s.contains("User/s") && s.contains("KVM/s"),
        "{s}"
    );
    let lines: Vec<&str> = s.lines().collect();
    let header = lines.iter().position(|l| l.contains("Reason")).unwrap();
    assert!(
        lines[header + 1].contains("ALL") && lines[header + 1].contains("18000"),
        "rate sort: {s}"
    );
    let io0 = lines
        .iter()
        .find(|l| l.contains(" io ") && l.contains(" 0 "))
        .unwrap();
    assert!(
        io0.contains("505") && io0.contains("2505") && io0.contains("3.0µs"),
        "{io0}"
    );
    key(&mut a, KeyCode::Char('s'));
    key(&mut a, KeyCode::Char('s'));
    let s = screen(&a);
    let first = s
        .lines()
        .skip_while(|l| !l.contains("Reason"))
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(
        first.contains(" 0 ") && first.contains("ALL"),
        "name sort starts with vCPU 0: {s}"
    );
    assert!(s.contains("sort name"));
}

#[test]
fn interrupts_view_shows_routes() {
    let mut a = app();
    key(&mut a, KeyCode::Char('3'));
    let s = screen(&a);
    assert!(s.contains("GSI") && s.contains("Mask"), "{s}");
    let v0 = s
        .lines()
        .find(|l| l.contains("hypercall-gw") && l.contains(" 24 "))
        .unwrap();
    assert!(
        v0.contains("msix") && v0.contains("no") && v0.contains("100"),
        "{v0}"
    );
    let v1 = s
        .lines()
        .find(|l| l.contains("unrouted"))
        .expect("vector 1");
    assert!(
        !v1.contains("yes") && !v1.contains("-1"),
        "no stale labels: {v1}"
    );
    assert!(s.contains("MSI route updates: demo/hypercall-gw 3"));
}

#[test]
fn pci_view_tree() {
    let mut a = app();
    key(&mut a, KeyCode::Char('4'));
    let s = screen(&a);
    assert!(s.contains("vm demo"));
    assert!(
        s.contains("  00:00.0 host-bridge [8086:0d57] class 060000"),
        "{s}"
    );
    assert!(s.contains("BAR2 mem32 0xe0000000 size 4 KiB"), "{s}");
    assert!(
        !s.contains('{') && !s.contains("prefetchable"),
        "no Debug text: {s}"
    );
    assert!(s.contains("cap vendor @0x60"));
}

#[test]
fn hypercalls_view_with_percentiles() {
    let mut a = app();
    key(&mut a, KeyCode::BackTab);
    let s = screen(&a);
    assert!(s.contains("p50") && s.contains("p99"), "{s}");
    let nr1 = s.lines().find(|l| l.contains(" sync ")).unwrap();
    assert!(
        nr1.contains("1000") && nr1.contains("10.0µs") && nr1.contains("19.8µs"),
        "{nr1}"
    );
    assert!(nr1.contains("ok:1100 einval:4"), "{nr1}");
}

#[test]
fn filter_help_and_pause_render() {
    let mut a = app();
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Char('f'));
    for c in "halt".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    assert!(screen(&a).contains("filter: halt_"));
    key(&mut a, KeyCode::Enter);
    let s = screen(&a);
    assert!(s.contains("filter \"halt\""));
    assert!(!s.contains(" io ") && s.contains("halt"), "{s}");
    key(&mut a, KeyCode::Char('p'));
    key(&mut a, KeyCode::Char('h'));
    let s = screen(&a);
    assert!(
        s.contains("PAUSED") && s.contains(" keys ") && s.contains("toggle this help"),
        "{s}"
    );
}

#[test]
fn absent_families_say_no_data() {
    let mut a = App::new("test".into(), Duration::from_secs(1));
    assert!(screen(&a).contains("waiting for the first sample"));
    a.on_fetched(Fetched {
        snapshot: crate::model::Snapshot::parse("kvmbus_vm_vcpus{vm=\"x\"} 1\n").unwrap(),
        errors: vec!["http://b:1/metrics: refused".into()],
    });
    for i in 0..5 {
        let s = screen(&a);
        assert!(i == 0 || s.contains("no data"), "view {i}: {s}");
        assert!(s.contains("error: http://b:1/metrics: refused"));
        key(&mut a, KeyCode::Tab);
    }
}

#[test]
fn follows_resizes_down_to_tiny() {
    let a = app();
    for (w, h) in [(120, 40), (80, 24), (40, 10), (10, 4), (1, 1)] {
        let lines = render(&a, w, h);
        assert_eq!(lines.len(), h as usize);
    }
    let wide = render(&a, 160, 50).join("\n");
    assert!(wide.contains("exits user    1510/s"));
}
