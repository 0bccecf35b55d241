//! UPDATE (RFC 4271 §4.3, RFC 4760): message framing, the unified value view (every
//! prefix in `withdrawn`/`announced` whatever field carried it), RFC 7606 outcomes,
//! End-of-RIB (RFC 4724 §2), and size helpers for packing. Pure.
//!
//! Encoding layout: MP_REACH_NLRI / MP_UNREACH_NLRI first (RFC 7606 §5.1), then the
//! other attributes in type-code order, unknown optional transitive ones interleaved by
//! type code with the Partial bit set. IPv4 prefixes use the classic fields unless
//! [`Ctx::ipv4_in_mp`] is set; IPv6 prefixes always use MP. Decoding lists classic
//! prefixes first, then MP ones.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::attrs::{self, code, flag, put_attr};
use super::error::AttrIssue;
use super::header::HEADER_LEN;
use super::open::AS_TRANS;
use super::reader::Reader;
use super::{Ctx, DecodeError, EncodeError, aspath, nlri};
use crate::msg::{Afi, PathAttributes, Update};

/// Decodes an UPDATE body (everything after the header).
pub(crate) fn decode(body: &[u8], ctx: &Ctx) -> Result<(Update, Vec<AttrIssue>), DecodeError> {
    let mut r = Reader::new(body);
    let list_err = |field| DecodeError::MalformedAttributeList { field };
    let wd_len = r.u16().ok_or(list_err("withdrawn routes length"))?;
    let wd = r
        .sub(usize::from(wd_len))
        .ok_or(list_err("withdrawn routes length"))?;
    let attr_len = r.u16().ok_or(list_err("total path attribute length"))?;
    let section = r
        .take(usize::from(attr_len))
        .ok_or(list_err("total path attribute length"))?;
    let mut withdrawn = Vec::new();
    nlri::decode_prefixes(wd, Afi::Ipv4Unicast, &mut withdrawn).map_err(|_| {
        DecodeError::InvalidNetworkField {
            field: "withdrawn routes",
        }
    })?;
    let mut parsed = attrs::decode(section, ctx.four_octet_as)?;
    let mut announced = Vec::new();
    nlri::decode_prefixes(r, Afi::Ipv4Unicast, &mut announced)
        .map_err(|_| DecodeError::InvalidNetworkField { field: "NLRI" })?;

    // RFC 7606 §3.d: mandatory well-known attributes when anything is announced.
    let mp_announced = parsed
        .mp_reach
        .as_ref()
        .is_some_and(|m| !m.prefixes.is_empty());
    if !announced.is_empty() || mp_announced {
        let mut need = vec![code::ORIGIN, code::AS_PATH];
        if !announced.is_empty() {
            need.push(code::NEXT_HOP);
        }
        for ty in need {
            if !parsed.seen(ty) {
                parsed.issues.push(AttrIssue {
                    type_code: ty,
                    action: super::AttrAction::TreatAsWithdraw,
                    fault: super::AttrFault::Missing,
                    attr: Vec::new(),
                });
            }
        }
    }

    let classic_empty = withdrawn.is_empty() && announced.is_empty();
    if let Some(mp) = parsed.mp_reach.take() {
        announced.extend(mp.prefixes);
    }
    let mut eor_family = None;
    if let Some(mp) = parsed.mp_unreach.take() {
        if mp.prefixes.is_empty() && classic_empty && !parsed.any_attr {
            eor_family = mp.afi;
        }
        withdrawn.extend(mp.prefixes);
    }
    let taw = parsed.treat_as_withdraw();
    if taw {
        // RFC 7606 §2: every announced prefix is treated as withdrawn. The attributes
        // stay (as parsed) so the message never looks like an End-of-RIB.
        withdrawn.append(&mut announced);
    }
    let attrs = (parsed.any_attr || taw).then_some(parsed.attrs);
    Ok((
        Update {
            withdrawn,
            attrs,
            announced,
            eor_family,
        },
        parsed.issues,
    ))
}

