//! What the HA tests share: the skill they schedule on, and a dialer bound to the exchange.

use callbackd::domain::{Direction, MediaType, Skill, SkillId, SkillPolicy};
use callbackd::store::Store;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;

/// Skill 101: active, outbound, phone, no rules of its own.
pub async fn seed_skill(store: &Store) {
    store
        .upsert_skill(&Skill {
            id: SkillId::new(101).expect("id"),
            name: "Outbound".into(),
            media_type: MediaType::Phone,
            direction: Direction::Outbound,
            active: true,
            time_zone: None,
            policy: SkillPolicy::default(),
        })
        .await
        .expect("skill");
}

/// A dialer on the broker at `url`: its own exclusive queue bound to `exchange` with `#`
/// (the exchange declared as callbackd declares it), consuming. Keep the connection.
pub async fn dialer(url: &str, exchange: &str, tag: &str) -> (lapin::Connection, lapin::Consumer) {
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .expect("dialer connects");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("exchange");
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let consumer = channel
        .basic_consume(
            queue.name().clone(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    (connection, consumer)
}
