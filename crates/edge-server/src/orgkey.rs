//! The organization's RSA private key as Create Organization accepts it: base64 of a PEM,
//! PKCS#1 (`RSA PRIVATE KEY`, optionally with OpenSSL's legacy `Proc-Type`/`DEK-Info`
//! encryption, as `ssh-keygen -m PEM -N pw` writes it) or PKCS#8 (`PRIVATE KEY`,
//! `ENCRYPTED PRIVATE KEY` with PBES2, as `openssl genpkey`/`openssl pkcs8 -topk8` write it).

use crate::error::ApiError;
use crate::util::{b64, b64_decode};
use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use md5::{Digest, Md5};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;

/// A validated organization key, ready to store.
pub struct OrgKey {
    /// Unencrypted PKCS#8 DER of the private key (to be sealed before storage).
    pub pkcs8_der: Vec<u8>,
    /// SPKI public key in PEM.
    pub public_pem: String,
    /// `SHA256:` + unpadded base64 of the SHA-256 of the public key's DER.
    pub fingerprint: String,
}

const F_KEY: &str = "orgPrivPemB64";
const F_PW: &str = "orgPrivPW";

struct Pem {
    label: String,
    headers: Vec<(String, String)>,
    der: Vec<u8>,
}

fn parse_pem(text: &str) -> Option<Pem> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let body = &body_start[..body_start.find(&end_marker)?];
    let mut headers = Vec::new();
    let mut b64_text = String::new();
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) if b64_text.is_empty() => {
                headers.push((k.trim().to_string(), v.trim().to_string()))
            }
            _ => b64_text.push_str(line),
        }
    }
    Some(Pem { label, headers, der: b64_decode(&b64_text)? })
}

/// OpenSSL's EVP_BytesToKey with MD5 and one iteration (legacy PEM encryption).
fn bytes_to_key(pw: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev: Vec<u8> = Vec::new();
    while out.len() < len {
        let mut h = Md5::new();
        h.update(&prev);
        h.update(pw);
        h.update(salt);
        prev = h.finalize().to_vec();
        out.extend_from_slice(&prev);
    }
    out.truncate(len);
    out
}

fn decrypt_legacy(pem: &Pem, pw: Option<&str>) -> Result<Vec<u8>, ApiError> {
    let dek = pem
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("DEK-Info"))
        .map(|(_, v)| v.clone())
        .ok_or_else(|| ApiError::invalid(F_KEY, "encrypted PEM without DEK-Info"))?;
    let (alg, iv_hex) =
        dek.split_once(',').ok_or_else(|| ApiError::invalid(F_KEY, "malformed DEK-Info"))?;
    let iv: Vec<u8> = (0..iv_hex.len() / 2)
        .map(|i| u8::from_str_radix(&iv_hex[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::invalid(F_KEY, "malformed DEK-Info"))?;
    let pw =
        pw.ok_or_else(|| ApiError::invalid(F_PW, "the key is encrypted: orgPrivPW is required"))?;
    let klen = match alg.trim() {
        "AES-128-CBC" => 16,
        "AES-192-CBC" => 24,
        "AES-256-CBC" => 32,
        other => {
            return Err(ApiError::invalid(
                F_KEY,
                format!("unsupported PEM encryption '{other}' (use AES-CBC or PKCS#8)"),
            ))
        }
    };
    if iv.len() != 16 {
        return Err(ApiError::invalid(F_KEY, "malformed DEK-Info"));
    }
    let key = bytes_to_key(pw.as_bytes(), &iv[..8], klen);
    let wrong = || ApiError::invalid(F_PW, "wrong passphrase for the organization key");
    let mut buf = pem.der.clone();
    let plain = match klen {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
            .map_err(|_| wrong())?
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .map(|p| p.to_vec()),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &iv)
            .map_err(|_| wrong())?
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .map(|p| p.to_vec()),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .map_err(|_| wrong())?
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .map(|p| p.to_vec()),
    };
    plain.map_err(|_| wrong())
}