/// Prefixes of one family bound for MP_REACH_NLRI or MP_UNREACH_NLRI.
type MpList<'a> = Option<(Afi, Vec<&'a IpNetwork>)>;

struct Split<'a> {
    classic_wd: Vec<&'a IpNetwork>,
    classic_nlri: Vec<&'a IpNetwork>,
    mp_wd: MpList<'a>,
    mp_reach: MpList<'a>,
}

fn mp_group<'a>(
    list: &'a [IpNetwork],
    in_mp: impl Fn(Afi) -> bool,
    what: &'static str,
) -> Result<(Vec<&'a IpNetwork>, MpList<'a>), EncodeError> {
    let mut classic = Vec::new();
    let mut mp: MpList<'a> = None;
    for p in list {
        let f = nlri::family(p);
        if !in_mp(f) {
            classic.push(p);
            continue;
        }
        match &mut mp {
            None => mp = Some((f, vec![p])),
            Some((g, v)) if *g == f => v.push(p),
            Some(_) => return Err(EncodeError::MixedMpFamilies { what }),
        }
    }
    Ok((classic, mp))
}

fn split<'a>(u: &'a Update, ctx: &Ctx) -> Result<Split<'a>, EncodeError> {
    let in_mp = |f: Afi| f != Afi::Ipv4Unicast || ctx.ipv4_in_mp;
    let (classic_wd, mp_wd) = mp_group(&u.withdrawn, in_mp, "MP_UNREACH_NLRI")?;
    let (classic_nlri, mp_reach) = mp_group(&u.announced, in_mp, "MP_REACH_NLRI")?;
    let mp_wd = mp_wd.or(u.eor_family.map(|f| (f, Vec::new())));
    Ok(Split {
        classic_wd,
        classic_nlri,
        mp_wd,
        mp_reach,
    })
}

/// Encodes an UPDATE body.
pub(crate) fn encode(u: &Update, ctx: &Ctx, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let s = split(u, ctx)?;
    if !u.announced.is_empty() {
        let a = u.attrs.as_ref().ok_or(EncodeError::Missing {
            what: "path attributes",
        })?;
        if a.origin.is_none() {
            return Err(EncodeError::Missing { what: "ORIGIN" });
        }
        if !s.classic_nlri.is_empty() && a.next_hop.is_none() {
            return Err(EncodeError::Missing { what: "NEXT_HOP" });
        }
        if s.mp_reach.is_some() && a.mp_next_hop.is_none() {
            return Err(EncodeError::Missing {
                what: "MP_REACH_NLRI next hop",
            });
        }
    }
    let wd_at = out.len();
    out.extend_from_slice(&[0, 0]);
    for p in &s.classic_wd {
        nlri::encode_prefix(p, out);
    }
    patch_len(out, wd_at, "withdrawn routes")?;
    let attr_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let mut scratch = Vec::new();
    if let (Some((afi, list)), Some(a)) = (&s.mp_reach, &u.attrs)
        && let Some(nh) = a.mp_next_hop
    {
        scratch.clear();
        let (afi_n, safi) = afi.wire();
        scratch.extend_from_slice(&afi_n.to_be_bytes());
        scratch.push(safi);
        put_next_hop(nh, &mut scratch)?;
        scratch.push(0);
        for p in list {
            nlri::encode_prefix(p, &mut scratch);
        }
        put_attr(out, flag::OPTIONAL, code::MP_REACH_NLRI, &scratch)?;
    }
    if let Some((afi, list)) = &s.mp_wd {
        scratch.clear();
        let (afi_n, safi) = afi.wire();
        scratch.extend_from_slice(&afi_n.to_be_bytes());
        scratch.push(safi);
        for p in list {
            nlri::encode_prefix(p, &mut scratch);
        }
        put_attr(out, flag::OPTIONAL, code::MP_UNREACH_NLRI, &scratch)?;
    }
    if let Some(a) = &u.attrs {
        encode_attrs(a, ctx, out, &mut scratch)?;
    }
    patch_len(out, attr_at, "total path attributes")?;
    for p in &s.classic_nlri {
        nlri::encode_prefix(p, out);
    }
    Ok(())
}

