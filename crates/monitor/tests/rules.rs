//! The Prometheus rules in docs/prometheus/: `promtool check rules` accepts them and
//! `promtool test rules` runs their unit tests (series files in docs/prometheus/tests/).

use std::path::PathBuf;
use std::process::Command;

fn dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/prometheus"
    ))
}

fn promtool(test: &str) -> bool {
    let ok = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("SKIP (no promtool): {test}");
    }
    ok
}

fn run(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules() {
    if !promtool("promtool_checks_the_rules") {
        return;
    }
    let text = run(&["check", "rules", "recording.yml", "alerts.yml"]);
    // 8 recording rules and 8 alerts.
    assert_eq!(text.matches("SUCCESS: 8 rules found").count(), 2, "{text}");
}

#[test]
fn promtool_unit_tests_the_rules() {
    if !promtool("promtool_unit_tests_the_rules") {
        return;
    }
    let tests: Vec<String> = std::fs::read_dir(dir().join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .map(|p| format!("tests/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert!(!tests.is_empty());
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    let text = run(&args);
    assert!(
        text.contains("SUCCESS") && !text.contains("FAILED"),
        "{text}"
    );
}

#[test]
fn every_alert_the_issue_asks_for_exists() {
    let alerts = std::fs::read_to_string(dir().join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir().join("tests/rules_test.yml")).unwrap();
    for name in [
        "KvmbusExitStorm",
        "KvmbusInterruptStorm",
        "KvmbusMsiRouteChurn",
        "KvmbusBackendDown",
        "KvmbusVfioUserServerDown",
        "KvmbusVmStuck",
        "KvmbusVcpuFault",
        "KvmbusEndpointDown",
    ] {
        assert!(alerts.contains(&format!("alert: {name}\n")), "{name}");
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "{name} untested"
        );
    }
}
