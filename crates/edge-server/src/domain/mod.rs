//! The domain layer: the rules and operations of each aggregate, shared by the HTTP API,
//! configuration bundles (`orgconf`), the pipeline and the console. Below it are the store
//! and the shared state; above it the pipeline (`delivery`), `orgconf`, the worker and the
//! handlers (`tests/it/layers.rs` checks the order).

pub mod apikeys;
pub mod apps;
pub mod audit;
pub mod deployments;
pub mod imports;
pub mod instance;
pub mod launcher;
pub mod login;
pub mod operator;
pub mod orgs;
pub mod purge;
pub mod roles;
pub mod rollback;
pub mod sessions;
pub mod subscriptions;
pub mod tasks;
pub mod traces;
pub mod trainings;
pub mod uploads;
pub mod users;
