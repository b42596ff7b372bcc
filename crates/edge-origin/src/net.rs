//! The outbound-request guard (delivery.md: download sources, webhooks and origins).
//!
//! Private, loopback, link-local and similar addresses are refused unless the instance
//! allows them (`allow_private`). The check runs on every resolved address at connect
//! time, through the client's DNS resolver, so it holds for every attempt and redirect
//! hop and cannot be dodged by DNS rebinding between check and connect. Hosts written as
//! IP literals never reach a resolver, so [`check_url`] covers them, before the first
//! request and on each redirect hop. Redirects: at most [`MAX_REDIRECTS`].

use crate::{ErrorKind, OriginError, OriginOptions};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;

/// An HTTP client that enforces the address rule on every connection: its resolver drops
/// addresses that are not public (unless `opts.allow_private`), its redirect policy checks
/// each hop with [`check_url`] and stops after [`MAX_REDIRECTS`], and it ignores proxy
/// environment variables (a proxy would resolve names where the guard cannot see).
/// `opts.timeout` bounds connecting and each wait for data, not a whole transfer.
pub fn client(opts: &OriginOptions) -> reqwest::Client {
    let allow_private = opts.allow_private;
    let policy = redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            let err = OriginError::new(
                ErrorKind::Network,
                format!("too many redirects (more than {MAX_REDIRECTS})"),
            );
            return attempt.error(err);
        }
        match check_url(attempt.url().as_str(), allow_private) {
            Ok(()) => attempt.follow(),
            Err(err) => attempt.error(err),
        }
    });
    build(opts, policy)
}

/// Like [`client`], but follows no redirect: for callers that must decide per hop what
/// to send (build downloads drop the publisher's headers on a hop to another origin).
/// Sends no `Referer`.
pub fn client_no_redirect(opts: &OriginOptions) -> reqwest::Client {
    build(opts, redirect::Policy::none())
}

fn build(opts: &OriginOptions, policy: redirect::Policy) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { allow_private: opts.allow_private }))
        .redirect(policy)
        .referer(false)
        .no_proxy()
        .connect_timeout(opts.timeout)
        .read_timeout(opts.timeout)
        .user_agent(concat!("rockit-edge/", env!("CARGO_PKG_VERSION")))
        .build()
        // Building fails only when the TLS backend cannot initialise, which the bundled
        // rustls with compiled-in roots does not do: a failure here is a broken build.
        .expect("the HTTP client (rustls) could not be built")
}

/// Checks what can be checked before connecting: the scheme (http or https only) and, for a
/// host written as an IP literal (or a `localhost` name), that the address is allowed.
/// Names are checked later, at connect time, by the resolver of [`client`].
pub fn check_url(url: &str, allow_private: bool) -> Result<(), OriginError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| OriginError::invalid(format!("not a valid URL: {e}")))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => {
            return Err(OriginError::invalid(format!(
                "URL scheme {other:?} is not allowed (http or https only)"
            )))
        }
    }
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err(OriginError::invalid("URL has no host"));
    };
    if allow_private {
        return Ok(());
    }
    // `host_str` is normalised: IPv4 in dotted decimal, IPv6 in brackets.
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        if !is_public_ip(ip) {
            return Err(denied(host, ip));
        }
    } else if is_localhost_name(host) {
        return Err(OriginError::new(
            ErrorKind::Denied,
            format!("host {host} is not allowed (loopback)"),
        ));
    }
    Ok(())
}

/// Whether an address may be reached when private targets are not allowed: false for
/// unspecified, loopback, private (RFC 1918), CGNAT, link-local, unique-local, site-local,
/// multicast, broadcast, documentation, benchmarking and reserved ranges, and for IPv6
/// forms embedding such an IPv4 address (mapped, compatible, NAT64, 6to4).
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// The [`OriginError`] carried by a failed request, if any: the one raised by this module's
/// resolver or redirect policy (kind `Denied`, or `Network` for too many redirects),
/// otherwise a `Network` error naming the host and the root cause.
pub fn request_error(err: &reqwest::Error) -> OriginError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    let mut root = String::new();
    while let Some(e) = source {
        if let Some(ours) = e.downcast_ref::<OriginError>() {
            return ours.clone();
        }
        root = e.to_string();
        source = e.source();
    }
    let host = err.url().and_then(|u| u.host_str()).unwrap_or("the server").to_owned();
    let message = if err.is_timeout() {
        format!("timed out talking to {host}")
    } else if err.is_connect() {
        format!("cannot connect to {host}: {root}")
    } else {
        format!("request to {host} failed: {root}")
    };
    OriginError::new(ErrorKind::Network, message)
}

