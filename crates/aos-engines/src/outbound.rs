//! Every outbound HTTP call to a customer-supplied URL goes through one SSRF-hardened
//! client:
//!
//! - only `https`, except for hosts the operator allowlists (tests allowlist 127.0.0.1);
//! - private, loopback, link-local, CGNAT, multicast, reserved and cloud-metadata
//!   addresses are refused, for IP literals *and* after DNS resolution (a custom
//!   resolver drops them), for IPv4, IPv6 and IPv4-mapped/NAT64 IPv6;
//! - redirects are never followed (a redirect could point anywhere);
//! - no proxy from the environment; connect and read timeouts;
//! - no credentials in URLs.
//!
//! Response-size caps are applied by the readers (MCP transport limits, capped body reads).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;

/// Installs rustls' ring provider for the process (reqwest is built without a default
/// provider). Idempotent; call before building any client.
pub fn ensure_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `[mcp.outbound]`: who AOS may call on a customer's behalf.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundPolicy {
    /// Hosts (names or IP literals) exempt from the https and private-address rules.
    /// For development and tests only (e.g. `["127.0.0.1", "localhost"]`).
    pub allow_hosts: Vec<String>,
    pub connect_timeout_ms: u64,
    /// Longest silence on an open connection (SSE streams included).
    pub read_timeout_ms: u64,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self {
            allow_hosts: Vec::new(),
            connect_timeout_ms: 5_000,
            read_timeout_ms: 30_000,
        }
    }
}

/// Why a URL or address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// True for any address a customer URL must not reach.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return forbidden_v4(v4);
            }
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0) // IPv4-compatible
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, incl. 169.254.169.254 metadata
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // 0/8
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // 192.0.0/24
        || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18/15
        || a >= 240 // reserved 240/4
}

/// The hardened client and the policy that built it.
#[derive(Clone)]
pub struct Outbound {
    policy: Arc<OutboundPolicy>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("allow_hosts", &self.policy.allow_hosts)
            .finish()
    }
}

