//! A minimal callbackd dialer worker (lapin 4, tokio).
//!
//! It consumes `callbackd.callback.v1` messages from its own queue, "dials" through
//! [`dial`] (a stub: replace it), and reports a `callbackd.outcome.v1` to the outcomes queue,
//! following callbackd's docs/messages.md. A callback message is acknowledged only after the
//! broker has confirmed the outcome, so a crash at any point loses nothing: the callback is
//! delivered again. Up to `DIALER_PREFETCH` callbacks are handled at once.
//!
//! Files: `dial.rs` is the stub to replace, `settings.rs` the `DIALER_*` environment
//! variables, `seen.rs` the de-duplication store; this file is the AMQP side.

mod dial;
mod seen;
mod settings;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

use dial::dial;
use seen::SeenIds;
use settings::Settings;

/// The fields of `callbackd.callback.v1` this worker uses; the others are ignored, as the
/// contract asks (fields are only ever added within v1).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackMessage {
    pub schema: String,
    pub callback_id: String,
    pub attempt: i64,
    pub route: String,
    pub skill_id: i64,
    pub target_agent_id: Option<i64>,
    pub phone_number: String,
}

/// `callbackd.outcome.v1`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OutcomeMessage<'a> {
    schema: &'static str,
    callback_id: &'a str,
    /// The attempt of the message handled, not the callback's latest one.
    attempt: i64,
    outcome: &'a str,
}

#[tokio::main]
async fn main() -> Result<()> {
    let settings = Arc::new(Settings::from_env()?);
    let seen = Arc::new(Mutex::new(SeenIds::new(
        Duration::from_secs(86_400),
        100_000,
    )));
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        if let Err(e) = wait_for_signal().await {
            eprintln!("cannot listen for signals: {e}");
        }
        let _ = stop_tx.send(true);
    });
    // Reconnect after a lost connection; the seen ids survive it.
    while !*stop.borrow() {
        match run(&settings, &seen, stop.clone()).await {
            Ok(()) => break,
            Err(e) => {
                eprintln!("worker error: {e:#}; reconnecting in 5 s");
                let mut stop = stop.clone();
                let _ = tokio::time::timeout(Duration::from_secs(5), stop.wait_for(|s| *s)).await;
            }
        }
    }
    println!("stopped");
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => println!("stopping signal=SIGTERM"),
        r = tokio::signal::ctrl_c() => { r?; println!("stopping signal=SIGINT") }
    }
    Ok(())
}

/// One connection's life: declare, consume until `stop`, then let the callbacks in hand
/// finish before closing (those not acknowledged go back to the queue).
async fn run(
    settings: &Arc<Settings>,
    seen: &Arc<Mutex<SeenIds>>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let s = settings;
    let connection = Connection::connect(&s.url, ConnectionProperties::default())
        .await
        .context("connecting to RabbitMQ")?;
    let consume = connection.create_channel().await?;
    // Passive: callbackd declares the exchange; this only checks that it exists.
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    consume
        .exchange_declare(
            s.exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            passive,
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("exchange `{}` (is callbackd running?)", s.exchange))?;
    // Our own durable quorum queue, bound to the routing keys this worker serves.
    if s.declare {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        consume
            .queue_declare(
                s.queue.as_str().into(),
                QueueDeclareOptions::durable(),
                arguments,
            )
            .await
            .with_context(|| format!("declaring queue `{}`", s.queue))?;
        for key in &s.bindings {
            let (queue, exchange) = (s.queue.as_str().into(), s.exchange.as_str().into());
            consume
                .queue_bind(
                    queue,
                    exchange,
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .with_context(|| format!("binding `{key}`"))?;
        }
    }
    // The broker hands us at most `prefetch` unacknowledged callbacks: that is also how
    // many are dialled at once, since each runs in its own task.
    consume
        .basic_qos(s.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = consume
        .basic_consume(
            s.queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    // Outcomes go out on a channel of their own, with publisher confirms.
    let report = connection.create_channel().await?;
    report
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    println!(
        "consuming queue={} bindings={} prefetch={} outcome={}",
        s.queue,
        s.bindings.join(","),
        s.prefetch,
        s.outcome
    );

    let mut in_hand = JoinSet::new();
    let ended = loop {
        while in_hand.try_join_next().is_some() {}
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break Ok(()),
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    let (s, seen, report) = (s.clone(), seen.clone(), report.clone());
                    in_hand.spawn(async move {
                        if let Err(e) = handle(&delivery, &s, &seen, &report).await {
                            eprintln!("error delivery_tag={} error={e:#}", delivery.delivery_tag);
                        }
                    });
                }
                Some(Err(e)) => break Err(e).context("consuming"),
                None => break Err(anyhow::anyhow!("the broker cancelled the consumer")),
            },
        }
    };
    let _ = consume
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await;
    while in_hand.join_next().await.is_some() {}
    let _ = connection.close(200, "stopping".into()).await;
    ended
}