fn patch_len(out: &mut [u8], at: usize, field: &'static str) -> Result<(), EncodeError> {
    let len = out.len().saturating_sub(at + 2);
    let l = u16::try_from(len).map_err(|_| EncodeError::FieldTooLong { field, len })?;
    if let Some(slot) = out.get_mut(at..at + 2) {
        slot.copy_from_slice(&l.to_be_bytes());
    }
    Ok(())
}

fn put_next_hop(nh: (IpAddr, Option<IpAddr>), out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match nh {
        (IpAddr::V4(a), None) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        (IpAddr::V6(g), None) => {
            out.push(16);
            out.extend_from_slice(&g.octets());
        }
        (IpAddr::V6(g), Some(IpAddr::V6(ll))) => {
            out.push(32);
            out.extend_from_slice(&g.octets());
            out.extend_from_slice(&ll.octets());
        }
        _ => return Err(EncodeError::BadMpNextHop),
    }
    Ok(())
}

/// Attribute type codes handled by [`encode_attrs`]; raw attributes with these codes
/// are never emitted (they would duplicate one).
fn is_modelled(ty: u8) -> bool {
    matches!(ty, 1..=10 | 14 | 15 | 17 | 18 | 32)
}

/// Encodes every attribute except MP_REACH/MP_UNREACH, in type-code order.
fn encode_attrs(
    a: &PathAttributes,
    ctx: &Ctx,
    out: &mut Vec<u8>,
    v: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    const WK: u8 = flag::TRANSITIVE;
    const OT: u8 = flag::OPTIONAL | flag::TRANSITIVE;
    const ON: u8 = flag::OPTIONAL;
    let mut unknown = a
        .unknown
        .iter()
        .filter(|r| !is_modelled(r.type_code))
        .peekable();
    let mut flush = |out: &mut Vec<u8>, upto: u16| -> Result<(), EncodeError> {
        while let Some(r) = unknown.next_if(|r| u16::from(r.type_code) < upto) {
            let mut f = r.flags & (OT | flag::PARTIAL);
            if f & OT == OT {
                f |= flag::PARTIAL;
            }
            put_attr(out, f, r.type_code, &r.value)?;
        }
        Ok(())
    };
    let mut put = |out: &mut Vec<u8>, flags: u8, ty: u8, value: &[u8]| {
        flush(out, u16::from(ty))?;
        put_attr(out, flags, ty, value)
    };
    if let Some(o) = a.origin {
        put(out, WK, code::ORIGIN, &[o as u8])?;
    }
    if a.origin.is_some() || !a.as_path.is_empty() {
        v.clear();
        aspath::encode(&a.as_path, ctx.four_octet_as, v)?;
        put(out, WK, code::AS_PATH, v)?;
    }
    if let Some(nh) = a.next_hop {
        put(out, WK, code::NEXT_HOP, &nh.octets())?;
    }
    if let Some(m) = a.med {
        put(out, ON, code::MED, &m.to_be_bytes())?;
    }
    if let Some(lp) = a.local_pref {
        put(out, WK, code::LOCAL_PREF, &lp.to_be_bytes())?;
    }
    if a.atomic_aggregate {
        put(out, WK, code::ATOMIC_AGGREGATE, &[])?;
    }
    let mut as4_aggregator = None;
    if let Some((asn, id)) = a.aggregator {
        v.clear();
        if ctx.four_octet_as {
            v.extend_from_slice(&asn.to_be_bytes());
        } else {
            let a2 = u16::try_from(asn).unwrap_or_else(|_| {
                as4_aggregator = Some((asn, id));
                AS_TRANS
            });
            v.extend_from_slice(&a2.to_be_bytes());
        }
        v.extend_from_slice(&id.octets());
        put(out, OT, code::AGGREGATOR, v)?;
    }
    if !a.communities.is_empty() {
        v.clear();
        for c in &a.communities {
            v.extend_from_slice(&c.to_be_bytes());
        }
        put(out, OT, code::COMMUNITIES, v)?;
    }
    if let Some(id) = a.originator_id {
        put(out, ON, code::ORIGINATOR_ID, &id.octets())?;
    }
    if !a.cluster_list.is_empty() {
        v.clear();
        for c in &a.cluster_list {
            v.extend_from_slice(&c.octets());
        }
        put(out, ON, code::CLUSTER_LIST, v)?;
    }
    if !ctx.four_octet_as {
        if let Some(p4) = aspath::as4_path(&a.as_path) {
            v.clear();
            aspath::encode(&p4, true, v)?;
            put(out, OT, code::AS4_PATH, v)?;
        }
        if let Some((asn, id)) = as4_aggregator {
            v.clear();
            v.extend_from_slice(&asn.to_be_bytes());
            v.extend_from_slice(&id.octets());
            put(out, OT, code::AS4_AGGREGATOR, v)?;
        }
    }
    if !a.large_communities.is_empty() {
        v.clear();
        for (g, l1, l2) in &a.large_communities {
            v.extend_from_slice(&g.to_be_bytes());
            v.extend_from_slice(&l1.to_be_bytes());
            v.extend_from_slice(&l2.to_be_bytes());
        }
        put(out, OT, code::LARGE_COMMUNITIES, v)?;
    }
    flush(out, 256)
}