struct FilteringResolver {
    policy: Arc<OutboundPolicy>,
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allowed = host_allowlisted(&self.policy, &host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = addrs.into_iter().filter(|a| allowed || !is_forbidden(a.ip())).collect();
            if kept.is_empty() {
                return Err(Box::new(Refused(format!(
                    "{host} resolves only to private or reserved addresses"
                ))) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

fn host_allowlisted(policy: &OutboundPolicy, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    policy.allow_hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
}

impl Outbound {
    pub fn new(policy: OutboundPolicy) -> Result<Self, Refused> {
        ensure_crypto_provider();
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_millis(policy.connect_timeout_ms))
            .read_timeout(Duration::from_millis(policy.read_timeout_ms))
            .dns_resolver(FilteringResolver {
                policy: Arc::clone(&policy),
            })
            .user_agent(concat!("aos/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Refused(format!("cannot build the outbound client: {e}")))?;
        Ok(Self { policy, client })
    }

    /// The hardened client. Use only for URLs that passed [`Outbound::check_url`].
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Resolves the host of a URL that passed [`Outbound::check_url`] and refuses it when
    /// every address it resolves to is private or reserved (what the connection would be
    /// refused for anyway): a registration is told at once instead of being stored only to
    /// fail every call. A name that does not resolve (yet) is not refused here.
    pub async fn check_resolves(&self, url: &url::Url) -> Result<(), Refused> {
        let Some(url::Host::Domain(host)) = url.host() else {
            return Ok(());
        };
        if host_allowlisted(&self.policy, host) {
            return Ok(());
        }
        let lookup = tokio::time::timeout(
            Duration::from_millis(self.policy.connect_timeout_ms),
            tokio::net::lookup_host((host, url.port_or_known_default().unwrap_or(443))),
        )
        .await;
        let Ok(Ok(addrs)) = lookup else {
            return Ok(());
        };
        let addrs: Vec<SocketAddr> = addrs.collect();
        if !addrs.is_empty() && addrs.iter().all(|a| is_forbidden(a.ip())) {
            return Err(Refused(format!(
                "{host} resolves only to private or reserved addresses"
            )));
        }
        Ok(())
    }

    /// Why a connection to `url` fails, in words, found by trying it at the TCP level
    /// under the same policy (used after a failure whose error does not say: rmcp's
    /// transport errors carry no cause). `None` when TCP connects: the problem is above it.
    pub async fn diagnose(&self, url: &url::Url) -> Option<String> {
        let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = url.port_or_known_default()?;
        let allowed = host_allowlisted(&self.policy, &host);
        let timeout = Duration::from_millis(self.policy.connect_timeout_ms);
        let addrs: Vec<SocketAddr> =
            match tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port))).await {
                Err(_) => return Some("the host name did not resolve in time".into()),
                Ok(Err(_)) => return Some("the host name does not resolve".into()),
                Ok(Ok(addrs)) => addrs.collect(),
            };
        let kept: Vec<SocketAddr> = addrs.into_iter().filter(|a| allowed || !is_forbidden(a.ip())).collect();
        let first = match kept.first() {
            Some(addr) => *addr,
            None => {
                return Some(format!(
                    "refused by the outbound policy: {host} resolves only to private or reserved addresses"
                ));
            }
        };
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(first)).await {
            Err(_) => Some("timed out connecting".into()),
            Ok(Err(e)) => Some(match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                std::io::ErrorKind::TimedOut => "timed out connecting".into(),
                std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                    "the host is unreachable".into()
                }
                _ => "cannot connect".into(),
            }),
            Ok(Ok(_)) => None,
        }
    }

    /// Checks a customer URL before any connection: scheme, credentials, literal address.
    pub fn check_url(&self, raw: &str) -> Result<url::Url, Refused> {
        let url = url::Url::parse(raw).map_err(|e| Refused(format!("not a valid URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused("URLs must not carry credentials; use credential_ref".into()));
        }
        let host = url
            .host_str()
            .ok_or_else(|| Refused("the URL has no host".into()))?
            .to_owned();
        let allowlisted = host_allowlisted(&self.policy, &host);
        match url.scheme() {
            "https" => {}
            "http" if allowlisted => {}
            "http" => {
                return Err(Refused(
                    "https is required (plain http only to operator-allowlisted hosts)".into(),
                ));
            }
            other => return Err(Refused(format!("scheme {other} is not allowed"))),
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal
            && !allowlisted
            && is_forbidden(ip)
        {
            return Err(Refused(format!("{ip} is a private or reserved address")));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(allow: &[&str]) -> Outbound {
        Outbound::new(OutboundPolicy {
            allow_hosts: allow.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn private_and_reserved_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "ff02::1",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_before_connecting() {
        let strict = outbound(&[]);
        assert!(strict.check_url("https://mcp.example.com/mcp").is_ok());
        for bad in [
            "http://mcp.example.com/mcp",
            "https://127.0.0.1/mcp",
            "https://[::1]/mcp",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:10.0.0.1]/",
            "https://user:pw@mcp.example.com/",
            "file:///etc/passwd",
            "gopher://x/",
            "not a url",
        ] {
            assert!(strict.check_url(bad).is_err(), "{bad}");
        }
        let dev = outbound(&["127.0.0.1"]);
        assert!(dev.check_url("http://127.0.0.1:8080/mcp").is_ok());
        assert!(dev.check_url("http://10.0.0.1/mcp").is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused_after_dns() {
        let strict = outbound(&[]);
        // `localhost` passes the URL check as a name, then resolves to loopback.
        let url = strict.check_url("https://localhost:9/").unwrap();
        let err = strict.client().get(url).send().await.unwrap_err();
        let chain = format!("{err:?}");
        assert!(chain.contains("private or reserved"), "{chain}");
    }
}
