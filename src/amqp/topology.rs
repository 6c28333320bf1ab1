//! What callbackd declares: the exchange, the configured queues, the outcomes queue and its
//! dead-letter queue — quorum queues, declared on every connect (idempotent).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};

use super::AmqpError;
use crate::config::AmqpSettings;

/// A durable topic exchange (the callbacks' or the event stream's).
async fn declare_exchange(channel: &Channel, name: &str) -> Result<(), AmqpError> {
    channel
        .exchange_declare(
            name.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|source| AmqpError::Topology {
            what: format!("exchange `{name}`"),
            source,
        })
}

/// The exchange, and the configured quorum queues with their bindings. Idempotent, so it
/// runs on every connect.
pub(super) async fn declare_topology(
    channel: &Channel,
    settings: &AmqpSettings,
) -> Result<(), AmqpError> {
    let topology = |what: String| move |source| AmqpError::Topology { what, source };
    declare_exchange(channel, &settings.exchange).await?;
    if !settings.events_exchange.is_empty() {
        declare_exchange(channel, &settings.events_exchange).await?;
    }
    for queue in &settings.queues {
        channel
            .queue_declare(
                queue.name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                quorum_arguments(),
            )
            .await
            .map_err(topology(format!("queue `{}`", queue.name)))?;
        for pattern in &queue.bindings {
            channel
                .queue_bind(
                    queue.name.as_str().into(),
                    settings.exchange.as_str().into(),
                    pattern.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(topology(format!(
                    "binding `{pattern}` of queue `{}`",
                    queue.name
                )))?;
        }
    }
    Ok(())
}

pub(super) fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    arguments
}

/// Declares a durable quorum queue with `arguments` on a channel of its own. A queue that
/// already exists with other arguments (declared by an older version, or by an operator)
/// cannot be changed by a declaration: the broker refuses it and closes the channel. It is
/// then used as it is, with a warning saying what it lacks and how to add it (a policy).
pub(super) async fn declare_queue(
    connection: &Connection,
    name: &str,
    arguments: FieldTable,
) -> Result<(), AmqpError> {
    let topology = |source| AmqpError::Topology {
        what: format!("queue `{name}`"),
        source,
    };
    let channel = connection
        .create_channel()
        .await
        .map_err(AmqpError::Channel)?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    match channel
        .queue_declare(name.into(), durable, arguments.clone())
        .await
    {
        Ok(_) => {
            let _ = channel.close(200, "declared".into()).await;
            Ok(())
        }
        Err(e) if is_precondition_failed(&e) => {
            let channel = connection
                .create_channel()
                .await
                .map_err(AmqpError::Channel)?;
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            channel
                .queue_declare(name.into(), passive, FieldTable::default())
                .await
                .map_err(topology)?;
            let _ = channel.close(200, "declared".into()).await;
            tracing::warn!(queue = %name, wanted = ?arguments,
                "queue exists with other arguments (it was declared before callbackd set them); using it as it is: add them with a policy, e.g. rabbitmqctl set_policy, to get dead-lettering and a delivery limit");
            Ok(())
        }
        Err(e) => Err(topology(e)),
    }
}

fn is_precondition_failed(error: &lapin::Error) -> bool {
    // 406 PRECONDITION_FAILED: "inequivalent arg".
    error.to_string().contains("PRECONDITION_FAILED")
}
