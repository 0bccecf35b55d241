//! Daemon-neutral views of a RIB entry ([`Route`]) and of a BGP session ([`Neighbor`]),
//! so a test can compare BIRD, GoBGP, FRR and tortie the same way. Pure data.

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

/// One AS_PATH segment (RFC 4271 §4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsSegment {
    /// AS_SEQUENCE: ordered, nearest AS first.
    Sequence(Vec<u32>),
    /// AS_SET: unordered (from aggregation).
    Set(Vec<u32>),
}

/// Route origin (RFC 4271 §5.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Igp,
    Egp,
    Incomplete,
}

/// A route as a daemon reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpNetwork,
    /// BGP next hop (or the gateway for non-BGP routes); None for blackhole/local.
    pub next_hop: Option<IpAddr>,
    pub as_path: Vec<AsSegment>,
    pub origin: Option<Origin>,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    /// Standard communities as (ASN, value).
    pub communities: Vec<(u16, u16)>,
    /// Large communities (RFC 8092).
    pub large_communities: Vec<(u32, u32, u32)>,
    /// Where it came from: BIRD protocol name, or the peer address for GoBGP/FRR
    /// (None for locally originated routes where the daemon does not say).
    pub from: Option<String>,
    /// Selected as best by the daemon.
    pub best: bool,
    /// Kept as stale during a peer's graceful restart.
    pub stale: bool,
}

impl Route {
    /// An empty route for `prefix` (fields to be filled by parsers).
    pub fn new(prefix: IpNetwork) -> Route {
        Route {
            prefix,
            next_hop: None,
            as_path: Vec::new(),
            origin: None,
            local_pref: None,
            med: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            from: None,
            best: false,
            stale: false,
        }
    }

    /// All ASNs of the path in order, segments flattened.
    pub fn as_path_flat(&self) -> Vec<u32> {
        self.as_path
            .iter()
            .flat_map(|s| match s {
                AsSegment::Sequence(v) | AsSegment::Set(v) => v.clone(),
            })
            .collect()
    }
}

/// Routes of `routes` whose prefix is `prefix` (parsed; panics on a malformed literal,
/// which is a bug in the test).
pub fn routes_for<'a>(routes: &'a [Route], prefix: &str) -> Vec<&'a Route> {
    let p: IpNetwork = prefix
        .parse()
        .unwrap_or_else(|e| panic!("bad prefix literal {prefix:?} in test: {e}"));
    routes.iter().filter(|r| r.prefix == p).collect()
}

/// Parses an AS path as daemons print it: ASNs separated by spaces, sets in braces with
/// spaces or commas (`65001 65002 {65003,65004}`). Err carries the reason.
pub fn parse_as_path(text: &str) -> Result<Vec<AsSegment>, String> {
    let mut segs = Vec::new();
    let mut seq: Vec<u32> = Vec::new();
    let mut set: Option<Vec<u32>> = None;
    let spaced = text
        .replace('{', " { ")
        .replace('}', " } ")
        .replace(',', " ");
    for tok in spaced.split_whitespace() {
        match tok {
            "{" => {
                if set.is_some() {
                    return Err(format!("nested set in {text:?}"));
                }
                if !seq.is_empty() {
                    segs.push(AsSegment::Sequence(std::mem::take(&mut seq)));
                }
                set = Some(Vec::new());
            }
            "}" => {
                let s = set
                    .take()
                    .ok_or_else(|| format!("unbalanced '}}' in {text:?}"))?;
                segs.push(AsSegment::Set(s));
            }
            asn => {
                let n: u32 = asn
                    .parse()
                    .map_err(|e| format!("ASN {asn:?} in {text:?}: {e}"))?;
                match set.as_mut() {
                    Some(s) => s.push(n),
                    None => seq.push(n),
                }
            }
        }
    }
    if set.is_some() {
        return Err(format!("unclosed set in {text:?}"));
    }
    if !seq.is_empty() {
        segs.push(AsSegment::Sequence(seq));
    }
    Ok(segs)
}

