//! Where webhooks may go: public addresses only, unless the operator allows private ones
//! (`VOUCH_WEBHOOK_ALLOW_PRIVATE=true`). Checked when a subscription is saved and again at every
//! delivery, after DNS resolution (a resolver that drops non-public addresses), so a name that
//! later resolves to an internal address (DNS rebinding) is still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

/// Whether `ip` is a public unicast address: not loopback, private (RFC 1918), shared (CGNAT
/// 100.64/10), link-local (incl. 169.254.169.254), unique-local (fc00::/7), unspecified,
/// multicast, broadcast, documentation, benchmarking or reserved — also when an IPv4 address
/// hides inside IPv6 (mapped, compatible, NAT64, 6to4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = a == 0                               // "this network"
        || a == 10                                     // private
        || a == 127                                    // loopback
        || (a == 100 && (64..=127).contains(&b))       // shared address space (CGNAT)
        || (a == 169 && b == 254)                      // link-local, cloud metadata
        || (a == 172 && (16..=31).contains(&b))        // private
        || (a == 192 && b == 0 && c == 0)              // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)              // documentation
        || (a == 192 && b == 88 && c == 99)            // 6to4 relay anycast
        || (a == 192 && b == 168)                      // private
        || (a == 198 && (b == 18 || b == 19))          // benchmarking
        || (a == 198 && b == 51 && c == 100)           // documentation
        || (a == 203 && b == 0 && c == 113)            // documentation
        || a >= 224; // multicast, reserved, broadcast
    !blocked
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let bits = u128::from(ip);
    let within = |prefix: u128, len: u32| bits >> (128 - len) == prefix >> (128 - len);
    let blocked = ip.is_unspecified()
        || ip.is_loopback()
        || within(0xff00 << 112, 8)                    // multicast
        || within(0xfc00 << 112, 7)                    // unique local
        || within(0xfe80 << 112, 10)                   // link-local
        || within(0xfec0 << 112, 10)                   // site-local (deprecated)
        || within(0x0100 << 112, 64)                   // discard-only
        || within(0x2001_0db8 << 96, 32)               // documentation
        || within(0x2001 << 112, 23)                   // IETF protocol assignments (incl. Teredo)
        || within(0x3fff << 112, 20)                   // documentation
        || within(0, 96); // IPv4-compatible (deprecated) and the rest of ::/96
    !blocked
}

/// The IPv4 address inside an IPv4-mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96) or 6to4
/// (2002::/16) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Checks a webhook URL as written: `https` (or `http` when private addresses are allowed), a
/// host, no credentials, and no private address or local name in it.
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("not a valid URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => {
            return Err("webhook URLs must use https (http is allowed only together with VOUCH_WEBHOOK_ALLOW_PRIVATE)".into())
        }
        other => return Err(format!("`{other}` URLs cannot receive webhooks; use https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("webhook URLs cannot carry credentials; verify the `webhook-signature` header instead (it proves the request came from Vouch)".into());
    }
    if url.fragment().is_some() {
        return Err("webhook URLs cannot have a fragment".into());
    }
    if allow_private {
        return url
            .host()
            .is_some()
            .then_some(url.clone())
            .ok_or_else(|| "the URL has no host".into());
    }
    match url.host() {
        None => return Err("the URL has no host".into()),
        Some(Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => return Err(private(ip)),
        Some(Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => return Err(private(ip)),
        Some(Host::Domain(name)) if is_local_name(name) => {
            return Err(format!("`{name}` is a local name; webhooks go to public addresses only (set VOUCH_WEBHOOK_ALLOW_PRIVATE=true to allow private ones)"))
        }
        Some(_) => {}
    }
    Ok(url)
}

fn private(ip: impl std::fmt::Display) -> String {
    format!("{ip} is a loopback, private or reserved address; webhooks go to public addresses only (set VOUCH_WEBHOOK_ALLOW_PRIVATE=true to allow private ones)")
}

fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.ends_with(".local")
        || name.ends_with(".internal")
        || !name.contains('.')
}

/// Resolves the URL's host (at most `timeout`) and refuses it when any address is not public.
/// A name that does not resolve now is accepted: the sender checks again at every attempt.
pub async fn check_resolved(
    url: &Url,
    allow_private: bool,
    timeout: Duration,
) -> Result<(), String> {
    let (false, Some(Host::Domain(name))) = (allow_private, url.host()) else {
        return Ok(());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::time::timeout(timeout, tokio::net::lookup_host((name, port))).await;
    match lookup {
        Ok(Ok(addrs)) => refuse_private(name, addrs.map(|addr| addr.ip())),
        _ => Ok(()),
    }
}

/// Refuses `name` when any of the addresses it resolved to is not public. Which address it
/// was is not said: the answer must not map the internal network.
fn refuse_private(name: &str, mut addrs: impl Iterator<Item = IpAddr>) -> Result<(), String> {
    if addrs.any(|ip| !is_public(ip)) {
        return Err(format!("`{name}` resolves to {}", private_tail()));
    }
    Ok(())
}

fn private_tail() -> &'static str {
    "a loopback, private or reserved address; webhooks go to public addresses only (set VOUCH_WEBHOOK_ALLOW_PRIVATE=true to allow private ones)"
}

/// A URL as events and logs show it: scheme, host and port only. The path and query may hold
/// a receiver's token; they stay in the subscription (its owner reads them through the API).
pub fn redacted(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) => match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}/", url.scheme()),
            (Some(host), None) => format!("{}://{host}/", url.scheme()),
            _ => "(no host)".into(),
        },
        Err(_) => "(not a URL)".into(),
    }
}

