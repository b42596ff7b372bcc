//! Persistence, one module per aggregate. Functions that touch tenant data take the
//! organization id first, so a query without tenant scope cannot be written by accident.

pub mod apikeys;
pub mod apps;
pub mod audit;
pub mod builds;
pub mod credentials;
pub mod deliveries;
pub mod deployments;
pub mod events;
pub mod imports;
pub mod launcher;
pub mod login_attempts;
pub mod orgs;
pub mod published;
pub mod roles;
pub mod sessions;
pub mod settings;
pub mod subscriptions;
pub mod task_payloads;
pub mod task_types;
pub mod tasks;
pub mod traces;
pub mod trainings;
pub mod uploads;
pub mod users;

/// The connection type every store function works on (a pooled connection or a
/// transaction, both deref to it).
pub type Conn = sqlx::AnyConnection;
