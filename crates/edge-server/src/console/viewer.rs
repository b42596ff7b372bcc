//! Who is signed in to a console request: the caller as the API sees it, the session's
//! CSRF token, and what the viewer may do (pages show an action only then).

use super::failure::Failure;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::perms::{Resource, C, D, R, U, X};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::sync::Arc;

/// The signed-in user of a console request, with the CSRF token its forms carry.
#[derive(Clone)]
pub struct Viewer {
    /// The caller, as the API would see it with the session's access token.
    pub caller: Caller,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Viewer {
    /// True when the viewer holds every bit of `bits` on `r` (a page shows an action only
    /// then; the operation checks again).
    pub fn can(&self, r: Resource, bits: u8) -> bool {
        self.caller.perms.has(r, bits)
    }

    /// The permission bits the pages ask about, by name, for templates.
    pub fn may(&self) -> May {
        let c = |r, b| self.can(r, b);
        May {
            apps_create: c(Resource::Apps, C),
            apps_update: c(Resource::Apps, U),
            deployments_read: c(Resource::Deployments, R),
            deployments_create: c(Resource::Deployments, C),
            deployments_delete: c(Resource::Deployments, D),
            tasks_read: c(Resource::Tasks, R),
            tasks_update: c(Resource::Tasks, U),
            tasks_execute: c(Resource::Tasks, X),
            users_read: c(Resource::BeUsers, R),
            users_create: c(Resource::BeUsers, C),
            trainings_read: c(Resource::Trainings, R),
        }
    }
}

/// What the viewer may do, as plain flags for the templates.
#[derive(Clone, Copy)]
pub struct May {
    pub apps_create: bool,
    pub apps_update: bool,
    pub deployments_read: bool,
    pub deployments_create: bool,
    pub deployments_delete: bool,
    pub tasks_read: bool,
    pub tasks_update: bool,
    pub tasks_execute: bool,
    pub users_read: bool,
    pub users_create: bool,
    pub trainings_read: bool,
}

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = Failure;
    async fn from_request_parts(parts: &mut Parts, _: &Arc<AppState>) -> Result<Self, Failure> {
        parts
            .extensions
            .get::<Viewer>()
            .cloned()
            .ok_or_else(|| Failure(ApiError::unauthorized("not signed in")))
    }
}
