//! HTTP API tests against the real PostgreSQL: each test spawns the app on a fresh database.
//! What they share (the spawned app, fixtures, the broker tap, the daemon as a process, the
//! CLI runner) is the test kit, `tests/kit`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod agents;
mod auth;
mod bulk;
mod cache;
mod calendars;
mod cli;
mod console;
mod create;
mod customer;
mod cxone;
mod directory;
mod dispatch;
mod dnc;
mod events;
mod faults;
mod hardening;
mod history;
mod lifecycle;
mod limits;
mod maintenance;
mod malformed;
mod manage;
mod oidc;
mod openapi;
mod operator;
mod outcome_queue;
mod pacing;
mod pause;
mod priority;
mod privacy;
mod process;
mod reminders;
mod reports;
mod retry;
mod routing;
mod slots;
mod status;
mod webhooks;
