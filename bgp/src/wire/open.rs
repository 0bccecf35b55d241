//! OPEN (RFC 4271 §4.2) with capabilities (RFC 5492) and extended optional parameters
//! (RFC 9072, accepted on decode and used on encode only when needed). Pure.
//!
//! The real AS travels in the 4-octet AS capability (RFC 6793); the 2-octet My AS field
//! carries AS_TRANS (23456) when the AS does not fit.

use std::net::Ipv4Addr;

use super::reader::Reader;
use super::{DecodeError, EncodeError};
use crate::msg::{Afi, Capability, GracefulRestartCap, Open};

/// AS_TRANS (RFC 6793 §9).
pub const AS_TRANS: u16 = 23456;

/// Optional parameter type: Capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072 marker: non-extended length 255 followed by parameter type 255.
const PARAM_EXTENDED: u8 = 255;

/// Capability codes.
pub mod cap {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    /// Pre-standard Cisco route refresh, decoded as [`crate::msg::Capability::RouteRefresh`].
    pub const ROUTE_REFRESH_CISCO: u8 = 128;
}

fn malformed(field: &'static str) -> DecodeError {
    DecodeError::MalformedOpen { field }
}

/// Decodes an OPEN body (everything after the header).
pub(crate) fn decode(body: &[u8]) -> Result<Open, DecodeError> {
    let mut r = Reader::new(body);
    let version = r.u8().ok_or(malformed("version"))?;
    if version != 4 {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let my_as = r.u16().ok_or(malformed("my AS"))?;
    let hold_time = r.u16().ok_or(malformed("hold time"))?;
    let bgp_id = Ipv4Addr::from(r.u32().ok_or(malformed("BGP identifier"))?);
    if bgp_id.is_unspecified() {
        return Err(DecodeError::BadBgpId(bgp_id));
    }
    let opt_len = r.u8().ok_or(malformed("optional parameters length"))?;
    let extended = opt_len == 255 && r.rest().first() == Some(&PARAM_EXTENDED);
    let mut params = if extended {
        r.u8();
        let n = r
            .u16()
            .ok_or(malformed("extended optional parameters length"))?;
        r.sub(usize::from(n))
    } else {
        r.sub(usize::from(opt_len))
    }
    .ok_or(malformed("optional parameters length"))?;
    if !r.is_empty() {
        return Err(malformed("optional parameters length"));
    }
    let mut capabilities = Vec::new();
    while !params.is_empty() {
        let ty = params.u8().ok_or(malformed("optional parameter"))?;
        let len = if extended {
            params.u16()
        } else {
            params.u8().map(u16::from)
        }
        .ok_or(malformed("optional parameter length"))?;
        let value = params
            .sub(usize::from(len))
            .ok_or(malformed("optional parameter length"))?;
        if ty != PARAM_CAPABILITIES {
            return Err(DecodeError::UnsupportedOptionalParameter(ty));
        }
        decode_capabilities(value, &mut capabilities)?;
    }
    let asn = capabilities
        .iter()
        .find_map(|c| match c {
            Capability::FourOctetAs(a) => Some(*a),
            _ => None,
        })
        .unwrap_or(u32::from(my_as));
    Ok(Open {
        version,
        asn,
        hold_time,
        bgp_id,
        capabilities,
    })
}

fn decode_capabilities(mut r: Reader<'_>, out: &mut Vec<Capability>) -> Result<(), DecodeError> {
    while !r.is_empty() {
        let code = r.u8().ok_or(malformed("capability"))?;
        let len = r.u8().ok_or(malformed("capability length"))?;
        let mut v = r
            .sub(usize::from(len))
            .ok_or(malformed("capability length"))?;
        let data = v.rest();
        let c = match code {
            cap::MULTIPROTOCOL => {
                let (afi, _res, safi) = (|| Some((v.u16()?, v.u8()?, v.u8()?)))()
                    .filter(|_| len == 4)
                    .ok_or(malformed("multiprotocol capability"))?;
                match Afi::from_wire(afi, safi) {
                    Some(f) => Capability::Multiprotocol(f),
                    None => Capability::Unknown {
                        code,
                        data: data.to_vec(),
                    },
                }
            }
            cap::ROUTE_REFRESH | cap::ROUTE_REFRESH_CISCO if len == 0 => Capability::RouteRefresh,
            cap::ENHANCED_ROUTE_REFRESH if len == 0 => Capability::EnhancedRouteRefresh,
            cap::EXTENDED_MESSAGE if len == 0 => Capability::ExtendedMessage,
            cap::ROUTE_REFRESH | cap::ROUTE_REFRESH_CISCO => {
                return Err(malformed("route refresh capability"));
            }
            cap::ENHANCED_ROUTE_REFRESH => {
                return Err(malformed("enhanced route refresh capability"));
            }
            cap::EXTENDED_MESSAGE => return Err(malformed("extended message capability")),
            cap::FOUR_OCTET_AS => match (len, v.u32()) {
                (4, Some(a)) => Capability::FourOctetAs(a),
                _ => return Err(malformed("4-octet AS capability")),
            },
            cap::GRACEFUL_RESTART => decode_graceful_restart(v)?,
            _ => Capability::Unknown {
                code,
                data: data.to_vec(),
            },
        };
        out.push(c);
    }
    Ok(())
}

/// RFC 4724 §3: Restart Flags (4 bits; R = 0x8) + Restart Time (12 bits), then
/// (AFI, SAFI, flags with F = 0x80) tuples. Families this codec does not model are
/// skipped.
fn decode_graceful_restart(mut v: Reader<'_>) -> Result<Capability, DecodeError> {
    let bad = || malformed("graceful restart capability");
    let head = v.u16().ok_or_else(bad)?;
    if !v.remaining().is_multiple_of(4) {
        return Err(bad());
    }
    let mut families = Vec::new();
    while !v.is_empty() {
        let afi = v.u16().ok_or_else(bad)?;
        let safi = v.u8().ok_or_else(bad)?;
        let flags = v.u8().ok_or_else(bad)?;
        if let Some(f) = Afi::from_wire(afi, safi) {
            families.push((f, flags & 0x80 != 0));
        }
    }
    Ok(Capability::GracefulRestart(GracefulRestartCap {
        restarting: head & 0x8000 != 0,
        restart_time: head & 0x0fff,
        families,
    }))
}

/// Encodes an OPEN body.
pub(crate) fn encode(open: &Open, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let has_as4 = open
        .capabilities
        .iter()
        .any(|c| matches!(c, Capability::FourOctetAs(_)));
    let my_as = match u16::try_from(open.asn) {
        Ok(a) => a,
        Err(_) if has_as4 => AS_TRANS,
        Err(_) => {
            return Err(EncodeError::AsNotRepresentable {
                asn: open.asn,
                field: "OPEN My AS without the 4-octet AS capability",
            });
        }
    };
    out.push(open.version);
    out.extend_from_slice(&my_as.to_be_bytes());
    out.extend_from_slice(&open.hold_time.to_be_bytes());
    out.extend_from_slice(&open.bgp_id.octets());

    let mut caps = Vec::new();
    for c in &open.capabilities {
        encode_capability(c, &mut caps)?;
    }
    if caps.is_empty() {
        out.push(0);
    } else if let Ok(n) = u8::try_from(caps.len() + 2)
        && n < 255
    {
        // One Capabilities parameter holding every capability, as BIRD and FRR send.
        out.extend_from_slice(&[n, PARAM_CAPABILITIES, n - 2]);
        out.extend_from_slice(&caps);
    } else {
        // RFC 9072 extended optional parameters.
        let plen = u16::try_from(caps.len()).map_err(|_| EncodeError::FieldTooLong {
            field: "capabilities",
            len: caps.len(),
        })?;
        let total = u16::try_from(caps.len() + 3).map_err(|_| EncodeError::FieldTooLong {
            field: "optional parameters",
            len: caps.len() + 3,
        })?;
        out.extend_from_slice(&[255, PARAM_EXTENDED]);
        out.extend_from_slice(&total.to_be_bytes());
        out.push(PARAM_CAPABILITIES);
        out.extend_from_slice(&plen.to_be_bytes());
        out.extend_from_slice(&caps);
    }
    Ok(())
}

/// Appends one capability TLV (code, length, value).
pub fn encode_capability(c: &Capability, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut tlv = |code: u8, value: &[u8]| -> Result<(), EncodeError> {
        let len = u8::try_from(value.len()).map_err(|_| EncodeError::FieldTooLong {
            field: "capability value",
            len: value.len(),
        })?;
        out.extend_from_slice(&[code, len]);
        out.extend_from_slice(value);
        Ok(())
    };
    match c {
        Capability::Multiprotocol(f) => {
            let (afi, safi) = f.wire();
            let [a0, a1] = afi.to_be_bytes();
            tlv(cap::MULTIPROTOCOL, &[a0, a1, 0, safi])
        }
        Capability::RouteRefresh => tlv(cap::ROUTE_REFRESH, &[]),
        Capability::EnhancedRouteRefresh => tlv(cap::ENHANCED_ROUTE_REFRESH, &[]),
        Capability::ExtendedMessage => tlv(cap::EXTENDED_MESSAGE, &[]),
        Capability::FourOctetAs(a) => tlv(cap::FOUR_OCTET_AS, &a.to_be_bytes()),
        Capability::GracefulRestart(gr) => {
            if gr.restart_time > 0x0fff {
                return Err(EncodeError::FieldTooLong {
                    field: "graceful restart time (12 bits)",
                    len: usize::from(gr.restart_time),
                });
            }
            let head = gr.restart_time | if gr.restarting { 0x8000 } else { 0 };
            let mut v = head.to_be_bytes().to_vec();
            for (f, fwd) in &gr.families {
                let (afi, safi) = f.wire();
                v.extend_from_slice(&afi.to_be_bytes());
                v.push(safi);
                v.push(if *fwd { 0x80 } else { 0 });
            }
            tlv(cap::GRACEFUL_RESTART, &v)
        }
        Capability::Unknown { code, data } => tlv(*code, data),
    }
}