/// Octets of the path attribute section that `attrs` encodes to, MP_REACH_NLRI and
/// MP_UNREACH_NLRI excluded (those depend on the prefixes; see [`announce_overhead`]).
pub fn attrs_len(attrs: &PathAttributes, ctx: &Ctx) -> Result<usize, EncodeError> {
    let mut out = Vec::with_capacity(128);
    let mut scratch = Vec::new();
    encode_attrs(attrs, ctx, &mut out, &mut scratch)?;
    Ok(out.len())
}

/// Octets MP_REACH_NLRI or MP_UNREACH_NLRI adds besides its prefixes, assuming the
/// extended (2-octet) attribute length: flags, type, length, AFI, SAFI, and for reach
/// the next hop length, next hop and reserved octet.
fn mp_overhead(next_hop: Option<(IpAddr, Option<IpAddr>)>) -> usize {
    let base = 4 + 3;
    match next_hop {
        None => base,
        Some((IpAddr::V4(_), _)) => base + 1 + 4 + 1,
        Some((_, None)) => base + 1 + 16 + 1,
        Some((_, Some(_))) => base + 1 + 32 + 1,
    }
}

/// Octets an UPDATE that announces prefixes of `afi` with `attrs` takes before its
/// first prefix: header, both length fields, the attributes and (when `afi` travels in
/// MP) the MP_REACH_NLRI header. Pack prefixes while
/// `announce_overhead + Σ prefix_wire_len(p) <= max_message_len(ctx)`: the result is
/// exact for classic IPv4 and at most one octet pessimistic for MP.
pub fn announce_overhead(
    attrs: &PathAttributes,
    afi: Afi,
    ctx: &Ctx,
) -> Result<usize, EncodeError> {
    let base = HEADER_LEN + 4 + attrs_len(attrs, ctx)?;
    if afi == Afi::Ipv4Unicast && !ctx.ipv4_in_mp {
        Ok(base)
    } else {
        Ok(base
            + mp_overhead(Some(attrs.mp_next_hop.ok_or(EncodeError::Missing {
                what: "MP_REACH_NLRI next hop",
            })?)))
    }
}

/// Octets a withdraw-only UPDATE for `afi` takes before its first prefix. Pack while
/// `withdraw_overhead + Σ prefix_wire_len(p) <= max_message_len(ctx)`.
pub fn withdraw_overhead(afi: Afi, ctx: &Ctx) -> usize {
    if afi == Afi::Ipv4Unicast && !ctx.ipv4_in_mp {
        HEADER_LEN + 4
    } else {
        HEADER_LEN + 4 + mp_overhead(None)
    }
}
