//! HTTP helpers of the benchmarks that drive a real server.

use serde_json::Value;

/// Sends a JSON body and reads the JSON answer.
pub async fn post_json(req: reqwest::RequestBuilder, body: Value) -> Result<Value, String> {
    req.json(&body).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())
}
