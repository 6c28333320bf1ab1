//! The dialer stand-in: a durable quorum queue of its own bound `#` to an exchange, consumed
//! without acknowledgements so that it is never the bottleneck. It counts distinct message
//! ids (duplicates apart), and records arrival − `dueAt` from each body.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use testkit::broker::{QueueSpec, consume_bound};
use tokio::sync::watch;

use crate::infra::{Ctx, lock};

#[derive(Default)]
struct Tally {
    seen: HashSet<u128>,
    duplicates: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Arrival − dueAt, milliseconds, in arrival order.
    lateness_ms: Vec<f64>,
}

/// What the consumer has seen so far.
pub struct Seen {
    pub distinct: u64,
    pub duplicates: u64,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    pub lateness_ms: Vec<f64>,
}

pub struct Consumer {
    queue: String,
    channel: Channel,
    connection: Connection,
    tally: Arc<Mutex<Tally>>,
    count: watch::Receiver<u64>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    due_at: Option<String>,
}

impl Consumer {
    /// Declares the quorum queue `<run>.<label>`, binds it `#` to `exchange`, and consumes.
    pub async fn start(ctx: &Ctx, exchange: &str, label: &str) -> anyhow::Result<Self> {
        let queue = format!("{}.{label}", ctx.run);
        ctx.remember_queue(&queue);
        let connection = Connection::connect(&ctx.amqp_url, ConnectionProperties::default())
            .await
            .context("consumer connecting")?;
        let channel = connection.create_channel().await?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        channel
            .basic_qos(5000, BasicQosOptions::default())
            .await
            .context("basic.qos")?;
        let spec = QueueSpec {
            name: &queue,
            options: QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        };
        let consume = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let mut deliveries = consume_bound(&channel, exchange, "#", spec, "bench-dialer", consume)
            .await
            .with_context(|| format!("declaring {queue}, binding it to {exchange}, consuming"))?;
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (tx, count) = watch::channel(0u64);
        let task_tally = tally.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = deliveries.next().await {
                let now = Instant::now();
                let wall = Utc::now();
                let id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .and_then(|m| m.as_str().split(':').next())
                    .and_then(|m| uuid::Uuid::parse_str(m).ok())
                    .map_or(0, |u| u.as_u128());
                let lateness = serde_json::from_slice::<Body>(&delivery.data)
                    .ok()
                    .and_then(|b| b.due_at)
                    .and_then(|d| DateTime::parse_from_rfc3339(&d).ok())
                    .map(|due| (wall - due.with_timezone(&Utc)).as_seconds_f64() * 1000.0);
                let distinct = {
                    let mut t = lock(&task_tally);
                    if t.seen.insert(id) {
                        t.first.get_or_insert(now);
                        t.last = Some(now);
                        if let Some(l) = lateness {
                            t.lateness_ms.push(l);
                        }
                    } else {
                        t.duplicates += 1;
                    }
                    t.seen.len() as u64
                };
                tx.send_replace(distinct);
            }
        });
        Ok(Self {
            queue,
            channel,
            connection,
            tally,
            count,
        })
    }

    /// Waits until `n` distinct messages arrived; fails after `timeout` saying how many did.
    pub async fn wait_for(&mut self, n: u64, timeout: Duration) -> anyhow::Result<Seen> {
        let reached = tokio::time::timeout(timeout, async {
            self.count.wait_for(|c| *c >= n).await.map(|_| ())
        })
        .await;
        match reached {
            Ok(Ok(_)) => Ok(self.seen()),
            Ok(Err(_)) => bail!("the consumer stopped after {} of {n}", *self.count.borrow()),
            Err(_) => bail!(
                "only {} of {n} messages arrived within {timeout:?}",
                *self.count.borrow()
            ),
        }
    }

    pub fn seen(&self) -> Seen {
        let t = lock(&self.tally);
        Seen {
            distinct: t.seen.len() as u64,
            duplicates: t.duplicates,
            first: t.first,
            last: t.last,
            lateness_ms: t.lateness_ms.clone(),
        }
    }

    /// Deletes the queue and closes the connection.
    pub async fn close(self) -> anyhow::Result<()> {
        self.channel
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .with_context(|| format!("deleting queue {}", self.queue))?;
        let _ = self.connection.close(200, "done".into()).await;
        Ok(())
    }
}
