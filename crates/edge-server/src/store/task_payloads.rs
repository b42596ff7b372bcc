//! What each kind of task is given, one type per kind (as crates.io's background jobs):
//! stored as the row's `params` JSON. The text is byte for byte what the `json!` literals
//! of earlier releases wrote — keys in sorted order (serde_json's map), the same keys left
//! out or null — so rows already in a database decode, and rows written now read the same
//! to a binary of the previous release during a rolling upgrade.

use super::task_types::TaskKind;
use serde::de::DeserializeOwned;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// The parameters of one kind of task, read back with [`super::tasks::Task::payload`].
pub trait TaskParams: Serialize + DeserializeOwned + Into<Payload> {
    /// The kind they belong to.
    const KIND: TaskKind;
}

/// What a task to enqueue is given; its variant is its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Downloads the archive, or waits for its upload.
    Dltar(DltarParams),
    /// Ingests the archive. The steps after `dltar`, and `mkseq`, take nothing but their
    /// group and build: stored as `{}`.
    Mkraw,
    /// Writes the build's image (`{}`).
    Mkdxf,
    /// Writes patches from the kept builds (`{}`).
    Mkpat,
    /// Publishes the image and patches (`{}`), or makes a kept build current again.
    Deploy(DeployParams),
    /// Learns a new read order from traces (`{}`).
    Mkseq,
    /// Removes what a deleted app, deployment or organization published.
    Purge(PurgeParams),
    /// The operator's test task.
    Hello(HelloParams),
}

impl Payload {
    /// The kind of task this payload is for.
    pub fn kind(&self) -> TaskKind {
        match self {
            Payload::Dltar(_) => TaskKind::Dltar,
            Payload::Mkraw => TaskKind::Mkraw,
            Payload::Mkdxf => TaskKind::Mkdxf,
            Payload::Mkpat => TaskKind::Mkpat,
            Payload::Deploy(_) => TaskKind::Deploy,
            Payload::Mkseq => TaskKind::Mkseq,
            Payload::Purge(_) => TaskKind::Purge,
            Payload::Hello(_) => TaskKind::Hello,
        }
    }

    /// The `params` text stored in the task row.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        match self {
            Payload::Dltar(p) => serde_json::to_string(p),
            Payload::Mkraw | Payload::Mkdxf | Payload::Mkpat | Payload::Mkseq => {
                Ok("{}".to_string())
            }
            Payload::Deploy(p) => serde_json::to_string(p),
            Payload::Purge(p) => serde_json::to_string(p),
            Payload::Hello(p) => serde_json::to_string(p),
        }
    }
}

/// `TaskParams` and `From<…> for Payload` for each parameter type.
macro_rules! params {
    ($($t:ident => $variant:ident),* $(,)?) => {$(
        impl TaskParams for $t {
            const KIND: TaskKind = TaskKind::$variant;
        }

        impl From<$t> for Payload {
            fn from(p: $t) -> Payload {
                Payload::$variant(p)
            }
        }
    )*};
}

params!(DltarParams => Dltar, DeployParams => Deploy, PurgeParams => Purge, HelloParams => Hello);

/// How an import's archive arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportMode {
    /// The publisher PUTs it to the one-time upload URL; the PUT ends the `dltar`.
    Upload,
    /// The `dltar` downloads it from the publisher's URL.
    Url,
}

/// `dltar`: where the archive comes from. Stored as `{"mode","size"}` in upload mode and
/// `{"headersSealed"?,"mode","sha256","size","url"}` in url mode (`sha256` and `size` null
/// when the import gave none; `headersSealed` only when it gave headers).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DltarParams {
    /// Upload or download.
    pub mode: ImportMode,
    /// The size the import announced, checked against what arrives.
    #[serde(default)]
    pub size: Option<u64>,
    /// The URL to download (url mode).
    #[serde(default)]
    pub url: Option<String>,
    /// The archive's SHA-256 the import announced (url mode), hex.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The publisher's request headers (url mode), a JSON object sealed with the data key:
    /// they often carry credentials.
    #[serde(default)]
    pub headers_sealed: Option<String>,
}

impl DltarParams {
    /// An import the publisher uploads.
    pub fn upload(size: Option<u64>) -> DltarParams {
        DltarParams {
            mode: ImportMode::Upload,
            size,
            url: None,
            sha256: None,
            headers_sealed: None,
        }
    }
}

impl Serialize for DltarParams {
    // By hand: `sha256` is written (null or not) in url mode only, which no field
    // attribute can express; and the keys go in sorted order, as `json!` wrote them.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let url_mode = self.mode == ImportMode::Url;
        let fields = 2 + usize::from(self.headers_sealed.is_some()) + if url_mode { 2 } else { 0 };
        let mut m = s.serialize_struct("DltarParams", fields)?;
        if let Some(h) = &self.headers_sealed {
            m.serialize_field("headersSealed", h)?;
        }
        m.serialize_field("mode", &self.mode)?;
        if url_mode {
            m.serialize_field("sha256", &self.sha256)?;
        }
        m.serialize_field("size", &self.size)?;
        if url_mode {
            m.serialize_field("url", &self.url)?;
        }
        m.end()
    }
}

