//! A PostgreSQL primary with a synchronous replica, both the test's own: creates and
//! dispatch run while the primary is killed (`kill -9`) and the replica promoted. Every
//! create answered 201 survives; every callback is delivered; while there is no primary the
//! API answers 503 `Default`, never 500.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callbackd::config::Settings;
use callbackd::startup::Application;
use futures_util::StreamExt;
use lapin::options::BasicAckOptions;
use tokio_util::sync::CancellationToken;

use crate::servers::PgPair;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(Default)]
struct Answers {
    created: Vec<(String, Instant)>,
    unavailable: Vec<Instant>,
    other: Vec<String>,
}

#[tokio::test]
#[ignore = "ha suite: starts a PostgreSQL primary and replica; run with --ignored"]
async fn the_primary_killed_under_load_and_the_replica_promoted_loses_nothing() {
    let pair = PgPair::start();
    let url = |port: u16| format!("postgres://postgres@127.0.0.1:{port}/callbackd");
    let mut settings = Settings::default();
    settings.api.listen = "127.0.0.1:0".parse().expect("address");
    settings.database.urls = vec![url(pair.primary_port).into(), url(pair.replica_port).into()];
    settings.database.create_if_missing = true;
    settings.amqp.exchange = format!("callbackd.failover.{}", uuid::Uuid::now_v7().simple());
    settings.amqp.queues = Vec::new();
    settings.amqp.outcomes_queue = String::new();
    let app = Application::build(settings.clone()).await.expect("builds");
    let base = format!("http://{}", app.local_addr());
    let store = app.store().clone();
    testkit::fixtures::seed_skill(&store).await;
    let token = callbackd::cli::add_user(&store, "failover", &["all".into()], &[], None)
        .await
        .expect("user")
        .expose()
        .to_owned();

    // The dialer: every publication, by publication id.
    let (dialer, mut deliveries) =
        testkit::broker::dialer(AMQP, &settings.amqp.exchange, "failover-dialer").await;
    let seen: Arc<Mutex<HashMap<String, (usize, Instant)>>> = Arc::default();
    let tally = seen.clone();
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = deliveries.next().await {
            let id = delivery
                .properties
                .message_id()
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            tally
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(id)
                .or_insert((0, Instant::now()))
                .0 += 1;
            let _ = delivery.ack(BasicAckOptions::default()).await;
        }
    });

    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Four clients creating callbacks due a second later, until told to stop.
    let stop = CancellationToken::new();
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (client, base, token, stop) =
            (client.clone(), base.clone(), token.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut answers = Answers::default();
            while !stop.is_cancelled() {
                let due = chrono::Utc::now() + chrono::Duration::seconds(1);
                let sent = client
                    .post(format!("{base}/v1/callbacks"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({
                        "phoneNumber": "+442079460958", "skillId": 101,
                        "scheduleDate": due.to_rfc3339(),
                    }))
                    .timeout(Duration::from_secs(15))
                    .send()
                    .await;
                let at = Instant::now();
                match sent {
                    Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        let id = body["callbackId"].as_str().unwrap_or_default().to_owned();
                        answers.created.push((id, at));
                    }
                    Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        if body["result"] == "Default" {
                            answers.unavailable.push(at);
                        } else {
                            answers.other.push(format!("503 {body}"));
                        }
                    }
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        answers.other.push(format!("{status} {body}"));
                    }
                    // A connection cut off by the daemon is not an answer; none expected.
                    Err(e) => answers.other.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        }));
    }

    // Mid-load: kill the primary; promote the replica 5 s later (longer than a request waits
    // for a connection, so the time without a primary shows in the answers).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let killed = Instant::now();
    pair.kill_primary();
    tokio::time::sleep(Duration::from_secs(5)).await;
    pair.promote_replica();
    let promoted = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.cancel();
    let mut answers = Answers::default();
    for writer in writers {
        let done = writer.await.expect("writer");
        answers.created.extend(done.created);
        answers.unavailable.extend(done.unavailable);
        answers.other.extend(done.other);
    }

    // Every accepted callback delivered (they were due a second after creation).
    let accepted: HashSet<String> = answers
        .created
        .iter()
        .map(|(id, _)| format!("{id}:1"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let delivered = seen.lock().unwrap_or_else(|p| p.into_inner()).len();
        let all = {
            let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            accepted.iter().all(|id| seen.contains_key(id))
        };
        if all || Instant::now() > deadline {
            let _ = delivered;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), running).await;

    // Present on the new primary: every create that was answered 201.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url(pair.replica_port))
        .await
        .expect("new primary");
    let stored: HashSet<String> = sqlx::query_scalar("SELECT id::text FROM callbacks")
        .fetch_all(&pool)
        .await
        .expect("stored ids")
        .into_iter()
        .collect();
    let lost_creates = answers
        .created
        .iter()
        .filter(|(id, _)| !stored.contains(id))
        .count();
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let undelivered = accepted.iter().filter(|id| !seen.contains_key(*id)).count();
    let duplicates: usize = seen.values().map(|(n, _)| n - 1).sum();
    let creates_resumed = answers
        .created
        .iter()
        .map(|(_, at)| *at)
        .filter(|at| *at > killed)
        .min()
        .map(|at| at - killed);
    let dispatch_resumed = seen
        .values()
        .map(|(_, at)| *at)
        .filter(|at| *at > killed + Duration::from_millis(500))
        .min()
        .map(|at| at - killed);
    let during: usize = answers
        .unavailable
        .iter()
        .filter(|at| **at > killed)
        .count();
    println!(
        "fault: postgresql failover | accepted {} | lost creates {lost_creates} | undelivered {undelivered} | duplicates {duplicates} (same publication id) | 503 answers {during} | other answers {} | promoted after {promoted:?} | creates resumed {creates_resumed:?} | dispatch resumed {dispatch_resumed:?} after the kill",
        answers.created.len(),
        answers.other.len()
    );
    pool.close().await;
    let _ = dialer.close(200, "done".into()).await;
    assert!(
        answers.other.is_empty(),
        "only 201 or 503 Default: {:?}",
        answers.other
    );
    assert_eq!(
        lost_creates, 0,
        "every create answered 201 survives the failover"
    );
    assert_eq!(undelivered, 0, "every accepted callback is delivered");
    assert!(
        creates_resumed.is_some(),
        "creates resumed on the new primary"
    );
    assert!(
        during > 0,
        "requests made while there was no primary were answered 503"
    );
}
