//! `callbackd status` (a health check: exit codes, the daemons dispatching) and the hidden
//! `callbackd generate`.

use std::process::Command;

use serde_json::Value;

use testkit::cli::{callbackd, run, stderr};
use testkit::fixtures::schedule;
use testkit::prelude::*;

#[tokio::test]
async fn status_is_healthy_with_a_dispatching_daemon_and_names_each_problem() {
    let app = TestApp::spawn_dispatching().await;
    schedule(&app, SKILL, 2).await;
    schedule(&app, SKILL_NEW_YORK, 3).await;
    let out = run(&app, &["status", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["problems"], serde_json::json!([]));
    assert_eq!(report["database"]["reachable"], true);
    assert_eq!(report["database"]["migrationsPending"], 0);
    assert_eq!(report["broker"][0]["reachable"], true);
    assert_eq!(report["backlog"]["pending"], 2);
    let dispatchers = report["dispatchers"].as_array().expect("dispatchers");
    assert_eq!(dispatchers.len(), 1, "{report}");
    // This test process runs the daemon.
    assert_eq!(dispatchers[0]["pid"], std::process::id());
    let load: i64 = report["load"]
        .as_array()
        .expect("load")
        .iter()
        .flat_map(|s| s["hours"].as_array().expect("hours").iter())
        .map(|n| n.as_i64().expect("count"))
        .sum();
    assert_eq!(load, 2, "{report}");
    let text = run(&app, &["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("status: ok") && text.contains("dispatching"),
        "{text}"
    );

    // A broker URL on a closed port: a problem, exit 1, said in the report.
    let out = callbackd(&app)
        .env("CALLBACKD_AMQP__URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .args(["status", "--json"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["broker"][0]["reachable"], false);
    let problems = report["problems"].to_string();
    assert!(problems.contains("broker unreachable"), "{problems}");

    // So is a database that does not answer, and an invalid configuration is exit 2.
    let out = callbackd(&app)
        .env(
            "CALLBACKD_DATABASE__URL",
            "postgres://postgres@127.0.0.1:1/none",
        )
        .args(["status", "--timeout-ms", "1000"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("database unreachable"));
    let out = callbackd(&app)
        .env("CALLBACKD_DATABASE__URL", "mysql://x")
        .arg("status")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn status_without_a_dispatching_daemon_is_a_problem() {
    let app = TestApp::spawn().await;
    let out = run(&app, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["dispatchers"], serde_json::json!([]));
    assert!(
        report["problems"].to_string().contains("dispatching"),
        "{report}"
    );
    let out = run(&app, &["status", "--min-dispatchers", "0"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn generate_writes_completions_and_man_pages() {
    let out = Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .args(["generate", "completions", "bash"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("callbackd") && script.contains("reschedule"),
        "{script}"
    );
    let dir = std::env::temp_dir().join(format!("callbackd-man-{}", uuid::Uuid::now_v7().simple()));
    let out = Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .args(["generate", "man"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(dir.join("callbackd.1")).expect("callbackd.1");
    assert!(page.contains(".TH callbackd 1"), "{page}");
    assert!(dir.join("callbackd-callbacks-reschedule.1").exists());
    assert!(!dir.join("callbackd-generate.1").exists(), "hidden");
    std::fs::remove_dir_all(&dir).ok();
}
