//! The example alert rules of docs/operations.md, loaded by Prometheus's own `promtool`: they
//! parse (`promtool check rules`), and on the metrics `holdfast metrics` prints after a
//! failed backup and a verify that found missing files, the rules fire (`promtool test
//! rules`): the failed run at once, "no good backup" only once 26 hours have passed.

use std::path::Path;
use std::process::Command;

fn rules_from_guide() -> String {
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"),
    )
    .unwrap();
    let start = guide
        .find("Example alert rules (Prometheus):")
        .expect("the guide has example alert rules");
    let rest = &guide[start..];
    let body = &rest[rest.find("```yaml\n").expect("a yaml block") + 8..];
    body[..body.find("```").unwrap()].to_string()
}

fn promtool(dir: &Path, args: &[&str]) -> String {
    let o = Command::new(holdfast_testkit::require("promtool"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "promtool {args:?}:\n{out}");
    out
}

#[test]
fn example_alert_rules_load_and_fire_on_holdfast_metrics() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(dir.join("rules.yml"), rules_from_guide()).unwrap();
    let out = promtool(dir, &["check", "rules", "rules.yml"]);
    assert!(out.contains("SUCCESS: 6 rules found"), "{out}");

    // What the state folder holds after a failed backup (the last success at the epoch, the
    // start of promtool's clock) and a verify that found 2 files missing.
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("last-backup.json"),
        r#"{"command":"backup","site":"s1","kind":"full","result":"failure","exit_code":1,
            "finished_at":60,"secs":12.5,"error":"target full","last_success_at":0,
            "last_success_secs":30.0}"#,
    )
    .unwrap();
    std::fs::write(
        state.join("last-verify.json"),
        r#"{"command":"verify","site":"s1","kind":"","result":"failure","exit_code":1,
            "finished_at":60,"secs":3.0,"missing":2}"#,
    )
    .unwrap();
    // The weekly proof of the snapshots found a damaged stored file.
    std::fs::write(
        state.join("last-verify-snapshots.json"),
        r#"{"command":"verify-snapshots","site":"s1","kind":"","result":"incomplete",
            "exit_code":3,"finished_at":60,"secs":40.0,"damaged":1}"#,
    )
    .unwrap();
    let conf = dir.join("holdfast.toml");
    std::fs::write(
        &conf,
        format!("[site]\nstate_dir = \"{}\"\n", state.display()),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("--config")
        .arg(&conf)
        .arg("metrics")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let metrics = String::from_utf8(o.stdout).unwrap();

    // Every sample, held for 28 hours at one-minute steps.
    let mut series = String::new();
    for l in metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = l.rsplit_once(' ').unwrap();
        series.push_str(&format!(
            "      - series: '{name}'\n        values: '{value}+0x1700'\n"
        ));
    }
    assert!(series.contains("holdfast_backup_last_result"), "{metrics}");
    assert!(
        series.contains("holdfast_verify_snapshots_last_damaged_files"),
        "{metrics}"
    );
    let test = r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
SERIES    alert_rule_test:
      - eval_time: 10m
        alertname: HoldfastBackupFailed
        exp_alerts:
          - exp_labels: {severity: warning, site: s1, kind: full}
            exp_annotations:
              summary: "holdfast backup of s1 failed (exit code 1); journalctl -t holdfast -p err"
      - eval_time: 25h
        alertname: HoldfastNoGoodBackup
        exp_alerts: []
      - eval_time: 27h
        alertname: HoldfastNoGoodBackup
        exp_alerts:
          - exp_labels: {severity: critical, site: s1, kind: full}
            exp_annotations:
              summary: "no successful holdfast backup of s1 for 26 hours"
      - eval_time: 10m
        alertname: HoldfastVerifyMissingFiles
        exp_alerts:
          - exp_labels: {severity: warning, site: s1}
      - eval_time: 10m
        alertname: HoldfastSnapshotDamaged
        exp_alerts:
          - exp_labels: {severity: critical, site: s1}
            exp_annotations:
              summary: "the proof of s1's snapshots failed; holdfast verify --all lists the damage"
"#
    .replace("SERIES", &series);
    std::fs::write(dir.join("test.yml"), &test).unwrap();
    let out = promtool(dir, &["test", "rules", "test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}\n{test}");
}
