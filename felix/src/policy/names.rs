//! Naming: stable short ids from hashes, chain names within iptables' 28-character
//! limit, ipset names within ipset's 31-character limit.
//!
//! Pure functions; the same input always yields the same name, so a restarted felix
//! finds its own chains and sets again.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::model::Family;

/// Longest chain name iptables accepts.
pub const MAX_CHAIN: usize = 28;
/// Longest ipset name the kernel accepts.
pub const MAX_IPSET: usize = 31;

/// First `len` characters of the URL-safe base64 of SHA-256 over `parts`
/// (each part followed by a 0 byte so that `["ab","c"]` and `["a","bc"]` differ).
pub fn hash_id(parts: &[&str], len: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let mut s = URL_SAFE_NO_PAD.encode(h.finalize());
    s.truncate(len);
    s
}

/// `prefix` + `tail`, with the tail replaced by a hash when the result would exceed
/// [`MAX_CHAIN`].
pub fn chain_name(prefix: &str, tail: &str) -> String {
    let full = format!("{prefix}{tail}");
    if full.len() <= MAX_CHAIN {
        return full;
    }
    let room = MAX_CHAIN.saturating_sub(prefix.len()).max(1);
    format!("{prefix}{}", hash_id(&[tail], room))
}

/// Id of a NetworkPolicy, used in `cali-pi-<id>` / `cali-po-<id>`.
pub fn policy_id(namespace: &str, name: &str) -> String {
    hash_id(&["knp", namespace, name], 20)
}

/// Ingress chain of a policy.
pub fn policy_in_chain(namespace: &str, name: &str) -> String {
    chain_name("cali-pi-", &policy_id(namespace, name))
}

/// Egress chain of a policy.
pub fn policy_out_chain(namespace: &str, name: &str) -> String {
    chain_name("cali-po-", &policy_id(namespace, name))
}

/// Chain for traffic to the pod behind `iface` (its ingress).
pub fn to_wl_chain(iface: &str) -> String {
    chain_name("cali-tw-", iface)
}

/// Chain for traffic from the pod behind `iface` (its egress).
pub fn from_wl_chain(iface: &str) -> String {
    chain_name("cali-fw-", iface)
}

/// IPv4 ipset for a canonical key; `kind` is one letter saying what the set holds
/// (`s` selector members, `e` except nets, `n` named ports).
pub fn ipset_v4(kind: char, key: &str) -> String {
    ipset(Family::V4, kind, key)
}

/// ipset of `family` for a canonical key: `cali40…` (inet) or `cali60…` (inet6), the
/// same hash for the same key in both families.
pub fn ipset(family: Family, kind: char, key: &str) -> String {
    format!("cali{}0{kind}{}", family.digit(), hash_id(&[key], 20))
}

/// Prefix of every ipset felix owns in `family` (`cali4`: real `cali40…` and temporary
/// `cali4t…`; `cali6` likewise).
pub fn ipset_prefix(family: Family) -> &'static str {
    match family {
        Family::V4 => "cali4",
        Family::V6 => "cali6",
    }
}

/// The family an ipset of ours belongs to, from its name.
pub fn ipset_family(name: &str) -> Option<Family> {
    Family::ALL
        .into_iter()
        .find(|f| name.starts_with(ipset_prefix(*f)))
}

/// Temporary twin of one of our ipsets, used to fill a new copy before `swap`.
pub fn ipset_temp(name: &str) -> String {
    let d = ipset_family(name).unwrap_or(Family::V4).digit();
    match name.strip_prefix(&format!("cali{d}0")) {
        Some(rest) => format!("cali{d}t{rest}"),
        None => format!("cali{d}t{}", hash_id(&[name], 20)),
    }
}

/// Rule hash: the previous hash (or the chain name for the first rule) chained with this
/// rule's text, 16 characters, as carried in the `cali:<hash>` comment.
pub fn rule_hash(prev: &str, rule: &str) -> String {
    hash_id(&[prev, rule], 16)
}

/// The hash chain's starting value for `chain`.
pub fn chain_seed(chain: &str) -> String {
    hash_id(&["chain", chain], 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_fit_and_are_stable() {
        assert_eq!(to_wl_chain("cali1234567890a"), "cali-tw-cali1234567890a");
        let long = chain_name("cali-from-wl-dispatch-", "abcdefghij");
        assert_eq!(long.len(), MAX_CHAIN);
        assert!(long.starts_with("cali-from-wl-dispatch-"));
        assert_eq!(long, chain_name("cali-from-wl-dispatch-", "abcdefghij"));
        assert_ne!(long, chain_name("cali-from-wl-dispatch-", "abcdefghik"));
        let p = policy_in_chain("default", "a-very-long-policy-name-that-goes-on-and-on");
        assert_eq!(p.len(), MAX_CHAIN);
        assert_ne!(
            p,
            policy_out_chain("default", "a-very-long-policy-name-that-goes-on-and-on")
        );
    }

    #[test]
    fn ipset_names_fit() {
        let n = ipset_v4('s', "anything at all");
        assert!(n.len() <= MAX_IPSET, "{n}");
        assert!(n.starts_with("cali40s"));
        let t = ipset_temp(&n);
        assert!(t.len() <= MAX_IPSET && t.starts_with("cali4ts"));
        assert_ne!(ipset_temp("cali40masq-ipam-pools"), "cali40masq-ipam-pools");
    }

    #[test]
    fn v6_ipsets_mirror_v4_names() {
        let v4 = ipset(Family::V4, 's', "k");
        let v6 = ipset(Family::V6, 's', "k");
        assert_eq!(v4, ipset_v4('s', "k"));
        assert_eq!(&v4[6..], &v6[6..]);
        assert!(v6.starts_with("cali60s") && v6.len() <= MAX_IPSET);
        assert!(ipset_temp(&v6).starts_with("cali6ts"));
        assert_eq!(ipset_family(&v6), Some(Family::V6));
        assert_eq!(ipset_family(&ipset_temp(&v4)), Some(Family::V4));
        assert_eq!(ipset_family("kube-x"), None);
    }

    #[test]
    fn rule_hashes_depend_on_position() {
        let a = rule_hash(&chain_seed("c"), "-j ACCEPT");
        let b = rule_hash(&a, "-j ACCEPT");
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert_ne!(a, rule_hash(&chain_seed("d"), "-j ACCEPT"));
    }
}