/// Decodes, decrypts and checks the key: RSA, at least 2048 bits, internally consistent.
pub fn parse_org_key(b64_pem: &str, pw: Option<&str>) -> Result<OrgKey, ApiError> {
    let bad = |m: &str| ApiError::invalid(F_KEY, m.to_string());
    let text = match b64_decode(b64_pem) {
        Some(bytes) => String::from_utf8(bytes)
            .map_err(|_| bad("orgPrivPemB64 is not base64 of a PEM document"))?,
        None => return Err(bad("orgPrivPemB64 is not valid base64")),
    };
    let pem =
        parse_pem(&text).ok_or_else(|| bad("orgPrivPemB64 does not hold a PEM private key"))?;
    let encrypted_legacy = pem
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("Proc-Type") && v.contains("ENCRYPTED"));
    let key = match pem.label.as_str() {
        "RSA PRIVATE KEY" => {
            let der = if encrypted_legacy { decrypt_legacy(&pem, pw)? } else { pem.der.clone() };
            RsaPrivateKey::from_pkcs1_der(&der).map_err(|_| {
                if encrypted_legacy {
                    ApiError::invalid(F_PW, "wrong passphrase for the organization key")
                } else {
                    bad("the PKCS#1 key cannot be decoded")
                }
            })?
        }
        "PRIVATE KEY" => from_pkcs8(&pem.der)?,
        "ENCRYPTED PRIVATE KEY" => {
            let pw = pw.ok_or_else(|| {
                ApiError::invalid(F_PW, "the key is encrypted: orgPrivPW is required")
            })?;
            let info = pkcs8::EncryptedPrivateKeyInfo::try_from(pem.der.as_slice())
                .map_err(|_| bad("the encrypted PKCS#8 key cannot be decoded"))?;
            // An algorithm this build cannot decrypt (PBES1, PBKDF2 with HMAC-SHA-1, DES) is a
            // fault of the key file, not of the passphrase: saying "wrong passphrase" would
            // send the caller after the wrong thing.
            let doc = info.decrypt(pw.as_bytes()).map_err(|e| match e {
                pkcs8::Error::EncryptedPrivateKey(
                    pkcs8::pkcs5::Error::UnsupportedAlgorithm { .. }
                    | pkcs8::pkcs5::Error::NoPbes1CryptSupport
                    | pkcs8::pkcs5::Error::AlgorithmParametersInvalid { .. },
                ) => bad(
                    "unsupported PKCS#8 encryption: use PBES2 with AES-CBC and PBKDF2-HMAC-SHA-256 (openssl pkcs8 -topk8 -v2 aes-256-cbc)",
                ),
                _ => ApiError::invalid(F_PW, "wrong passphrase for the organization key"),
            })?;
            from_pkcs8(doc.as_bytes())?
        }
        "OPENSSH PRIVATE KEY" => {
            return Err(bad("OpenSSH key format is not accepted: export it with ssh-keygen -m PEM"))
        }
        "EC PRIVATE KEY" | "DSA PRIVATE KEY" => return Err(bad("the key is not an RSA key")),
        other => return Err(bad(&format!("unsupported PEM type '{other}'"))),
    };
    let bits = key.size() * 8;
    if bits < 2048 {
        return Err(bad(&format!("the RSA key has {bits} bits; at least 2048 are required")));
    }
    key.validate().map_err(|_| bad("the RSA key is inconsistent"))?;
    let pkcs8_der = key
        .to_pkcs8_der()
        .map_err(|_| bad("the RSA key cannot be re-encoded"))?
        .as_bytes()
        .to_vec();
    let public = key.to_public_key();
    let spki =
        public.to_public_key_der().map_err(|_| bad("the RSA public key cannot be encoded"))?;
    let public_pem = public
        .to_public_key_pem(LineEnding::LF)
        .map_err(|_| bad("the RSA public key cannot be encoded"))?;
    let fp = sha2::Sha256::digest(spki.as_bytes());
    Ok(OrgKey {
        pkcs8_der,
        public_pem,
        fingerprint: format!("SHA256:{}", b64(&fp).trim_end_matches('=')),
    })
}

fn from_pkcs8(der: &[u8]) -> Result<RsaPrivateKey, ApiError> {
    let info = pkcs8::PrivateKeyInfo::try_from(der)
        .map_err(|_| ApiError::invalid(F_KEY, "the PKCS#8 key cannot be decoded"))?;
    if info.algorithm.oid != pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1") {
        return Err(ApiError::invalid(F_KEY, "the key is not an RSA key"));
    }
    RsaPrivateKey::from_pkcs8_der(der)
        .map_err(|_| ApiError::invalid(F_KEY, "the RSA key cannot be decoded"))
}