/// `deploy`: an import's (or a re-sequencing's) publish, stored as `{}` as before; or a
/// rollback, `{"rollback":true}`, which publishes a kept build's image again from the
/// depot's published copy and makes that build current.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployParams {
    /// A rollback to the task's build (no staged image, no patches).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

impl DeployParams {
    /// The publish that ends an import or a re-sequencing.
    pub const PUBLISH: Payload = Payload::Deploy(DeployParams { rollback: false });
}

/// Why something published is purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PurgeReason {
    /// Its app was deleted.
    AppDeleted,
    /// Its deployment was deleted.
    DeploymentDeleted,
    /// Its organization was deleted.
    OrgDeleted,
}

/// `purge`: what to remove, as it was when the deletion happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeParams {
    // Fields in the order of their names: the keys as `json!` sorted them.
    /// Why (for the operator reading the task).
    pub reason: PurgeReason,
    /// The `domain::purge::Snapshot`, sealed with the data key (it holds origin secrets).
    pub snapshot: String,
}

/// `hello`: the operator's test task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloParams {
    // Fields in the order of their names: the keys as `json!` sorted them.
    /// The operator who asked.
    pub admin: String,
    /// Whether the worker runs a maintenance sweep now.
    pub maintenance: bool,
    /// Echoed in the result.
    pub message: String,
}

/// Parameters that cannot be read as the type asked for.
#[derive(Debug)]
pub enum PayloadError {
    /// The task is of another kind than the parameters asked for.
    Kind {
        /// The task's kind.
        task: TaskKind,
        /// The kind of the parameters asked for.
        asked: TaskKind,
    },
    /// The stored text does not decode.
    Json {
        /// The task's kind.
        kind: TaskKind,
        /// Why.
        source: serde_json::Error,
    },
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::Kind { task, asked } => {
                write!(f, "a {task} task has no {asked} parameters")
            }
            PayloadError::Json { kind, source } => {
                write!(f, "the parameters of a {kind} task: {source}")
            }
        }
    }
}

impl std::error::Error for PayloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PayloadError::Kind { .. } => None,
            PayloadError::Json { source, .. } => Some(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(p: impl Into<Payload>) -> String {
        p.into().to_json().unwrap()
    }

    /// The text each payload stores is the text the `json!` literals it replaces stored.
    #[test]
    fn stored_text_is_what_json_wrote() {
        let size = Some(42u64);
        let upload = DltarParams::upload(size);
        assert_eq!(text(upload.clone()), json!({"mode": "upload", "size": size}).to_string());
        assert_eq!(text(DltarParams::upload(None)), r#"{"mode":"upload","size":null}"#);
        for (sha, headers) in [(None, None), (Some("ab".repeat(32)), Some("v1:sealed".to_string()))]
        {
            let p = DltarParams {
                mode: ImportMode::Url,
                url: Some("https://example.com/b.tar?x=\"1\"".into()),
                sha256: sha.clone(),
                headers_sealed: headers.clone(),
                ..upload.clone()
            };
            let mut old = json!({"mode": "url", "size": size});
            old["url"] = json!("https://example.com/b.tar?x=\"1\"");
            old["sha256"] = json!(sha);
            if let Some(h) = &headers {
                old["headersSealed"] = json!(h);
            }
            assert_eq!(text(p.clone()), old.to_string());
            assert_eq!(serde_json::from_str::<DltarParams>(&old.to_string()).unwrap(), p);
        }
        let purge =
            PurgeParams { reason: PurgeReason::DeploymentDeleted, snapshot: "v1:abc".into() };
        assert_eq!(
            text(purge.clone()),
            json!({"snapshot": "v1:abc", "reason": "deployment-deleted"}).to_string()
        );
        let hello =
            HelloParams { admin: "op".into(), maintenance: true, message: "hi \u{e9}".into() };
        assert_eq!(
            text(hello),
            json!({"message": "hi \u{e9}", "maintenance": true, "admin": "op"}).to_string()
        );
        for step in
            [Payload::Mkraw, Payload::Mkdxf, Payload::Mkpat, DeployParams::PUBLISH, Payload::Mkseq]
        {
            assert_eq!(step.to_json().unwrap(), json!({}).to_string());
        }
        assert_eq!(text(DeployParams { rollback: true }), json!({"rollback": true}).to_string());
    }

    #[test]
    fn rows_of_earlier_releases_decode() {
        let p: DltarParams = serde_json::from_str(r#"{"mode":"upload","size":null}"#).unwrap();
        assert_eq!(p, DltarParams::upload(None));
        for r in ["app-deleted", "deployment-deleted", "org-deleted"] {
            let p: PurgeParams =
                serde_json::from_str(&json!({"reason": r, "snapshot": "v1:x"}).to_string())
                    .unwrap();
            assert_eq!(serde_json::to_value(p.reason).unwrap(), r);
        }
        let h: HelloParams =
            serde_json::from_str(r#"{"admin":"a","maintenance":false,"message":"m"}"#).unwrap();
        assert!(!h.maintenance);
        let d: DeployParams = serde_json::from_str("{}").unwrap();
        assert!(!d.rollback);
    }
}