/// A DNS resolver for the webhook client that keeps only public addresses (all of them when
/// private ones are allowed), so a connection can only be made to an address that passed.
#[derive(Clone, Copy, Debug)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| allow_private || is_public(addr.ip()))
                .collect();
            if addrs.is_empty() {
                let message = format!("refused: `{host}` resolves to no public address");
                return Err(message.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2001:db8::1",
            "::127.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_public(ip), "{ip} must be refused");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_public(ip), "{ip} is public");
        }
    }

    #[test]
    fn urls_are_checked() {
        for bad in [
            "https://127.0.0.1/hook",
            "https://10.0.0.5/",
            "https://[::1]:8443/",
            "https://[::ffff:7f00:1]/",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/",
            "https://api.localhost/",
            "https://intranet/",
            "http://example.com/",
            "ftp://example.com/",
            "https://u:p@example.com/",
            "not a url",
            "https://0x7f000001/",
            "https://2130706433/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad} must be refused");
        }
        assert!(check_url("https://hooks.example.com/vouch", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/", true).is_ok());
        assert!(check_url("ftp://127.0.0.1/", true).is_err());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redacted("https://hooks.example.com/in/t0ken?key=secret"),
            "https://hooks.example.com/"
        );
        assert_eq!(
            redacted("http://127.0.0.1:9000/hook?x=1"),
            "http://127.0.0.1:9000/"
        );
        assert_eq!(
            redacted("https://[2001:db8::1]/x"),
            "https://[2001:db8::1]/"
        );
        assert_eq!(redacted("nonsense"), "(not a URL)");
    }

    #[test]
    fn a_private_resolution_is_not_echoed() {
        let private: [IpAddr; 3] = [
            "8.8.8.8".parse().unwrap(),
            "10.1.2.3".parse().unwrap(),
            "::1".parse().unwrap(),
        ];
        let message = refuse_private("hooks.example.com", private.into_iter()).unwrap_err();
        assert!(
            message.starts_with("`hooks.example.com` resolves to a loopback"),
            "{message}"
        );
        for ip in ["8.8.8.8", "10.1.2.3", "::1"] {
            assert!(!message.contains(ip), "{message}");
        }
        let public: [IpAddr; 1] = ["8.8.8.8".parse().unwrap()];
        assert!(refuse_private("hooks.example.com", public.into_iter()).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_private_addresses() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        let name = reqwest::dns::Name::from_str("localhost").unwrap();
        let refused = GuardedResolver {
            allow_private: false,
        }
        .resolve(name)
        .await;
        assert!(refused.is_err());
        let name = reqwest::dns::Name::from_str("localhost").unwrap();
        let allowed = GuardedResolver {
            allow_private: true,
        }
        .resolve(name)
        .await;
        assert!(allowed.is_ok_and(|mut a| a.next().is_some()));
    }
}
