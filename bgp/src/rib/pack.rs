//! UPDATE packing: prefixes that share one attribute set go into as few UPDATE messages as
//! fit the size limit; withdrawals likewise. Pure.
//!
//! Sizes come from the codec ([`wire::announce_overhead`], [`wire::withdraw_overhead`]:
//! exact for classic IPv4, at most one octet pessimistic for MP). Should the codec refuse
//! an attribute set, a conservative estimate from the RFC 4271 §4.3 / RFC 4760 layout is
//! used instead ([`attrs_len`]: every attribute with the 4-byte extended header, AS4_PATH
//! charged on 2-octet-AS sessions), and the codec's error surfaces when the speaker encodes.

use ipnetwork::IpNetwork;

use crate::msg::{Afi, AsSegment, PathAttributes, Update};
use crate::wire;

use super::attrs::SharedAttrs;

/// BGP header (19) + withdrawn length (2) + total path attribute length (2).
const FIXED: usize = 23;
/// Extended attribute header: flags, type, 2-byte length.
const ATTR_HDR: usize = 4;
/// MP_REACH fixed part: AFI (2) + SAFI (1) + next-hop length (1) + reserved (1).
const MP_REACH_FIXED: usize = ATTR_HDR + 5;
/// MP_UNREACH fixed part: AFI (2) + SAFI (1).
const MP_UNREACH_FIXED: usize = ATTR_HDR + 3;

/// Session facts that change encoded sizes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PackCtx {
    pub max_len: usize,
    pub four_octet_as: bool,
}

impl PackCtx {
    fn wire(self) -> wire::Ctx {
        wire::Ctx {
            four_octet_as: self.four_octet_as,
            extended_message: false,
            ipv4_in_mp: false,
        }
    }
}

fn afi(v6: bool) -> Afi {
    if v6 {
        Afi::Ipv6Unicast
    } else {
        Afi::Ipv4Unicast
    }
}

/// Encoded length of one NLRI prefix: length octet + significant address octets.
pub(crate) fn prefix_len(p: &IpNetwork) -> usize {
    1 + usize::from(p.prefix()).div_ceil(8)
}

fn as_path_bytes(path: &[AsSegment], as_size: usize) -> usize {
    path.iter()
        .map(|s| {
            let n = match s {
                AsSegment::Sequence(v)
                | AsSegment::Set(v)
                | AsSegment::ConfedSequence(v)
                | AsSegment::ConfedSet(v) => v.len(),
            };
            // Segments carry at most 255 ASes; longer ones are split.
            2 * n.div_ceil(255).max(1) + n * as_size
        })
        .sum()
}

/// Conservative encoded length of the path attributes of an UPDATE, excluding
/// MP_REACH/MP_UNREACH (accounted per family by the packer).
pub(crate) fn attrs_len(a: &PathAttributes, ctx: PackCtx) -> usize {
    let mut n = 0;
    if a.origin.is_some() {
        n += ATTR_HDR + 1;
    }
    n += ATTR_HDR + as_path_bytes(&a.as_path, 4);
    if !ctx.four_octet_as {
        // AS4_PATH next to a 2-octet AS_PATH (RFC 6793 §4.2.2) — charge both.
        n += ATTR_HDR + as_path_bytes(&a.as_path, 4);
    }
    if a.next_hop.is_some() {
        n += ATTR_HDR + 4;
    }
    if a.med.is_some() {
        n += ATTR_HDR + 4;
    }
    if a.local_pref.is_some() {
        n += ATTR_HDR + 4;
    }
    if a.atomic_aggregate {
        n += ATTR_HDR;
    }
    if a.aggregator.is_some() {
        n += ATTR_HDR + 8;
        if !ctx.four_octet_as {
            n += ATTR_HDR + 8;
        }
    }
    if !a.communities.is_empty() {
        n += ATTR_HDR + 4 * a.communities.len();
    }
    if !a.large_communities.is_empty() {
        n += ATTR_HDR + 12 * a.large_communities.len();
    }
    if a.originator_id.is_some() {
        n += ATTR_HDR + 4;
    }
    if !a.cluster_list.is_empty() {
        n += ATTR_HDR + 4 * a.cluster_list.len();
    }
    n += a
        .unknown
        .iter()
        .map(|u| ATTR_HDR + u.value.len())
        .sum::<usize>();
    n
}

