//! Path attributes (RFC 4271 §4.3, §5; RFC 4760; RFC 6793; RFC 1997; RFC 8092;
//! RFC 4456) with the RFC 7606 error handling: each problem becomes treat-as-withdraw,
//! attribute discard, or (MP_REACH/MP_UNREACH, unrecognized well-known) a session
//! reset. Pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use super::error::{AttrAction, AttrFault, AttrIssue};
use super::reader::Reader;
use super::{DecodeError, EncodeError, aspath, nlri};
use crate::msg::{Afi, Origin, PathAttributes, RawAttribute};

/// Attribute flag bits (RFC 4271 §4.3).
pub mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Attribute type codes.
pub mod code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MED: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITIES: u8 = 32;
}

const WELL_KNOWN: u8 = flag::TRANSITIVE;
const OPT_TRANS: u8 = flag::OPTIONAL | flag::TRANSITIVE;
const OPT_NON_TRANS: u8 = flag::OPTIONAL;

/// Expected Optional/Transitive bits of the attributes this codec understands.
fn expected_flags(type_code: u8) -> Option<u8> {
    use code::*;
    Some(match type_code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => WELL_KNOWN,
        MED | ORIGINATOR_ID | CLUSTER_LIST | MP_REACH_NLRI | MP_UNREACH_NLRI => OPT_NON_TRANS,
        AGGREGATOR | COMMUNITIES | AS4_PATH | AS4_AGGREGATOR | LARGE_COMMUNITIES => OPT_TRANS,
        _ => return None,
    })
}

/// RFC 7606 §7: what a malformed instance of a known attribute costs.
fn action_for(type_code: u8) -> AttrAction {
    use code::*;
    match type_code {
        ATOMIC_AGGREGATE | AGGREGATOR | AS4_PATH | AS4_AGGREGATOR => AttrAction::Discard,
        _ => AttrAction::TreatAsWithdraw,
    }
}

/// Prefixes carried in MP_REACH_NLRI or MP_UNREACH_NLRI.
#[derive(Debug, Default)]
pub(crate) struct MpPrefixes {
    pub afi: Option<Afi>,
    pub prefixes: Vec<IpNetwork>,
}

/// Result of parsing the path attribute section.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub attrs: PathAttributes,
    pub mp_reach: Option<MpPrefixes>,
    pub mp_unreach: Option<MpPrefixes>,
    pub issues: Vec<AttrIssue>,
    /// Some attribute other than a (modelled-family) MP_UNREACH_NLRI was present.
    pub any_attr: bool,
    seen: [u64; 4],
}

impl Parsed {
    pub(crate) fn seen(&self, type_code: u8) -> bool {
        let (word, bit) = (usize::from(type_code >> 6), type_code & 63);
        self.seen.get(word).is_some_and(|w| w & (1u64 << bit) != 0)
    }

    fn mark_seen(&mut self, type_code: u8) {
        let (word, bit) = (usize::from(type_code >> 6), type_code & 63);
        if let Some(w) = self.seen.get_mut(word) {
            *w |= 1u64 << bit;
        }
    }

    pub(crate) fn treat_as_withdraw(&self) -> bool {
        self.issues
            .iter()
            .any(|i| i.action == AttrAction::TreatAsWithdraw)
    }

    fn issue(&mut self, type_code: u8, action: AttrAction, fault: AttrFault, attr: &[u8]) {
        self.issues.push(AttrIssue {
            type_code,
            action,
            fault,
            attr: attr.to_vec(),
        });
    }
}

