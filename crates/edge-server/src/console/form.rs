//! The console's form posts: `application/x-www-form-urlencoded` bodies of at most 64 KiB,
//! decoded into a struct; [`Checked`] also verifies the form's CSRF token.

use super::failure::Failure;
use super::viewer::Viewer;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// A form of no fields but its CSRF token (a button).
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// The largest form the console takes (a configuration bundle is the largest).
const LIMIT: usize = 4 << 20;

/// The field every signed-in form carries its CSRF token in.
pub const CSRF_FIELD: &str = "_csrf";

/// A decoded form, without a CSRF check (the sign-in steps, before there is a session).
pub struct Form<T>(pub T);

/// A decoded form whose CSRF token is the signed-in session's (403 otherwise).
pub struct Checked<T>(pub T);

/// The form's fields, in order.
async fn fields(req: Request) -> Result<Vec<(String, String)>, Failure> {
    let ct = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(Failure(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "a console form is application/x-www-form-urlencoded",
        )));
    }
    let body = axum::body::to_bytes(req.into_body(), LIMIT)
        .await
        .map_err(|_| Failure(ApiError::too_large("the form is larger than 4 MiB")))?;
    Ok(pairs(&body))
}

fn pairs(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// Decodes `fields` (the CSRF field left out) into `T`; a missing or mistyped field is 400.
fn decode<T: DeserializeOwned>(fields: &[(String, String)]) -> Result<T, Failure> {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields.iter().filter(|(k, _)| k != CSRF_FIELD) {
        s.append_pair(k, v);
    }
    serde_urlencoded::from_str(&s.finish())
        .map_err(|e| Failure(ApiError::bad_request(format!("the form is incomplete: {e}"))))
}

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for Form<T> {
    type Rejection = Failure;
    async fn from_request(req: Request, _: &Arc<AppState>) -> Result<Self, Failure> {
        Ok(Form(decode(&fields(req).await?)?))
    }
}

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for Checked<T> {
    type Rejection = Failure;
    async fn from_request(req: Request, _: &Arc<AppState>) -> Result<Self, Failure> {
        let want = req
            .extensions()
            .get::<Viewer>()
            .map(|v| v.csrf.clone())
            .ok_or_else(|| Failure(ApiError::unauthorized("not signed in")))?;
        let f = fields(req).await?;
        let got = f.iter().find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v.as_str()).unwrap_or("");
        if !crate::util::ct_eq(got.as_bytes(), want.as_bytes()) {
            return Err(Failure(ApiError::forbidden(
                "the form's CSRF token is missing or not this session's; reload the page and try again",
            )));
        }
        Ok(Checked(decode(&f)?))
    }
}