/// Bytes of an UPDATE announcing nothing yet with attributes `a` for family `v6`.
fn announce_overhead(a: &PathAttributes, v6: bool, ctx: PackCtx) -> usize {
    wire::announce_overhead(a, afi(v6), &ctx.wire()).unwrap_or_else(|_| estimate(a, v6, ctx))
}

/// The conservative fallback of [`announce_overhead`].
fn estimate(a: &PathAttributes, v6: bool, ctx: PackCtx) -> usize {
    let mut n = FIXED + attrs_len(a, ctx);
    if v6 {
        let nh = match a.mp_next_hop {
            Some((_, Some(_))) => 32,
            _ => 16,
        };
        n += MP_REACH_FIXED + nh;
    }
    n
}

/// Splits `prefixes` into chunks whose encoded size, with `overhead` bytes of fixed part,
/// stays within `max`. A single prefix always forms a chunk, even if it alone is too big
/// (cannot happen for sane attribute sets; the codec then rejects it).
fn chunks(prefixes: Vec<IpNetwork>, overhead: usize, max: usize) -> Vec<Vec<IpNetwork>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut size = overhead;
    for p in prefixes {
        let l = prefix_len(&p);
        if !cur.is_empty() && size + l > max {
            out.push(std::mem::take(&mut cur));
            size = overhead;
        }
        size += l;
        cur.push(p);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Packs withdrawals of one family.
pub(crate) fn pack_withdrawals(prefixes: Vec<IpNetwork>, v6: bool, ctx: PackCtx) -> Vec<Update> {
    let overhead = wire::withdraw_overhead(afi(v6), &ctx.wire())
        .max(FIXED + if v6 { MP_UNREACH_FIXED } else { 0 });
    chunks(prefixes, overhead, ctx.max_len)
        .into_iter()
        .map(|withdrawn| Update {
            withdrawn,
            ..Update::default()
        })
        .collect()
}

/// Packs announcements of one family sharing one attribute set.
pub(crate) fn pack_announcements(
    attrs: &SharedAttrs,
    prefixes: Vec<IpNetwork>,
    v6: bool,
    ctx: PackCtx,
) -> Vec<Update> {
    let overhead = announce_overhead(attrs, v6, ctx);
    chunks(prefixes, overhead, ctx.max_len)
        .into_iter()
        .map(|announced| Update {
            withdrawn: Vec::new(),
            attrs: Some((**attrs).clone()),
            announced,
            eor_family: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> PackCtx {
        PackCtx {
            max_len: 4096,
            four_octet_as: true,
        }
    }

    fn p26(i: u32) -> IpNetwork {
        let a = std::net::Ipv4Addr::from(0x0a00_0000 + (i << 6));
        IpNetwork::new(a.into(), 26).expect("prefix")
    }

    #[test]
    fn prefix_lengths() {
        assert_eq!(prefix_len(&p26(0)), 5);
        assert_eq!(prefix_len(&"0.0.0.0/0".parse().expect("p")), 1);
        assert_eq!(prefix_len(&"fd00::/122".parse().expect("p")), 17);
    }

    #[test]
    fn fallback_estimate_is_never_below_the_codec() {
        let a = PathAttributes {
            origin: Some(crate::msg::Origin::Igp),
            as_path: vec![
                AsSegment::Sequence((1..200).collect()),
                AsSegment::Set((1..50).collect()),
            ],
            next_hop: Some(std::net::Ipv4Addr::new(10, 0, 0, 1)),
            mp_next_hop: None,
            med: Some(1),
            local_pref: Some(100),
            communities: (0..70).collect(),
            ..Default::default()
        };
        for four in [true, false] {
            let c = PackCtx {
                max_len: 4096,
                four_octet_as: four,
            };
            let exact = wire::announce_overhead(&a, Afi::Ipv4Unicast, &c.wire()).expect("enc");
            assert!(estimate(&a, false, c) >= exact, "four_octet_as={four}");
        }
    }

    #[test]
    fn withdrawals_fill_messages() {
        let ps: Vec<_> = (0..2000).map(p26).collect();
        let ups = pack_withdrawals(ps, false, ctx());
        // (4096 - 23) / 5 = 814 per message.
        assert_eq!(ups.len(), 3);
        assert_eq!(ups[0].withdrawn.len(), 814);
        assert_eq!(ups.iter().map(|u| u.withdrawn.len()).sum::<usize>(), 2000);
    }
}
