//! The body of `POST /client/v1/traces` and its `Content-Encoding`, as `/openapi.json`
//! describes them. The body is read by `edge_engine::seq::read_trace` and the header by
//! `Encoding::of`; these types only describe them: keep them in step.

use serde::Serialize;
use utoipa::ToSchema;

/// A `rockit-trace` v1 document (formats spec "Trace"): which bytes of which files a game
/// read during one play session, and when. Members not named here are ignored.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // the body is read by `edge_engine::seq::read_trace`; this only describes it
pub struct RockitTrace {
    /// Always `rockit-trace`.
    #[schema(value_type = TraceFormat)]
    format: String,
    /// Always 1.
    #[schema(minimum = 1, maximum = 1)]
    version: u64,
    /// The app the session played (the session's).
    #[schema(min_length = 1)]
    app_name: String,
    /// The build the session played (the session's).
    build_id: u64,
    /// The image the launcher streamed, when it says.
    #[schema(required = false)]
    dxf_name: Option<String>,
    /// Files read, relative to the game directory, `/`-separated, each once (at most
    /// 1,000,000, each at most 4096 characters).
    paths: Vec<String>,
    /// `[ms since game start, index into paths, offset, length]`, in time order (at most
    /// 2,000,000).
    #[schema(value_type = Vec<Vec<u64>>)]
    events: Vec<[u64; 4]>,
}

/// The `format` of a trace document.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes the document only
pub enum TraceFormat {
    /// The only format.
    #[serde(rename = "rockit-trace")]
    RockitTrace,
}

/// How a trace body is compressed (`Content-Encoding`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // the header is read as text by `Encoding::of`; this only describes it
pub enum TraceEncoding {
    /// zstd (a window of at most 8 MiB, RFC 9659).
    Zstd,
    /// gzip.
    Gzip,
    /// Not compressed.
    Identity,
}

/// The trace document compressed (zstd or gzip, as `Content-Encoding` says).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // describes the body, read as a stream
pub struct TraceBytes(Vec<u8>);