/// Dials one callback and reports its outcome; the callback is acknowledged only once the
/// outcome is confirmed. An error here means the connection is going: the broker gives back
/// what was not acknowledged.
async fn handle(
    delivery: &Delivery,
    s: &Settings,
    seen: &Mutex<SeenIds>,
    report: &Channel,
) -> Result<()> {
    let callback: CallbackMessage = match serde_json::from_slice::<CallbackMessage>(&delivery.data)
    {
        Ok(c) if c.schema == "callbackd.callback.v1" => c,
        Ok(other) => return reject(delivery, &format!("schema {:?}", other.schema)).await,
        Err(e) => return reject(delivery, &e.to_string()).await,
    };
    let message_id = match delivery.properties.message_id() {
        Some(id) => id.to_string(),
        None => format!("{}:{}", callback.callback_id, callback.attempt),
    };
    if !lock(seen).claim(&message_id) {
        println!("duplicate message_id={message_id} dropped");
        delivery.ack(BasicAckOptions::default()).await?;
        return Ok(());
    }
    let started = Instant::now();
    let outcome = dial(&callback, &s.outcome, s.dial_time).await;
    let body = serde_json::to_vec(&OutcomeMessage {
        schema: "callbackd.outcome.v1",
        callback_id: &callback.callback_id,
        attempt: callback.attempt,
        outcome: &outcome,
    })?;
    // docs/messages.md, "Who may report outcomes": callbackd may accept outcomes only from
    // listed users, named by user_id, which RabbitMQ checks against the connection's user.
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_user_id(s.user_id.as_str().into())
        .with_app_id("rust-dialer".into());
    // mandatory: with no outcomes queue the broker returns it instead of dropping it.
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = report
        .basic_publish(
            "".into(),
            s.outcomes_queue.as_str().into(),
            mandatory,
            &body,
            properties,
        )
        .await?
        .await?;
    if !matches!(confirm, Confirmation::Ack(None)) {
        // Not reported: put the callback back so that it is reported later (callbackd
        // applies each (callbackId, attempt, outcome) once, so a re-send is safe).
        eprintln!("outcome not confirmed message_id={message_id} confirm={confirm:?}; requeued");
        lock(seen).release(&message_id);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let requeue = BasicNackOptions {
            requeue: true,
            ..Default::default()
        };
        delivery.nack(requeue).await?;
        return Ok(());
    }
    delivery.ack(BasicAckOptions::default()).await?;
    println!(
        "handled message_id={message_id} callback_id={} attempt={} route={} routing_key={} skill_id={} agent_id={} outcome={outcome} dial_ms={}",
        callback.callback_id,
        callback.attempt,
        callback.route,
        delivery.routing_key,
        callback.skill_id,
        callback
            .target_agent_id
            .map_or("-".into(), |id| id.to_string()),
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Unreadable: requeueing would loop. Give the queue a dead-letter exchange
/// (`x-dead-letter-exchange`) to keep such messages for inspection.
async fn reject(delivery: &Delivery, reason: &str) -> Result<()> {
    eprintln!(
        "rejected delivery_tag={} reason={reason}",
        delivery.delivery_tag
    );
    delivery
        .reject(BasicRejectOptions { requeue: false })
        .await?;
    Ok(())
}

/// The store stays usable even if a task panicked while holding it.
fn lock(seen: &Mutex<SeenIds>) -> std::sync::MutexGuard<'_, SeenIds> {
    seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
