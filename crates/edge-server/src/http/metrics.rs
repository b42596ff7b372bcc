//! `GET /metrics`: the process's registry rendered with the queue depth read at scrape time.

use crate::state::AppState;

/// The whole scrape answer of `st`.
pub async fn scrape(st: &AppState) -> axum::response::Response {
    use axum::response::IntoResponse;
    let queue = match crate::store::tasks::queue_depth(&st.db).await {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: reading the queue depth failed");
            Vec::new()
        }
    };
    let mut text = st.metrics.render(&queue);
    text.push_str(&format!(
        "# HELP edge_password_checks_total Password checks (Argon2) this process did.\n# TYPE edge_password_checks_total counter\nedge_password_checks_total {}\n",
        st.passwords.checks()
    ));
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
        .into_response()
}
