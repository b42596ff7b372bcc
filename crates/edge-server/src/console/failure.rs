//! A refusal or failure of a console request, shown as a page.

use crate::error::ApiError;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

/// The error page.
#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    status: u16,
    code: &'static str,
    message: String,
}

/// A refusal or failure shown as a page with the API's status, code and message (401 sends
/// the browser to the sign-in page instead).
pub struct Failure(pub ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure(e)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Failure {
        Failure(e.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let e = self.0;
        if e.status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/console/sign-in").into_response();
        }
        if e.status.is_server_error() {
            tracing::warn!(status = e.status.as_u16(), message = %e.message, "console page failed");
        }
        let page = ErrorPage { status: e.status.as_u16(), code: e.code, message: e.message };
        match page.render() {
            Ok(html) => (e.status, Html(html)).into_response(),
            Err(_) => (e.status, page.message).into_response(),
        }
    }
}
