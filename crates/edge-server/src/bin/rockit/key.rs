//! The organization's public key for `--public-key`: an RSA public key in PEM, SPKI
//! (`BEGIN PUBLIC KEY`, what the Edge shows as `publicKeyPem`) or PKCS#1
//! (`BEGIN RSA PUBLIC KEY`).

use crate::fail::Fail;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::RsaPublicKey;
use std::path::Path;

/// Reads the key file; returns the key as SPKI PEM (what the engine verifies with).
pub fn load_public(path: &Path) -> Result<String, Fail> {
    let bytes = std::fs::read(path)
        .map_err(|e| Fail::new(format!("public key {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let key = RsaPublicKey::from_public_key_pem(text.trim())
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(text.trim()))
        .map_err(|_| {
            Fail::new(format!(
                "public key {}: not an RSA public key in PEM (-----BEGIN PUBLIC KEY-----)",
                path.display()
            ))
        })?;
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| Fail::new(format!("public key {}: {e}", path.display())))
}
