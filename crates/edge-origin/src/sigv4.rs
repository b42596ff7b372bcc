//! AWS Signature Version 4 for header-signed requests, as S3 and its clones expect it.
//! Public so that tests (and other AWS-protocol calls) can sign requests with it.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// `x-amz-content-sha256` for a body that is streamed without being hashed first.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// SHA-256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The key pair that signs a request.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The access key id (`AKIA...`), sent in clear in the `Authorization` header.
    pub access_key_id: &'a str,
    /// The secret key; it never leaves this process.
    pub secret_access_key: &'a str,
}

/// What is signed about one request.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// `GET`, `PUT`, ...
    pub method: &'a str,
    /// The path exactly as sent, already URI-encoded (see [`uri_encode`]).
    pub canonical_uri: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(&'a str, &'a str)],
    /// Every header to sign, `host` and `x-amz-date` included; names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

/// Where the signature is valid: a region and a service (`s3`, `iam`, ...).
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    /// E.g. `us-east-1`.
    pub region: &'a str,
    /// E.g. `s3`.
    pub service: &'a str,
}

/// The `x-amz-date` form of a time: `20130524T000000Z`.
pub fn amz_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The `Authorization` header value for `req`, signed at `amz_date` (which must also be
/// the value of the signed `x-amz-date` header).
pub fn authorization(
    creds: Credentials<'_>,
    scope: Scope<'_>,
    req: &Request<'_>,
    amz_date: &str,
) -> String {
    let (signed_headers, signature) = sign(creds, scope, req, amz_date);
    let day = &amz_date[..amz_date.len().min(8)];
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{day}/{}/{}/aws4_request, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id, scope.region, scope.service
    )
}

/// The signed-header list and the hex signature.
fn sign(
    creds: Credentials<'_>,
    scope: Scope<'_>,
    req: &Request<'_>,
    amz_date: &str,
) -> (String, String) {
    let (canonical, signed_headers) = canonical_request(req);
    let day = &amz_date[..amz_date.len().min(8)];
    let credential_scope = format!("{day}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{credential_scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = hmac(format!("AWS4{}", creds.secret_access_key).as_bytes(), day.as_bytes());
    for part in [scope.region, scope.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    (signed_headers, hex(&hmac(&key, string_to_sign.as_bytes())))
}

/// The canonical request and the signed-header list.
fn canonical_request(req: &Request<'_>) -> (String, String) {
    let mut query: Vec<(String, String)> =
        req.query.iter().map(|(k, v)| (uri_encode(k, true), uri_encode(v, true))).collect();
    query.sort();
    let query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");

    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    // Repeated headers are folded into one line, values comma-separated, in order given.
    let mut folded: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (k, v) in headers {
        match folded.last_mut() {
            Some((last, values)) if *last == k => {
                values.push(',');
                values.push_str(&v);
            }
            _ => folded.push((k, v)),
        }
    }
    let canonical_headers: String = folded.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = folded.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let canonical = format!(
        "{}\n{}\n{query}\n{canonical_headers}\n{signed_headers}\n{}",
        req.method, req.canonical_uri, req.payload_hash
    );
    (canonical, signed_headers)
}

/// URI-encodes per SigV4: every byte except `A-Za-z0-9-._~` becomes `%XX` (upper-case hex);
/// `/` too unless `encode_slash` is false (object paths keep their slashes).
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (b == b'/' && !encode_slash) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    //! The examples of the AWS documentation, "Signature Calculations for the Authorization
    //! Header: Transferring Payload in a Single Chunk (AWS Signature Version 4)".

    use super::*;

    const CREDS: Credentials<'static> = Credentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    };
    const SCOPE: Scope<'static> = Scope { region: "us-east-1", service: "s3" };
    const DATE: &str = "20130524T000000Z";
    const HOST: &str = "examplebucket.s3.amazonaws.com";

    fn signature(req: &Request<'_>) -> String {
        let auth = authorization(CREDS, SCOPE, req, DATE);
        auth.rsplit_once("Signature=").unwrap().1.to_owned()
    }

    #[test]
    fn get_object() {
        let headers = [
            ("Host", HOST),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", DATE),
        ];
        let req = Request {
            method: "GET",
            canonical_uri: "/test.txt",
            query: &[],
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        assert_eq!(
            authorization(CREDS, SCOPE, &req, DATE),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn put_object() {
        let body = b"Welcome to Amazon S3.";
        let hash = sha256_hex(body);
        assert_eq!(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
        let headers = [
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("Host", HOST),
            ("x-amz-content-sha256", &hash),
            ("x-amz-date", DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ];
        let uri = format!("/{}", uri_encode("test$file.text", false));
        assert_eq!(uri, "/test%24file.text");
        let req = Request {
            method: "PUT",
            canonical_uri: &uri,
            query: &[],
            headers: &headers,
            payload_hash: &hash,
        };
        assert_eq!(
            signature(&req),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
    }

    #[test]
    fn get_bucket_lifecycle() {
        let headers =
            [("Host", HOST), ("x-amz-content-sha256", EMPTY_SHA256), ("x-amz-date", DATE)];
        let req = Request {
            method: "GET",
            canonical_uri: "/",
            query: &[("lifecycle", "")],
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        assert_eq!(
            signature(&req),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
    }

    #[test]
    fn list_objects() {
        let headers =
            [("Host", HOST), ("x-amz-content-sha256", EMPTY_SHA256), ("x-amz-date", DATE)];
        let query = [("prefix", "J"), ("max-keys", "2")];
        let req = Request {
            method: "GET",
            canonical_uri: "/",
            query: &query,
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        assert_eq!(
            signature(&req),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn dates_and_encoding() {
        let t = OffsetDateTime::from_unix_timestamp(1369353600).unwrap();
        assert_eq!(amz_date(t), DATE);
        assert_eq!(uri_encode("a b/c+d~e", false), "a%20b/c%2Bd~e");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert_eq!(uri_encode("ü", true), "%C3%BC");
    }
}
