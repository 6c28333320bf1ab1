//! What the HTTP API tests use everywhere (`use testkit::prelude::*`): the spawned app,
//! the seeded directory, request bodies and answers.

pub use crate::app::{TestApp, init_logs, test_settings};
pub use crate::broker::{AMQP_URL, declare_exchange};
pub use crate::db::server_url;
pub use crate::fixtures::{
    AGENT, AGENT_INACTIVE, SKILL, SKILL_CHAT, SKILL_INACTIVE, SKILL_INBOUND_PHONE, SKILL_NEW_YORK,
    SKILL_NO_ZONE, in_, parse_time, valid_body, with, without,
};
pub use crate::http::{assert_result, read};
