//! The integration suite: one binary, real servers on 127.0.0.1:0, spoken to over HTTP.
//! Every test runs on SQLite; its `_pg` twin runs on PostgreSQL when
//! `EDGE_TEST_DATABASE_URL` is set (CI sets it).

mod common;

mod admin;
mod cli;
mod cli_publish;
mod cli_resources;
mod cli_setup;
mod client;
mod conformance;
mod console;
mod conventions;
mod crash;
mod delivery;
mod depot_s3;
mod events;
mod flow;
mod foundry;
mod game;
mod getting_started;
mod hardening;
mod host_guards;
mod hostile_paths;
mod identity;
mod launcher;
mod layers;
mod learning;
mod migrations;
mod openapi;
mod ops;
mod orgconf;
mod orgs;
mod origins;
mod pipeline_failures;
mod proc;
mod progress;
mod readme;
mod rollback;
mod settle;
mod traces;
mod updates;
mod webdriver;
