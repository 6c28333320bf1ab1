//! What tests start from: the seeded directory (skills and agents), request bodies that
//! succeed, and times as the API writes them.

use callbackd::domain::{Agent, AgentId, Direction, MediaType, Skill, SkillId, SkillPolicy};
use callbackd::store::Store;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::Value;

use crate::app::TestApp;

/// Seeded skills: 101 outbound phone (London), 102 inbound chat, 103 inactive outbound phone,
/// 104 outbound phone (New York), 105 inbound phone, 106 outbound phone without a zone.
pub const SKILL: i64 = 101;
pub const SKILL_CHAT: i64 = 102;
pub const SKILL_INACTIVE: i64 = 103;
pub const SKILL_NEW_YORK: i64 = 104;
pub const SKILL_INBOUND_PHONE: i64 = 105;
pub const SKILL_NO_ZONE: i64 = 106;
/// Seeded agents: 7 active (`jdoe`), 8 inactive (`gone`).
pub const AGENT: i64 = 7;
pub const AGENT_INACTIVE: i64 = 8;

/// The directory every [`TestApp`] starts with: the skills and agents above.
pub(crate) async fn seed_directory(store: &Store) {
    let skill = |id, media_type, direction, active, tz: Option<&str>| Skill {
        id: SkillId::new(id).expect("id"),
        name: format!("skill {id}"),
        media_type,
        direction,
        active,
        time_zone: tz.map(|t| t.parse().expect("zone")),
        policy: Default::default(),
    };
    let skills = [
        skill(
            SKILL,
            MediaType::Phone,
            Direction::Outbound,
            true,
            Some("Europe/London"),
        ),
        skill(SKILL_CHAT, MediaType::Chat, Direction::Inbound, true, None),
        skill(
            SKILL_INACTIVE,
            MediaType::Phone,
            Direction::Outbound,
            false,
            None,
        ),
        skill(
            SKILL_NEW_YORK,
            MediaType::Phone,
            Direction::Outbound,
            true,
            Some("America/New_York"),
        ),
        skill(
            SKILL_INBOUND_PHONE,
            MediaType::Phone,
            Direction::Inbound,
            true,
            None,
        ),
        skill(
            SKILL_NO_ZONE,
            MediaType::Phone,
            Direction::Outbound,
            true,
            None,
        ),
    ];
    let agents = [
        Agent {
            id: AgentId::new(AGENT).expect("id"),
            username: "jdoe".into(),
            active: true,
            name: "Jane Doe".into(),
            skills: vec![SkillId::new(SKILL).expect("id")],
        },
        Agent {
            id: AgentId::new(AGENT_INACTIVE).expect("id"),
            username: "gone".into(),
            active: false,
            name: String::new(),
            skills: Vec::new(),
        },
    ];
    store
        .import_directory(&skills, &agents)
        .await
        .expect("directory seeded");
}

/// For a store of its own (the HA tests' servers): skill 101, active, outbound, phone, no
/// rules of its own.
pub async fn seed_skill(store: &Store) {
    store
        .upsert_skill(&Skill {
            id: SkillId::new(SKILL).expect("id"),
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

/// RFC 3339 in UTC, `offset` from now.
pub fn in_(offset: Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn parse_time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a time string"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// A create body that succeeds; tests change one field at a time.
pub fn valid_body() -> Value {
    serde_json::json!({
        "firstName": "Ada",
        "lastName": "Lovelace",
        "phoneNumber": "+442079460958",
        "skillId": SKILL,
        "targetAgentId": "",
        "scheduleDate": in_(Duration::hours(2)),
        "notes": "re: invoice 42",
    })
}

/// `valid_body()` with one field replaced (or removed, with `Value::Null` and `remove`).
pub fn with(field: &str, value: Value) -> Value {
    let mut body = valid_body();
    body[field] = value;
    body
}

pub fn without(field: &str) -> Value {
    let mut body = valid_body();
    body.as_object_mut().expect("object").remove(field);
    body
}

/// A create body due now.
pub fn due_now() -> Value {
    with("scheduleDate", serde_json::json!(in_(Duration::zero())))
}

/// A callback of `skill` due in `hours`; returns its id.
pub async fn schedule(app: &TestApp, skill: i64, hours: i64) -> String {
    let mut body = with("skillId", skill.into());
    body["scheduleDate"] = in_(Duration::hours(hours)).into();
    app.create_ok(&body).await
}
