//! A three-node RabbitMQ cluster of the test's own: 20,000 callbacks maturing while the node
//! the daemon is connected to is stopped mid-burst; then a second node is lost and returns.
//! Nothing may be lost; repeats carry the same publication id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callbackd::config::{QueueSettings, Settings};
use callbackd::startup::Application;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

use crate::servers::RabbitNode;

const CALLBACKS: i64 = 20_000;

/// Publication ids received, and how often each.
type Seen = Arc<Mutex<HashMap<String, usize>>>;

/// A dialer consuming the quorum queue through `node`, acknowledging each message; it
/// reconnects (to the same node) if its connection drops.
fn consume(url: String, queue: String, seen: Seen, stop: CancellationToken) {
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            let Ok(connection) =
                lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await
            else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let Ok(channel) = connection.create_channel().await else {
                continue;
            };
            let _ = channel.basic_qos(500, BasicQosOptions::default()).await;
            let Ok(mut deliveries) = channel
                .basic_consume(
                    queue.as_str().into(),
                    "ha-dialer".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
            else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    next = deliveries.next() => match next {
                        Some(Ok(delivery)) => {
                            let id = delivery
                                .properties
                                .message_id()
                                .as_ref()
                                .map(ToString::to_string)
                                .unwrap_or_default();
                            *seen.lock().unwrap_or_else(|p| p.into_inner()).entry(id).or_default() += 1;
                            let _ = delivery.ack(BasicAckOptions::default()).await;
                        }
                        _ => break,
                    },
                }
            }
        }
    });
}

async fn dispatched(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM callbacks WHERE state = 'dispatched'")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// Time from `since` until the dispatched count moves past `from`.
async fn resumed_after(pool: &sqlx::PgPool, from: i64, since: Instant) -> Duration {
    loop {
        let now = dispatched(pool).await;
        if now > from || now >= CALLBACKS {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(120),
            "dispatch never resumed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "ha suite: starts a 3-node RabbitMQ cluster; run with --ignored"]
async fn a_broker_node_lost_mid_burst_and_another_lost_and_returned_lose_nothing() {
    let started = Instant::now();
    let mut nodes: Vec<RabbitNode> = (0..3).map(|_| RabbitNode::start(None)).collect();
    nodes[1].join(&nodes[0]);
    nodes[2].join(&nodes[0]);
    println!("cluster: 3 nodes up and joined in {:?}", started.elapsed());

    let db_name = format!("callbackd_ha_{}", uuid::Uuid::now_v7().simple());
    let queue = format!("callbackd.ha.{}", uuid::Uuid::now_v7().simple());
    let mut settings = Settings::default();
    settings.api.listen = "127.0.0.1:0".parse().expect("address");
    settings.database.url = format!("postgres://postgres@127.0.0.1:5432/{db_name}").into();
    settings.database.create_if_missing = true;
    settings.amqp.urls = nodes.iter().map(|n| n.amqp_url().into()).collect();
    settings.amqp.exchange = format!("callbackd.ha.{}", uuid::Uuid::now_v7().simple());
    settings.amqp.queues = vec![QueueSettings {
        name: queue.clone(),
        bindings: vec!["#".into()],
    }];
    settings.amqp.outcomes_queue = String::new();
    settings.amqp.reconnect_initial_ms = 200;
    settings.amqp.reconnect_max_ms = 2000;
    settings.dispatch.confirm_timeout_ms = 5000;
    let app = Application::build(settings.clone()).await.expect("builds");
    let store = app.store().clone();
    testkit::fixtures::seed_skill(&store).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(settings.database.url.expose())
        .await
        .expect("test pool");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    // The dialer reads through the third node, which stays up throughout.
    let seen: Seen = Arc::default();
    let stop = CancellationToken::new();
    // The daemon declares the queue on connect; wait for it before consuming.
    tokio::time::sleep(Duration::from_secs(2)).await;
    consume(
        nodes[2].amqp_url(),
        queue.clone(),
        seen.clone(),
        stop.clone(),
    );
    // The daemon's quorum queue is replicated to all three nodes.
    let listing = nodes[2].ctl_output(&["list_queues", "name", "type", "members"]);
    let line = listing
        .lines()
        .find(|l| l.starts_with(&queue))
        .unwrap_or_else(|| panic!("{queue} declared: {listing}"));
    assert!(line.contains("quorum"), "{line}");
    for node in &nodes {
        assert!(
            line.contains(&node.node),
            "{} is a member: {line}",
            node.node
        );
    }

    // 20,000 callbacks maturing over 10 s.
    sqlx::query(
        "INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id, notes,
             scheduled_for, due_at, created_by)
         SELECT gen_random_uuid(), 'HA', '', '+442079460958', 101, '', d, d, 'ha'
         FROM (SELECT now() + (i * interval '10 seconds' / $1) AS d
               FROM generate_series(1, $1) AS i) AS t",
    )
    .bind(CALLBACKS)
    .execute(&pool)
    .await
    .expect("callbacks inserted");

    // Mid-burst: stop the node the daemon is connected to (the first of amqp.urls).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = dispatched(&pool).await;
    let lost_at = Instant::now();
    nodes[0].halt();
    let first_resume = resumed_after(&pool, dispatched(&pool).await, lost_at).await;
    println!(
        "cluster: node 1 stopped after {before} dispatched; dispatch resumed {first_resume:?} later"
    );
    nodes[0].boot();

    // A second node lost, then back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_second = dispatched(&pool).await;
    let second_at = Instant::now();
    nodes[1].halt();
    let second_resume = resumed_after(&pool, dispatched(&pool).await, second_at).await;
    println!(
        "cluster: node 2 stopped after {before_second} dispatched; dispatch resumed {second_resume:?} later"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    nodes[1].boot();

    // Everything delivered.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let distinct = seen.lock().unwrap_or_else(|p| p.into_inner()).len() as i64;
        if distinct >= CALLBACKS || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), running).await;

    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let ids: Vec<String> = sqlx::query_scalar("SELECT id::text || ':1' FROM callbacks")
        .fetch_all(&pool)
        .await
        .expect("ids");
    let lost = ids.iter().filter(|id| !seen.contains_key(*id)).count();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM callbacks GROUP BY state")
            .fetch_all(&pool)
            .await
            .expect("states");
    println!(
        "fault: rabbitmq cluster | callbacks {CALLBACKS} | lost {lost} | duplicates {duplicates} (same publication id) | resumed after node loss {first_resume:?}, after second node {second_resume:?} | states {states:?} | {:?} in all",
        started.elapsed()
    );
    pool.close().await;
    let _ = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-c",
            &format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"),
        ])
        .output();
    assert_eq!(lost, 0, "every callback delivered at least once");
    assert_eq!(states, vec![("dispatched".to_owned(), CALLBACKS)]);
}