/// Parses the attribute section of an UPDATE. `four_octet` selects the AS width.
pub(crate) fn decode(section: &[u8], four_octet: bool) -> Result<Parsed, DecodeError> {
    let mut p = Parsed::default();
    let mut r = Reader::new(section);
    let mut as4_path = None;
    let mut as4_aggregator = None;
    while !r.is_empty() {
        let start = r.rest();
        // RFC 7606 §4: a header or value running past the section is treat-as-withdraw,
        // and parsing stops (the NLRI is still found via Total Path Attribute Length).
        let header = (|| {
            let flags = r.u8()?;
            let ty = r.u8()?;
            let len = if flags & flag::EXTENDED_LENGTH != 0 {
                r.u16()?
            } else {
                u16::from(r.u8()?)
            };
            Some((flags, ty, len))
        })();
        let Some((flags, ty, len)) = header else {
            let ty = start.get(1).copied().unwrap_or(0);
            p.issue(
                ty,
                AttrAction::TreatAsWithdraw,
                AttrFault::Length { len: 0 },
                start,
            );
            break;
        };
        let Some(value) = r.take(usize::from(len)) else {
            p.issue(
                ty,
                AttrAction::TreatAsWithdraw,
                AttrFault::Length { len },
                start,
            );
            break;
        };
        let whole = start
            .get(..start.len().saturating_sub(r.remaining()))
            .unwrap_or(start);
        let Some(expected) = expected_flags(ty) else {
            // Unrecognised: well-known is fatal, optional transitive is carried,
            // optional non-transitive is quietly ignored (RFC 4271 §5).
            if flags & flag::OPTIONAL == 0 {
                return Err(DecodeError::UnrecognizedWellKnown {
                    type_code: ty,
                    attr: whole.to_vec(),
                });
            }
            p.any_attr = true;
            if flags & flag::TRANSITIVE != 0 && !p.seen(ty) {
                p.attrs.unknown.push(RawAttribute {
                    flags: flags & (OPT_TRANS | flag::PARTIAL),
                    type_code: ty,
                    value: value.to_vec(),
                });
            }
            p.mark_seen(ty);
            continue;
        };
        if p.seen(ty) {
            if ty == code::MP_REACH_NLRI || ty == code::MP_UNREACH_NLRI {
                return Err(DecodeError::MalformedAttributeList {
                    field: "MP_REACH_NLRI/MP_UNREACH_NLRI appears twice",
                });
            }
            // RFC 7606 §3.g: keep the first, discard the rest.
            p.issue(ty, AttrAction::Discard, AttrFault::Duplicate, whole);
            continue;
        }
        p.mark_seen(ty);
        if ty != code::MP_UNREACH_NLRI {
            p.any_attr = true;
        }
        let fault = if flags & OPT_TRANS != expected {
            Err(AttrFault::Flags { flags })
        } else {
            decode_known(
                &mut p,
                ty,
                value,
                four_octet,
                &mut as4_path,
                &mut as4_aggregator,
            )
        };
        if let Err(fault) = fault {
            let action = match fault {
                // Not a family we model (so never negotiated): drop the attribute.
                AttrFault::UnknownFamily { .. } => AttrAction::Discard,
                // RFC 7606 §7.11: a malformed MP_REACH/MP_UNREACH resets the session.
                _ if ty == code::MP_REACH_NLRI || ty == code::MP_UNREACH_NLRI => {
                    return Err(DecodeError::Attribute {
                        type_code: ty,
                        fault,
                        attr: whole.to_vec(),
                    });
                }
                _ => action_for(ty),
            };
            p.issue(ty, action, fault, whole);
        }
    }
    if p.attrs.unknown.len() > 1 {
        p.attrs.unknown.sort_by_key(|a| a.type_code);
    }
    apply_as4(&mut p, four_octet, as4_path, as4_aggregator);
    Ok(p)
}

type As4Path = Option<(Vec<crate::msg::AsSegment>, Vec<u8>)>;
type As4Aggregator = Option<((u32, Ipv4Addr), Vec<u8>)>;

