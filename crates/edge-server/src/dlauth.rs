//! Download authentication for launcher URLs (client.md): an Akamai EdgeAuth token or a
//! Gcore secure-token query covering a whole image directory.

use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// Akamai EdgeAuth 2.0 (the `akamai-edgeauth` reference algorithm, HMAC-SHA-256, fields
/// separated by `~`): `__token__=st=<start>~exp=<end>~acl=<acl>~hmac=<hex>`. `key_hex` is
/// the shared key in hex, as Akamai's property manager shows it; `acl` is not escaped.
pub fn akamai(key_hex: &str, acl: &str, start: i64, window: i64) -> Option<String> {
    let key = hex_decode(key_hex)?;
    let fields = format!("st={start}~exp={}~acl={acl}", start + window);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(fields.as_bytes());
    Some(format!("__token__={fields}~hmac={}", crate::util::hex(&mac.finalize().into_bytes())))
}

/// Gcore secure token for a directory (query-string forwarding mode):
/// `md5=<base64url(MD5("<expires><dir path> <secret>"))>&expires=<expires>`, where the
/// directory path ends with `/` and names no file.
pub fn gcore(secret: &str, dir_path: &str, expires: i64) -> String {
    let digest = Md5::digest(format!("{expires}{dir_path} {secret}").as_bytes());
    let md5 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    format!("md5={md5}&expires={expires}")
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn akamai_shape() {
        let t = super::akamai("0a0b", "/dxf/*", 100, 60).unwrap();
        assert!(t.starts_with("__token__=st=100~exp=160~acl=/dxf/*~hmac="), "{t}");
        assert_eq!(t.len(), "__token__=st=100~exp=160~acl=/dxf/*~hmac=".len() + 64);
        assert!(super::akamai("zz", "/", 0, 1).is_none());
    }
}
