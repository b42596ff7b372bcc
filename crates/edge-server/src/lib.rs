//! rockit-edge: an open, self-hostable, wire-compatible implementation of the ROCKIT Edge
//! game-delivery service. See `docs/ARCHITECTURE.md` for the map of this crate.

pub mod caller;
pub mod changelog;
pub mod config;
pub mod console;
pub mod crypto;
pub mod db;
pub mod delivery;
pub mod depot;
pub mod dlauth;
pub mod domain;
pub mod error;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod names;
pub mod orgconf;
pub mod orgkey;
pub mod passwords;
pub mod perms;
pub mod ratelimit;
pub mod server;
pub mod settle;
pub mod state;
pub mod store;
pub mod targets;
pub mod util;
pub mod version;
pub mod worker;
