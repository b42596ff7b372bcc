//! Secrets at rest (AES-256-GCM), password hashing (Argon2id) and HS256 JWTs.

use crate::util::{b64, b64_decode, b64url, random_bytes};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// A value that must never reach a log: `Debug` and `Display` print `********` (one type
/// for the workspace, kept in `edge-origin`, which holds the origins' credentials).
pub use edge_origin::Secret;

/// The instance data key: encrypts secrets stored in the database.
#[derive(Clone)]
pub struct DataKey(Secret<[u8; 32]>);

impl DataKey {
    /// Wraps 32 raw key bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        DataKey(Secret(bytes))
    }
    /// Encrypts `plain`; the result is `v1:` + base64(nonce ‖ ciphertext).
    pub fn seal(&self, plain: &[u8]) -> String {
        let cipher = Aes256Gcm::new((&self.0 .0).into());
        let nonce = random_bytes(12);
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), plain)
            .expect("AES-GCM encryption cannot fail");
        let mut out = nonce;
        out.extend_from_slice(&ct);
        format!("v1:{}", b64(&out))
    }
    /// Decrypts what [`DataKey::seal`] produced; `None` when it was not sealed with this key.
    pub fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        let raw = b64_decode(sealed.strip_prefix("v1:")?)?;
        if raw.len() < 12 + 16 {
            return None;
        }
        let cipher = Aes256Gcm::new((&self.0 .0).into());
        cipher.decrypt(Nonce::from_slice(&raw[..12]), &raw[12..]).ok()
    }
}

/// Hashes a password with Argon2id and a random salt (PHC string).
pub fn hash_password(pw: &str) -> String {
    let salt = SaltString::encode_b64(&random_bytes(16)).expect("16-byte salt encodes");
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// Argon2 working memory kept between hashes by one worker thread (19 MiB with the default
/// parameters): repeated hashes neither allocate nor fault in fresh pages, and the
/// process's memory stays at one block array per worker.
#[derive(Default)]
pub struct Argon2Memory(Vec<argon2::Block>);

impl Argon2Memory {
    fn blocks(&mut self, n: usize) -> &mut [argon2::Block] {
        if self.0.len() < n {
            self.0.resize(n, argon2::Block::default());
        }
        &mut self.0[..n]
    }
}

/// [`hash_password`] in `mem`.
pub fn hash_password_with(mem: &mut Argon2Memory, pw: &str) -> String {
    use argon2::password_hash::{Output, ParamsString};
    let salt = SaltString::encode_b64(&random_bytes(16)).expect("16-byte salt encodes");
    let argon = Argon2::default();
    let params = argon.params().clone();
    let mut raw_salt = [0u8; 64];
    let raw_salt = salt.as_salt().decode_b64(&mut raw_salt).expect("a salt we encoded decodes");
    let out = Output::init_with(
        params.output_len().unwrap_or(argon2::Params::DEFAULT_OUTPUT_LEN),
        |out| {
            Ok(argon.hash_password_into_with_memory(
                pw.as_bytes(),
                raw_salt,
                out,
                mem.blocks(params.block_count()),
            )?)
        },
    )
    .expect("argon2 with default parameters");
    PasswordHash {
        algorithm: argon2::Algorithm::default().ident(),
        version: Some(argon2::Version::default().into()),
        params: ParamsString::try_from(&params).expect("default parameters encode"),
        salt: Some(salt.as_salt()),
        hash: Some(out),
    }
    .to_string()
}

/// [`verify_password`] in `mem`.
pub fn verify_password_with(mem: &mut Argon2Memory, pw: &str, phc: &str) -> bool {
    use argon2::password_hash::Output;
    let mut check = || -> Result<bool, argon2::password_hash::Error> {
        let h = PasswordHash::new(phc)?;
        let (Some(salt), Some(expected)) = (h.salt, h.hash) else { return Ok(false) };
        let alg = argon2::Algorithm::try_from(h.algorithm)?;
        let version = h.version.map(argon2::Version::try_from).transpose()?.unwrap_or_default();
        let params = argon2::Params::try_from(&h)?;
        let argon = Argon2::new(alg, version, params.clone());
        let mut raw_salt = [0u8; 64];
        let raw_salt = salt.decode_b64(&mut raw_salt)?;
        let out = Output::init_with(expected.len(), |out| {
            Ok(argon.hash_password_into_with_memory(
                pw.as_bytes(),
                raw_salt,
                out,
                mem.blocks(params.block_count()),
            )?)
        })?;
        // `Output`'s equality is constant-time.
        Ok(out == expected)
    };
    check().unwrap_or(false)
}

/// Verifies a password against a PHC string; false for anything malformed.
pub fn verify_password(pw: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(pw.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// A random password of 20 characters from an unambiguous alphabet.
pub fn random_password() -> String {
    const A: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    random_bytes(20).iter().map(|b| A[*b as usize % A.len()] as char).collect()
}

type HmacSha256 = Hmac<Sha256>;

/// Signs `claims` as a compact HS256 JWT.
pub fn jwt_sign(claims: &Value, key: &[u8]) -> String {
    let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64url(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", b64url(&mac.finalize().into_bytes()))
}

/// Verifies a compact HS256 JWT and returns its claims. Refuses any `alg` but HS256, a bad
/// signature, and an `exp` in the past or an `nbf` in the future when present.
pub fn jwt_verify(token: &str, key: &[u8], now_s: i64) -> Option<Value> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let dec = |x: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(x.trim_end_matches('=')).ok()
    };
    let header: Value = serde_json::from_slice(&dec(h)?).ok()?;
    if header.get("alg")?.as_str()? != "HS256" {
        return None;
    }
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).ok()?;
    mac.update(format!("{h}.{p}").as_bytes());
    mac.verify_slice(&dec(s)?).ok()?;
    let claims: Value = serde_json::from_slice(&dec(p)?).ok()?;
    if !claims.is_object() {
        return None;
    }
    if let Some(exp) = claims.get("exp") {
        if exp.as_i64()? < now_s {
            return None;
        }
    }
    if let Some(nbf) = claims.get("nbf") {
        if nbf.as_i64()? > now_s {
            return None;
        }
    }
    Some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[test]
    fn seal_roundtrip() {
        let k = DataKey::new([7; 32]);
        let s = k.seal(b"hello");
        assert_eq!(k.open(&s).unwrap(), b"hello");
        assert!(DataKey::new([8; 32]).open(&s).is_none());
        assert_eq!(format!("{:?}", Secret("x")), "********");
    }
    #[test]
    fn passwords_with_kept_memory_match_the_plain_functions() {
        let mut mem = Argon2Memory::default();
        let a = hash_password_with(&mut mem, "correct horse");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert!(verify_password("correct horse", &a));
        assert!(verify_password_with(&mut mem, "correct horse", &a));
        assert!(!verify_password_with(&mut mem, "correct hors", &a));
        let b = hash_password("battery staple");
        assert!(verify_password_with(&mut mem, "battery staple", &b));
        assert!(!verify_password_with(&mut mem, "battery", &b));
        assert!(!verify_password_with(&mut mem, "x", "not a phc string"));
    }
    #[test]
    fn jwt() {
        let t = jwt_sign(&json!({"username":"op"}), b"k");
        assert_eq!(jwt_verify(&t, b"k", 0).unwrap()["username"], "op");
        assert!(jwt_verify(&t, b"j", 0).is_none());
        let e = jwt_sign(&json!({"username":"op","exp":10}), b"k");
        assert!(jwt_verify(&e, b"k", 11).is_none());
        assert!(jwt_verify(&e, b"k", 9).is_some());
    }
}