/// BGP FSM state (RFC 4271 §8.2.2) as the daemons report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BgpState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
    /// Anything else the daemon printed (e.g. BIRD's `Down`, FRR's `Clearing`).
    Other(String),
}

impl BgpState {
    /// Case-insensitive parse of the names the three daemons use.
    pub fn parse(s: &str) -> BgpState {
        match s.trim().to_ascii_lowercase().as_str() {
            "idle" => BgpState::Idle,
            "connect" => BgpState::Connect,
            "active" => BgpState::Active,
            "opensent" | "open_sent" | "open sent" => BgpState::OpenSent,
            "openconfirm" | "open_confirm" | "open confirm" => BgpState::OpenConfirm,
            "established" => BgpState::Established,
            other => BgpState::Other(other.to_string()),
        }
    }
}

impl fmt::Display for BgpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BgpState::Idle => f.write_str("Idle"),
            BgpState::Connect => f.write_str("Connect"),
            BgpState::Active => f.write_str("Active"),
            BgpState::OpenSent => f.write_str("OpenSent"),
            BgpState::OpenConfirm => f.write_str("OpenConfirm"),
            BgpState::Established => f.write_str("Established"),
            BgpState::Other(s) => f.write_str(s),
        }
    }
}

/// A BGP session as a daemon reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// BIRD protocol name, or the peer address as text for GoBGP/FRR.
    pub name: String,
    pub address: Option<IpAddr>,
    pub remote_as: Option<u32>,
    pub state: BgpState,
    /// The daemon's last error text (e.g. BIRD's `Last error`, FRR's `lastResetDueTo`,
    /// GoBGP's last NOTIFICATION), when it shows one.
    pub last_error: Option<String>,
    /// Prefixes received and accepted from this peer, all families (BIRD: imported,
    /// GoBGP: received, FRR: acceptedPrefixCounter), when shown.
    pub prefixes_received: Option<u64>,
    /// Prefixes advertised to this peer, all families, when shown.
    pub prefixes_sent: Option<u64>,
}

impl Neighbor {
    /// True when Established.
    pub fn is_established(&self) -> bool {
        self.state == BgpState::Established
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_of_all_daemons() {
        assert_eq!(BgpState::parse("Established"), BgpState::Established);
        assert_eq!(BgpState::parse("ESTABLISHED"), BgpState::Established);
        assert_eq!(BgpState::parse("OpenSent"), BgpState::OpenSent);
        assert_eq!(BgpState::parse("open_confirm"), BgpState::OpenConfirm);
        assert_eq!(BgpState::parse("Down"), BgpState::Other("down".into()));
    }

    #[test]
    fn as_path_text_forms() {
        assert_eq!(parse_as_path(""), Ok(vec![]));
        assert_eq!(
            parse_as_path("1 2 {3,4} 5"),
            Ok(vec![
                AsSegment::Sequence(vec![1, 2]),
                AsSegment::Set(vec![3, 4]),
                AsSegment::Sequence(vec![5])
            ])
        );
        assert_eq!(parse_as_path("{3 4}"), Ok(vec![AsSegment::Set(vec![3, 4])]));
        assert!(parse_as_path("1 {2").is_err());
        assert!(parse_as_path("1 }").is_err());
        assert!(parse_as_path("{1 {2}}").is_err());
        assert!(parse_as_path("x").is_err());
        assert!(parse_as_path("4294967296").is_err());
    }

    #[test]
    fn flat_path_and_filter() {
        let mut r = Route::new("10.0.0.0/26".parse().unwrap());
        r.as_path = vec![AsSegment::Sequence(vec![1, 2]), AsSegment::Set(vec![3])];
        assert_eq!(r.as_path_flat(), vec![1, 2, 3]);
        let rs = vec![r.clone(), Route::new("10.0.1.0/26".parse().unwrap())];
        assert_eq!(routes_for(&rs, "10.0.0.0/26"), vec![&r]);
    }
}
