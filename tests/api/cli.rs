//! The `callbackd` binary: user management, imports and configuration errors.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::json;

use testkit::prelude::*;

fn callbackd(db_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_callbackd"));
    command
        .env("CALLBACKD_DATABASE__URL", db_url)
        .env("CALLBACKD_LOG__FORMAT", "json");
    command
}

#[tokio::test]
async fn user_add_prints_a_working_token_once_and_disable_revokes_it() {
    let app = TestApp::spawn().await;
    let db_url: String =
        sqlx::query_scalar("SELECT 'postgres://postgres@127.0.0.1:5432/' || current_database()")
            .fetch_one(&app.pool)
            .await
            .expect("url");
    let out = callbackd(&db_url)
        .args([
            "user",
            "add",
            "ivr-script",
            "--permission",
            "callbacks:create,callbacks:read",
            "--skill",
            "101",
        ])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert!(token.starts_with("cbd_"), "{token}");
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT token_sha256 FROM security_users WHERE name = 'ivr-script'")
            .fetch_one(&app.pool)
            .await
            .expect("row");
    assert_ne!(stored, token.as_bytes(), "only a hash is stored");

    let (status, body) = app
        .call(
            Method::POST,
            "/v1/callbacks",
            Some(&token),
            Some(&valid_body()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let out = callbackd(&db_url)
        .args(["user", "add", "ivr-script", "-p", "all"])
        .output()
        .expect("runs");
    assert!(!out.status.success(), "a duplicate name is refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already exists"));
    // Off a terminal (as here), the error is said once, as text, not also as a JSON line.
    assert_eq!(stderr.matches("already exists").count(), 1, "{stderr}");
    assert!(!stderr.contains('{'), "{stderr}");
    let out = callbackd(&db_url)
        .args(["user", "add", "x", "-p", "callbacks:fly"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("callbacks:fly"));

    let out = callbackd(&db_url)
        .args(["user", "disable", "ivr-script"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The daemon hears of the change by a notification: the test's blocking wait for the
    // command held its runtime, so give the listener its turn (the bound is a second).
    assert_eq!(
        status_within(&app, &token, StatusCode::UNAUTHORIZED).await,
        StatusCode::UNAUTHORIZED
    );

    let out = callbackd(&db_url)
        .args(["user", "list"])
        .output()
        .expect("runs");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("ivr-script\tdisabled"), "{listing}");
    assert!(!listing.contains(&token), "tokens are never listed");
}

#[tokio::test]
async fn import_skills_and_agents_from_csv_and_json_all_or_nothing() {
    let app = TestApp::spawn().await;
    let db_url: String =
        sqlx::query_scalar("SELECT 'postgres://postgres@127.0.0.1:5432/' || current_database()")
            .fetch_one(&app.pool)
            .await
            .expect("url");
    let dir = std::env::temp_dir().join(format!(
        "callbackd-import-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let skills = dir.join("skills.csv");
    std::fs::write(&skills, "id,name,mediaType,direction,active,timeZone\n601,Collections,phone,outbound,true,America/Chicago\n602,Web chat,chat,inbound,false,\n").expect("write");
    let agents = dir.join("agents.json");
    std::fs::write(&agents, r#"[{"id": 61, "username": "ann", "active": true}, {"id": 62, "username": "bob", "active": false}]"#).expect("write");
    // A CSV file lists an agent's skills in one cell.
    let agents_csv = dir.join("agents.csv");
    std::fs::write(
        &agents_csv,
        "id,username,active,name,skillIds\n63,cy,true,Cy Twombly,601;602\n64,di,true,,601\n65,ed,true,,\n",
    )
    .expect("write");

    for (kind, file, n) in [
        ("skills", &skills, 2),
        ("agents", &agents, 2),
        ("agents", &agents_csv, 3),
    ] {
        let out = callbackd(&db_url)
            .args(["import", kind])
            .arg(file)
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("imported {n} {kind}")));
    }
    let (_, skill) = app
        .call(Method::GET, "/v1/skills/601", Some(&app.admin), None)
        .await;
    assert_eq!(skill["timeZone"], "America/Chicago");
    let (_, skill) = app
        .call(Method::GET, "/v1/skills/602", Some(&app.admin), None)
        .await;
    assert_eq!(skill["timeZone"], serde_json::Value::Null);
    let (_, agent) = app
        .call(Method::GET, "/v1/agents/62", Some(&app.admin), None)
        .await;
    assert_eq!(
        agent,
        json!({"id": 62, "username": "bob", "active": false, "name": "", "skillIds": []})
    );
    for (id, name, skills) in [
        (63, "Cy Twombly", json!([601, 602])),
        (64, "", json!([601])),
        (65, "", json!([])),
    ] {
        let (_, agent) = app
            .call(
                Method::GET,
                &format!("/v1/agents/{id}"),
                Some(&app.admin),
                None,
            )
            .await;
        assert_eq!(agent["name"], name, "{agent}");
        assert_eq!(agent["skillIds"], skills, "{agent}");
    }

    // One bad record: nothing from the file is applied, and the error names the record.
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "id,name,mediaType,direction,active,timeZone\n603,Good,phone,outbound,true,\n604,Bad,phone,outbound,true,Nowhere/Land\n").expect("write");
    let out = callbackd(&db_url)
        .args(["import", "skills"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("record 2") && err.contains("Nowhere/Land"),
        "{err}"
    );
    let (status, _) = app
        .call(Method::GET, "/v1/skills/603", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn invalid_configuration_fails_start_up_with_one_line_naming_the_setting() {
    for (var, value, setting) in [
        (
            "CALLBACKD_SCHEDULE__DEFAULT_TIME_ZONE",
            "Mars/Base",
            "schedule.default_time_zone",
        ),
        ("CALLBACKD_API__LISTEN", "not-an-address", "api.listen"),
        (
            "CALLBACKD_SCHEDULE__HORIZON_DAYS",
            "-4",
            "schedule.horizon_days",
        ),
        ("CALLBACKD_DATABASE__URL", "mysql://x", "database.url"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_callbackd"))
            .env(var, value)
            .arg("migrate")
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(setting), "{var}: {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .args(["--config", "/nonexistent.toml", "migrate"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
}

#[tokio::test]
async fn import_of_100k_agents_is_applied_without_progress_output_off_a_terminal() {
    let app = TestApp::spawn().await;
    let file = std::env::temp_dir().join(format!(
        "callbackd-agents-{}.csv",
        uuid::Uuid::now_v7().simple()
    ));
    let mut csv = String::from("id,username,active\n");
    for id in 1..=100_000 {
        csv.push_str(&format!("{id},agent{id},true\n"));
    }
    std::fs::write(&file, csv).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .envs(app.child_env())
        .args(["import", "agents"])
        .arg(&file)
        .output()
        .expect("runs");
    std::fs::remove_file(&file).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "imported 100000 agents"
    );
    // The progress bar is drawn only on a terminal: nothing here.
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM agents WHERE username LIKE 'agent%'")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(count, 100_000);
}

/// A lost token does not mean a new user name: `rotate-token` gives a new one and the old
/// stops working; `enable` lets a disabled user back in with the token it had.
#[tokio::test]
async fn rotate_token_replaces_the_token_and_enable_undoes_disable() {
    let app = TestApp::spawn().await;
    let old = app
        .token("ivr", &["callbacks:create", "callbacks:read"], &[])
        .await;
    let out = testkit::cli::run(&app, &["user", "rotate-token", "ivr"]);
    assert!(out.status.success(), "{}", testkit::cli::stderr(&out));
    let new = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert!(new.starts_with("cbd_") && new != old, "{new}");
    let unauthorized = StatusCode::UNAUTHORIZED;
    assert_eq!(status_within(&app, &old, unauthorized).await, unauthorized);
    assert_eq!(
        status_within(&app, &new, StatusCode::CREATED).await,
        StatusCode::CREATED
    );

    let out = testkit::cli::run(&app, &["user", "disable", "ivr"]);
    assert!(out.status.success(), "{}", testkit::cli::stderr(&out));
    assert_eq!(status_within(&app, &new, unauthorized).await, unauthorized);
    let out = testkit::cli::run(&app, &["user", "enable", "ivr"]);
    assert!(out.status.success(), "{}", testkit::cli::stderr(&out));
    assert_eq!(
        status_within(&app, &new, StatusCode::CREATED).await,
        StatusCode::CREATED
    );

    // Naming a user that is not there is the command line's mistake.
    for args in [
        ["user", "enable", "ivr"],
        ["user", "rotate-token", "nobody"],
    ] {
        let out = testkit::cli::run(&app, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            testkit::cli::stderr(&out).contains("security user"),
            "{args:?}"
        );
    }
}

/// `--expires-in`: a token works until its expiry and not after; `user list` says which is
/// which; a rotated token gets an expiry of its own; lifetimes out of range are refused.
#[tokio::test]
async fn a_token_with_an_expiry_stops_working_then() {
    let app = TestApp::spawn().await;
    let out = testkit::cli::run(
        &app,
        &[
            "user",
            "add",
            "temp",
            "--permission",
            "all",
            "--expires-in",
            "1h",
        ],
    );
    assert!(out.status.success(), "{}", testkit::cli::stderr(&out));
    assert!(testkit::cli::stderr(&out).contains("valid until"));
    let token = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert_eq!(
        status_within(&app, &token, StatusCode::CREATED).await,
        StatusCode::CREATED
    );
    let listed = |app: &TestApp| {
        let out = testkit::cli::run(app, &["user", "list"]);
        String::from_utf8(out.stdout)
            .expect("utf8")
            .lines()
            .find(|l| l.starts_with("temp\t"))
            .expect("temp listed")
            .to_owned()
    };
    assert!(
        listed(&app).contains("\ttoken expires 20"),
        "{}",
        listed(&app)
    );

    // An hour later, as far as the database can tell.
    sqlx::query("UPDATE security_users SET token_expires_at = now() - interval '1 second' WHERE name = 'temp'")
        .execute(&app.pool)
        .await
        .expect("expired");
    let unauthorized = StatusCode::UNAUTHORIZED;
    assert_eq!(
        status_within(&app, &token, unauthorized).await,
        unauthorized
    );
    assert!(
        listed(&app).contains("\ttoken expired 20"),
        "{}",
        listed(&app)
    );

    let out = testkit::cli::run(
        &app,
        &["user", "rotate-token", "temp", "--expires-in", "90d"],
    );
    assert!(out.status.success(), "{}", testkit::cli::stderr(&out));
    let new = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert_eq!(
        status_within(&app, &new, StatusCode::CREATED).await,
        StatusCode::CREATED
    );
    let days: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM token_expires_at - now())::float8 / 86400 FROM security_users WHERE name = 'temp'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("expiry");
    assert!((89.9..=90.0).contains(&days), "{days}");

    for lifetime in ["10s", "20years", "soon"] {
        let out = testkit::cli::run(
            &app,
            &[
                "user",
                "add",
                "other",
                "--permission",
                "all",
                "--expires-in",
                lifetime,
            ],
        );
        assert!(!out.status.success(), "{lifetime}");
    }
    let out = testkit::cli::run(&app, &["user", "list"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("other\t"),
        "nothing written for a refused lifetime"
    );
}

/// The status `token` gets for a create, asked until it is `want` or a second has passed
/// (the daemon's cache of security users is dropped by a notification, and serves an entry
/// for at most a second).
async fn status_within(app: &TestApp, token: &str, want: StatusCode) -> StatusCode {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let (status, _) = app
            .call(
                Method::POST,
                "/v1/callbacks",
                Some(token),
                Some(&valid_body()),
            )
            .await;
        if status == want || std::time::Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