fn decode_known(
    p: &mut Parsed,
    ty: u8,
    value: &[u8],
    four_octet: bool,
    as4_path: &mut As4Path,
    as4_aggregator: &mut As4Aggregator,
) -> Result<(), AttrFault> {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    let bad_len = AttrFault::Length { len };
    let u32_of = |v: &[u8]| -> Result<u32, AttrFault> {
        let a: [u8; 4] = v.try_into().map_err(|_| bad_len)?;
        Ok(u32::from_be_bytes(a))
    };
    let a = &mut p.attrs;
    match ty {
        code::ORIGIN => {
            let [v] = value else { return Err(bad_len) };
            a.origin = Some(match v {
                0 => Origin::Igp,
                1 => Origin::Egp,
                2 => Origin::Incomplete,
                other => return Err(AttrFault::InvalidOrigin(*other)),
            });
        }
        code::AS_PATH => {
            a.as_path = aspath::decode(value, four_octet).ok_or(AttrFault::MalformedAsPath)?;
        }
        code::NEXT_HOP => {
            let nh = Ipv4Addr::from(u32_of(value)?);
            if nh.is_unspecified() || nh.is_multicast() || nh.is_broadcast() {
                return Err(AttrFault::InvalidNextHop);
            }
            a.next_hop = Some(nh);
        }
        code::MED => a.med = Some(u32_of(value)?),
        code::LOCAL_PREF => a.local_pref = Some(u32_of(value)?),
        code::ATOMIC_AGGREGATE => {
            if !value.is_empty() {
                return Err(bad_len);
            }
            a.atomic_aggregate = true;
        }
        code::AGGREGATOR => a.aggregator = Some(decode_aggregator(value, four_octet)?),
        code::COMMUNITIES => a.communities = list::<4>(value)?.map(u32::from_be_bytes).collect(),
        code::ORIGINATOR_ID => a.originator_id = Some(Ipv4Addr::from(u32_of(value)?)),
        code::CLUSTER_LIST => a.cluster_list = list::<4>(value)?.map(Ipv4Addr::from).collect(),
        code::LARGE_COMMUNITIES => {
            a.large_communities = list::<12>(value)?
                .map(|c| {
                    let [a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3] = c;
                    (
                        u32::from_be_bytes([a0, a1, a2, a3]),
                        u32::from_be_bytes([b0, b1, b2, b3]),
                        u32::from_be_bytes([c0, c1, c2, c3]),
                    )
                })
                .collect();
        }
        code::AS4_PATH => {
            let segs = aspath::decode(value, true)
                .filter(|s| aspath::as4_valid(s))
                .ok_or(AttrFault::MalformedAsPath)?;
            *as4_path = Some((segs, encode_whole(ty, value)));
        }
        code::AS4_AGGREGATOR => {
            *as4_aggregator = Some((decode_aggregator(value, true)?, encode_whole(ty, value)));
        }
        code::MP_REACH_NLRI => decode_mp_reach(p, value)?,
        code::MP_UNREACH_NLRI => decode_mp_unreach(p, value)?,
        _ => {}
    }
    Ok(())
}

/// Re-creates an attribute's wire form for an issue report (flags as expected).
fn encode_whole(ty: u8, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(value.len() + 4);
    let _ = put_attr(&mut v, OPT_TRANS, ty, value);
    v
}

/// A non-empty list of N-octet items filling `value` exactly (RFC 7606 §7.8, §7.10,
/// RFC 8092 §6).
fn list<const N: usize>(value: &[u8]) -> Result<impl Iterator<Item = [u8; N]> + '_, AttrFault> {
    let (chunks, rest) = value.as_chunks::<N>();
    if chunks.is_empty() || !rest.is_empty() {
        return Err(AttrFault::Length {
            len: u16::try_from(value.len()).unwrap_or(u16::MAX),
        });
    }
    Ok(chunks.iter().copied())
}

fn decode_aggregator(value: &[u8], four_octet: bool) -> Result<(u32, Ipv4Addr), AttrFault> {
    let mut r = Reader::new(value);
    let asn = if four_octet {
        r.u32()
    } else {
        r.u16().map(u32::from)
    };
    match (asn, r.u32(), r.is_empty()) {
        (Some(asn), Some(id), true) => Ok((asn, Ipv4Addr::from(id))),
        _ => Err(AttrFault::Length {
            len: u16::try_from(value.len()).unwrap_or(u16::MAX),
        }),
    }
}

fn mp_family(r: &mut Reader<'_>) -> Result<Result<Afi, AttrFault>, AttrFault> {
    let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
        return Err(AttrFault::OptionalAttribute);
    };
    Ok(Afi::from_wire(afi, safi).ok_or(AttrFault::UnknownFamily { afi, safi }))
}

