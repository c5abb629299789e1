//! What a quota is counted against: client IP by default, or anything a function returns.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use http::header::HeaderName;
use http::Request;
use ipnet::IpNet;

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Chooses the key a request's quota is counted against.
///
/// Implemented for closures `Fn(&Request<B>) -> Option<K>`; [`ClientIp`] is the default. A request
/// for which the extractor returns `None` is counted against one shared "unknown" key: it is limited,
/// never let through unlimited, so a client cannot escape the limit by hiding what the key is made of.
pub trait KeyExtractor<B>: Clone {
    /// The key type: small, cheap to hash and clone.
    type Key: Hash + Eq + Clone + Send + Sync + 'static;

    /// The key for `req`, or `None` for the shared "unknown" key.
    fn extract(&self, req: &Request<B>) -> Option<Self::Key>;
}

impl<F, K, B> KeyExtractor<B> for F
where
    F: Fn(&Request<B>) -> Option<K> + Clone,
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    type Key = K;

    fn extract(&self, req: &Request<B>) -> Option<K> {
        self(req)
    }
}

/// Keys requests by client IP address; the default [`KeyExtractor`].
///
/// - The client is the peer address from axum's `ConnectInfo<SocketAddr>` (serve the router with
///   `into_make_service_with_connect_info::<SocketAddr>()`). Without it, the request counts against the
///   shared "unknown" key.
/// - When the peer is inside one of the [trusted proxies](Self::trusting), the client is the
///   right-most `X-Forwarded-For` address that is not itself a trusted proxy (walking from the right,
///   across all `X-Forwarded-For` headers in order). An entry that does not parse as an IP address
///   (with or without port) stops the walk and the peer is used: a header that cannot be read is not
///   trusted. If every entry is a trusted proxy, the left-most one is the client.
/// - `X-Forwarded-For` from a peer that is not a trusted proxy is ignored, so a client cannot pick
///   its own key.
/// - IPv6 clients are keyed by their /64 prefix (one subscriber usually holds a whole /64);
///   IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) count as the IPv4 address.
///
/// Extraction does not allocate.
///
/// ```
/// use crosscut::rate_limit::ClientIp;
///
/// let behind_proxy = ClientIp::trusting(["10.0.0.0/8".parse().unwrap()]);
/// # let _ = behind_proxy;
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientIp {
    trusted: Arc<[IpNet]>,
}

impl ClientIp {
    /// Keys by peer address and ignores `X-Forwarded-For`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys by peer address, or by `X-Forwarded-For` when the peer is in one of `proxies`.
    pub fn trusting(proxies: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            trusted: proxies.into_iter().collect(),
        }
    }

    /// The trusted proxy networks.
    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.trusted
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address for a peer and its request headers, before /64 grouping: what an access
    /// log should show behind a proxy.
    pub fn client(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut client = peer;
        for value in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
            let Ok(value) = value.to_str() else {
                return peer;
            };
            for entry in value.rsplit(',') {
                let Some(ip) = parse_entry(entry.trim()) else {
                    return peer;
                };
                if !self.is_trusted(ip) {
                    return ip;
                }
                client = ip;
            }
        }
        client
    }
}

impl<B> KeyExtractor<B> for ClientIp {
    type Key = IpAddr;

    fn extract(&self, req: &Request<B>) -> Option<IpAddr> {
        let ConnectInfo(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>()?;
        Some(group(self.client(peer.ip(), req.headers())))
    }
}

/// An `X-Forwarded-For` entry: an address, or an address with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(canonical)
}

/// IPv4-mapped IPv6 as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// IPv6 reduced to its /64 prefix; IPv4 unchanged.
pub(super) fn group(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}
