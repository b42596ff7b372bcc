//! Secrets in a bundle: each one encrypted to the organization's RSA public key
//! (RSA-OAEP with SHA-256 wrapping a fresh AES-256-GCM key), so only a holder of the
//! organization's private key — this instance, or an operator restoring it — can read it.

use crate::error::{ApiError, ApiResult};
use crate::ids::OrgId;
use crate::state::AppState;
use crate::store::Conn;
use crate::util::{b64, b64_decode, random_bytes};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::{Oaep, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The `encrypted` tag of an encrypted value.
pub const ALG: &str = "RSA-OAEP-256+A256GCM";

/// An organization key able to seal and open bundle secrets.
pub struct BundleKey {
    key: RsaPrivateKey,
    /// `SHA256:` + unpadded base64 of the public key's DER, as the org object shows it.
    pub fingerprint: String,
}

impl BundleKey {
    /// Wraps a private key, computing its fingerprint.
    pub fn new(key: RsaPrivateKey) -> ApiResult<BundleKey> {
        let spki = key.to_public_key().to_public_key_der().map_err(ApiError::internal)?;
        let fp = format!("SHA256:{}", b64(&Sha256::digest(spki.as_bytes())).trim_end_matches('='));
        Ok(BundleKey { key, fingerprint: fp })
    }

    /// The organization's stored key, when it has one.
    pub async fn of_org(
        st: &AppState,
        c: &mut Conn,
        org_id: &OrgId,
    ) -> ApiResult<Option<BundleKey>> {
        let Some(sealed) = crate::store::orgs::key_sealed(&mut *c, org_id).await? else {
            return Ok(None);
        };
        let der = st
            .data_key
            .open(&sealed)
            .ok_or_else(|| ApiError::internal("the organization key cannot be unsealed"))?;
        let key = RsaPrivateKey::from_pkcs8_der(&der).map_err(ApiError::internal)?;
        Ok(Some(BundleKey::new(key)?))
    }

    /// Encrypts one secret.
    pub fn seal(&self, plain: &str) -> ApiResult<Value> {
        let aes = random_bytes(32);
        let iv = random_bytes(12);
        let ct = Aes256Gcm::new(aes.as_slice().into())
            .encrypt(Nonce::from_slice(&iv), plain.as_bytes())
            .map_err(|_| ApiError::internal("AES-GCM failed"))?;
        let ek = self
            .key
            .to_public_key()
            .encrypt(&mut rand::rngs::OsRng, Oaep::new::<Sha256>(), &aes)
            .map_err(ApiError::internal)?;
        Ok(
            json!({"encrypted": ALG, "keyFingerprint": self.fingerprint, "ek": b64(&ek), "iv": b64(&iv), "ct": b64(&ct)}),
        )
    }

    /// Decrypts what [`BundleKey::seal`] produced with this key.
    pub fn open(&self, v: &Value, field: &str) -> ApiResult<String> {
        let fp = v["keyFingerprint"].as_str().unwrap_or("");
        if fp != self.fingerprint {
            return Err(ApiError::invalid(
                field,
                format!(
                    "{field} is encrypted for key {fp}, not for this organization's key {}",
                    self.fingerprint
                ),
            ));
        }
        let bad = || {
            ApiError::invalid(
                field,
                format!("{field} cannot be decrypted with the organization's key"),
            )
        };
        let part = |k: &str| v[k].as_str().and_then(b64_decode).ok_or_else(bad);
        let (ek, iv, ct) = (part("ek")?, part("iv")?, part("ct")?);
        if iv.len() != 12 {
            return Err(bad());
        }
        let aes = self.key.decrypt(Oaep::new::<Sha256>(), &ek).map_err(|_| bad())?;
        if aes.len() != 32 {
            return Err(bad());
        }
        let plain = Aes256Gcm::new(aes.as_slice().into())
            .decrypt(Nonce::from_slice(&iv), ct.as_slice())
            .map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }
}

/// True for a value shaped like an encrypted secret.
pub fn is_sealed(v: &Value) -> bool {
    v.get("encrypted").and_then(Value::as_str).is_some()
}

/// A secret of a bundle item in clear: plain strings pass (a hand-written bundle), an
/// encrypted value needs `key`.
pub fn open_value(v: &Value, key: Option<&BundleKey>, field: &str) -> ApiResult<Value> {
    if !is_sealed(v) {
        return Ok(v.clone());
    }
    if v["encrypted"] != ALG {
        return Err(ApiError::invalid(
            field,
            format!("{field}: unknown encryption {}", v["encrypted"]),
        ));
    }
    match key {
        Some(k) => Ok(json!(k.open(v, field)?)),
        None => Err(ApiError::invalid(
            field,
            format!("{field} is encrypted, and this organization has no key to decrypt it"),
        )),
    }
}