/// Resolves names with the system resolver and drops every address [`is_public_ip`]
/// refuses; a name left with no address fails with a `Denied` [`OriginError`].
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = if is_localhost_name(&host) && host != "localhost" {
                // RFC 6761: every name under `localhost.` is loopback, without asking DNS.
                vec![
                    SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                    SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
                ]
            } else {
                match tokio::net::lookup_host((host.as_str(), 0)).await {
                    Ok(addrs) => addrs.collect(),
                    Err(e) => {
                        let err = OriginError::new(
                            ErrorKind::Network,
                            format!("cannot resolve {host}: {e}"),
                        );
                        return Err(Box::new(err) as Box<dyn StdError + Send + Sync>);
                    }
                }
            };
            let allowed = filter_addrs(&host, found, allow_private)?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Keeps the addresses that may be reached; none left is an error.
fn filter_addrs(
    host: &str,
    found: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, OriginError> {
    if found.is_empty() {
        return Err(OriginError::new(
            ErrorKind::Network,
            format!("cannot resolve {host}: no addresses"),
        ));
    }
    if allow_private {
        return Ok(found);
    }
    let first = found[0].ip();
    let allowed: Vec<SocketAddr> = found.into_iter().filter(|a| is_public_ip(a.ip())).collect();
    if allowed.is_empty() {
        return Err(denied(host, first));
    }
    Ok(allowed)
}

fn denied(host: &str, ip: IpAddr) -> OriginError {
    let target = if host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok() {
        format!("address {ip}")
    } else {
        format!("address {ip} of {host}")
    };
    OriginError::new(
        ErrorKind::Denied,
        format!("{target} is not allowed (private, loopback, link-local or reserved)"),
    )
}

fn is_localhost_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = a == 0 // "this network", unspecified
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 169 && b == 254) // link-local
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2)) // IETF assignments, TEST-NET-1
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !blocked
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if s[..5] == [0; 5] && s[5] == 0xffff {
        // ::ffff:a.b.c.d, IPv4-mapped
        return is_public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        // 64:ff9b::/96, NAT64
        return is_public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    if s[0] == 0x2002 {
        // 2002::/16, 6to4
        return is_public_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    let blocked = s[..6] == [0; 6] // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0; 3]); // discard-only 100::/64
    !blocked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_and_private_addresses() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public_ip(ip(public)), "{public}");
        }
        for private in [
            "0.0.0.0",
            "10.1.2.3",
            "127.0.0.1",
            "127.255.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:101::1",
        ] {
            assert!(!is_public_ip(ip(private)), "{private}");
        }
    }

    #[test]
    fn urls_with_ip_literals_are_checked() {
        assert!(check_url("https://8.8.8.8/x", false).is_ok());
        assert!(check_url("https://example.com/x", false).is_ok());
        for bad in [
            "http://127.0.0.1:9000/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://169.254.169.254/latest",
            "http://localhost:8080/",
            "http://bucket.localhost./",
        ] {
            let err = check_url(bad, false).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Denied, "{bad}: {err}");
        }
        let err = check_url("http://[::ffff:10.0.0.1]:80/", false).unwrap_err();
        assert_eq!(
            err.message,
            "address ::ffff:10.0.0.1 is not allowed (private, loopback, link-local or reserved)"
        );
        assert!(check_url("http://127.0.0.1:9000/", true).is_ok());
        for invalid in ["ftp://example.com/", "file:///etc/passwd", "gopher://x/", "not a url"] {
            assert_eq!(check_url(invalid, true).unwrap_err().kind, ErrorKind::Invalid, "{invalid}");
        }
    }

    #[test]
    fn resolved_addresses_are_filtered() {
        let addrs =
            vec![SocketAddr::from(([10, 0, 0, 1], 0)), SocketAddr::from(([93, 184, 216, 34], 0))];
        assert_eq!(filter_addrs("h", addrs.clone(), false).unwrap(), vec![addrs[1]]);
        assert_eq!(filter_addrs("h", addrs.clone(), true).unwrap(), addrs);
        let err = filter_addrs("intranet", vec![addrs[0]], false).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Denied);
        assert_eq!(err.message, "address 10.0.0.1 of intranet is not allowed (private, loopback, link-local or reserved)");
        assert_eq!(filter_addrs("h", vec![], true).unwrap_err().kind, ErrorKind::Network);
    }

    #[tokio::test]
    async fn the_client_refuses_loopback_names_at_connect_time() {
        // Nothing listens on this port: the request must fail before any connection.
        let opts =
            OriginOptions { allow_private: false, timeout: std::time::Duration::from_secs(5) };
        for url in ["http://localhost:9/", "http://bucket.localhost:9/"] {
            let err = client(&opts).get(url).send().await.unwrap_err();
            let err = request_error(&err);
            assert_eq!(err.kind, ErrorKind::Denied, "{url}: {err}");
        }
        // Allowed: the connection is attempted and refused by the (closed) port instead.
        let opts = OriginOptions { allow_private: true, ..opts };
        let err =
            request_error(&client(&opts).get("http://localhost:9/").send().await.unwrap_err());
        assert_eq!(err.kind, ErrorKind::Network, "{err}");
    }
}