/// MP_REACH_NLRI (RFC 4760 §3): AFI, SAFI, next hop (4, 16 or 16+16 octets), a
/// reserved octet, NLRI.
fn decode_mp_reach(p: &mut Parsed, value: &[u8]) -> Result<(), AttrFault> {
    let mut r = Reader::new(value);
    let afi = mp_family(&mut r)??;
    let nh_len = r.u8().ok_or(AttrFault::OptionalAttribute)?;
    let mut nh = r
        .sub(usize::from(nh_len))
        .ok_or(AttrFault::OptionalAttribute)?;
    let next_hop = match nh_len {
        4 => (
            IpAddr::V4(Ipv4Addr::from(
                nh.array::<4>().ok_or(AttrFault::OptionalAttribute)?,
            )),
            None,
        ),
        16 | 32 => {
            let g = Ipv6Addr::from(nh.array::<16>().ok_or(AttrFault::OptionalAttribute)?);
            let ll = nh.array::<16>().map(|b| IpAddr::V6(Ipv6Addr::from(b)));
            (IpAddr::V6(g), ll)
        }
        _ => return Err(AttrFault::OptionalAttribute),
    };
    r.u8().ok_or(AttrFault::OptionalAttribute)?; // reserved
    let mut prefixes = Vec::new();
    nlri::decode_prefixes(r, afi, &mut prefixes).map_err(|_| AttrFault::OptionalAttribute)?;
    p.attrs.mp_next_hop = Some(next_hop);
    p.mp_reach = Some(MpPrefixes {
        afi: Some(afi),
        prefixes,
    });
    Ok(())
}

/// MP_UNREACH_NLRI (RFC 4760 §4): AFI, SAFI, withdrawn routes.
fn decode_mp_unreach(p: &mut Parsed, value: &[u8]) -> Result<(), AttrFault> {
    let mut r = Reader::new(value);
    let afi = match mp_family(&mut r)? {
        Ok(afi) => afi,
        Err(fault) => {
            p.any_attr = true;
            return Err(fault);
        }
    };
    let mut prefixes = Vec::new();
    nlri::decode_prefixes(r, afi, &mut prefixes).map_err(|_| AttrFault::OptionalAttribute)?;
    p.mp_unreach = Some(MpPrefixes {
        afi: Some(afi),
        prefixes,
    });
    Ok(())
}

/// RFC 6793 §4.2.3: fold AS4_PATH / AS4_AGGREGATOR from a 2-octet peer into the real
/// values; on a 4-octet session they are discarded.
fn apply_as4(p: &mut Parsed, four_octet: bool, as4_path: As4Path, as4_agg: As4Aggregator) {
    let discard = |p: &mut Parsed, ty, attr: Vec<u8>| {
        p.issues.push(AttrIssue {
            type_code: ty,
            action: AttrAction::Discard,
            fault: AttrFault::UnexpectedAs4,
            attr,
        })
    };
    if four_octet {
        if let Some((_, raw)) = as4_path {
            discard(p, code::AS4_PATH, raw);
        }
        if let Some((_, raw)) = as4_agg {
            discard(p, code::AS4_AGGREGATOR, raw);
        }
        return;
    }
    // AGGREGATOR and AS4_AGGREGATOR both present, but AGGREGATOR naming a real 2-octet
    // AS: a 2-octet speaker aggregated after the AS4 attributes were made, so both AS4
    // attributes are stale (RFC 6793 §4.2.3).
    let stale = as4_agg.is_some()
        && matches!(p.attrs.aggregator, Some((a, _)) if a != u32::from(super::open::AS_TRANS));
    if let Some((agg, raw)) = as4_agg {
        if stale || p.attrs.aggregator.is_none() {
            discard(p, code::AS4_AGGREGATOR, raw);
        } else {
            p.attrs.aggregator = Some(agg);
        }
    }
    if let Some((segs, raw)) = as4_path {
        let as_path_ok =
            p.seen(code::AS_PATH) && !p.issues.iter().any(|i| i.type_code == code::AS_PATH);
        if stale || !as_path_ok {
            discard(p, code::AS4_PATH, raw);
        } else {
            let path = std::mem::take(&mut p.attrs.as_path);
            p.attrs.as_path = aspath::merge(path, segs);
        }
    }
}

/// Appends one attribute: flags (with Extended Length when the value exceeds 255
/// octets), type, length, value.
pub(crate) fn put_attr(
    out: &mut Vec<u8>,
    flags: u8,
    ty: u8,
    value: &[u8],
) -> Result<(), EncodeError> {
    if let Ok(l) = u8::try_from(value.len()) {
        out.extend_from_slice(&[flags & !flag::EXTENDED_LENGTH, ty, l]);
    } else {
        let l = u16::try_from(value.len()).map_err(|_| EncodeError::FieldTooLong {
            field: "path attribute",
            len: value.len(),
        })?;
        out.extend_from_slice(&[flags | flag::EXTENDED_LENGTH, ty]);
        out.extend_from_slice(&l.to_be_bytes());
    }
    out.extend_from_slice(value);
    Ok(())
}
