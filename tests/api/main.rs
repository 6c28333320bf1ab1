//! HTTP API tests against the real PostgreSQL: each test spawns the app on a fresh database.

mod auth;
mod cli;
mod create;
mod directory;
mod helpers;
mod malformed;
mod manage;
