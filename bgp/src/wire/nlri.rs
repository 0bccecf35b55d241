//! NLRI prefix encoding (RFC 4271 §4.3, RFC 4760 §5): a length in bits followed by the
//! fewest octets that hold it. Pure.
//!
//! Decoding masks host bits to zero (they are irrelevant on the wire), so a decoded
//! prefix is always canonical; encoding masks them too.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

use super::reader::Reader;
use crate::msg::Afi;

/// The NLRI is malformed: a prefix length beyond the family's width, or a prefix that
/// runs past the end of its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadNlri;

/// Octets `p` takes in an NLRI, withdrawn-routes or MP_(UN)REACH field: one length octet
/// plus `ceil(prefix_len / 8)` address octets. Use it to pack UPDATEs.
pub fn prefix_wire_len(p: &IpNetwork) -> usize {
    1 + usize::from(p.prefix()).div_ceil(8)
}

/// Decodes every prefix of `r` (which must end exactly at the field's end) into `out`.
pub(crate) fn decode_prefixes(
    mut r: Reader<'_>,
    afi: Afi,
    out: &mut Vec<IpNetwork>,
) -> Result<(), BadNlri> {
    out.reserve_exact(count_prefixes(r.rest()));
    while !r.is_empty() {
        out.push(decode_prefix(&mut r, afi)?);
    }
    Ok(())
}

/// How many prefixes `field` holds, from the length octets alone (a truncated last one
/// counts; decoding rejects it), so the output is allocated once at its final size.
fn count_prefixes(field: &[u8]) -> usize {
    let mut i = 0;
    let mut n = 0;
    while let Some(&bits) = field.get(i) {
        i += 1 + usize::from(bits).div_ceil(8);
        n += 1;
    }
    n
}

fn decode_prefix(r: &mut Reader<'_>, afi: Afi) -> Result<IpNetwork, BadNlri> {
    let bits = r.u8().ok_or(BadNlri)?;
    let n = usize::from(bits).div_ceil(8);
    match afi {
        Afi::Ipv4Unicast => {
            if bits > 32 {
                return Err(BadNlri);
            }
            let mut a = [0u8; 4];
            let src = r.take(n).ok_or(BadNlri)?;
            a.get_mut(..n).ok_or(BadNlri)?.copy_from_slice(src);
            let v = u32::from_be_bytes(a) & mask32(bits);
            Ipv4Network::new(Ipv4Addr::from(v), bits)
                .map(IpNetwork::V4)
                .map_err(|_| BadNlri)
        }
        Afi::Ipv6Unicast => {
            if bits > 128 {
                return Err(BadNlri);
            }
            let mut a = [0u8; 16];
            let src = r.take(n).ok_or(BadNlri)?;
            a.get_mut(..n).ok_or(BadNlri)?.copy_from_slice(src);
            let v = u128::from_be_bytes(a) & mask128(bits);
            Ipv6Network::new(Ipv6Addr::from(v), bits)
                .map(IpNetwork::V6)
                .map_err(|_| BadNlri)
        }
    }
}

fn mask32(bits: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(bits.min(32)))
        .unwrap_or(0)
}

fn mask128(bits: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(bits.min(128)))
        .unwrap_or(0)
}

/// Appends `p` in NLRI form.
pub(crate) fn encode_prefix(p: &IpNetwork, out: &mut Vec<u8>) {
    let bits = p.prefix();
    let n = usize::from(bits).div_ceil(8);
    out.push(bits);
    match p {
        IpNetwork::V4(n4) => {
            let v = u32::from(n4.ip()) & mask32(bits);
            out.extend(v.to_be_bytes().iter().take(n));
        }
        IpNetwork::V6(n6) => {
            let v = u128::from(n6.ip()) & mask128(bits);
            out.extend(v.to_be_bytes().iter().take(n));
        }
    }
}

/// The family a prefix belongs to.
pub(crate) fn family(p: &IpNetwork) -> Afi {
    match p {
        IpNetwork::V4(_) => Afi::Ipv4Unicast,
        IpNetwork::V6(_) => Afi::Ipv6Unicast,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(bytes: &[u8], afi: Afi) -> Result<Vec<IpNetwork>, BadNlri> {
        let mut v = Vec::new();
        decode_prefixes(Reader::new(bytes), afi, &mut v).map(|()| v)
    }

    #[test]
    fn output_is_sized_from_the_length_octets() {
        // /26, /32, /8, /0: four prefixes; a truncated tail still counts (then fails).
        let bytes = [26, 10, 244, 1, 64, 32, 192, 0, 2, 1, 8, 10, 0];
        assert_eq!(count_prefixes(&bytes), 4);
        assert_eq!(count_prefixes(&[24, 10]), 1);
        assert_eq!(count_prefixes(&[]), 0);
        let got = dec(&bytes, Afi::Ipv4Unicast).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got.capacity(), 4);
    }

    #[test]
    fn v4_prefixes_round_trip_with_minimal_octets() {
        let bytes = [26, 10, 244, 1, 64, 0, 32, 192, 0, 2, 1, 8, 10];
        let got = dec(&bytes, Afi::Ipv4Unicast).unwrap();
        let want: Vec<IpNetwork> = ["10.244.1.64/26", "0.0.0.0/0", "192.0.2.1/32", "10.0.0.0/8"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        let mut out = Vec::new();
        for p in &want {
            encode_prefix(p, &mut out);
        }
        assert_eq!(out, bytes);
        assert_eq!(want.iter().map(prefix_wire_len).sum::<usize>(), bytes.len());
    }

    #[test]
    fn host_bits_are_masked() {
        let got = dec(&[25, 10, 0, 0, 0xff], Afi::Ipv4Unicast).unwrap();
        assert_eq!(got, vec!["10.0.0.128/25".parse::<IpNetwork>().unwrap()]);
        let mut out = Vec::new();
        encode_prefix(&"10.0.0.255/25".parse().unwrap(), &mut out);
        assert_eq!(out, [25, 10, 0, 0, 0x80]);
    }

    #[test]
    fn v6_prefix() {
        let got = dec(&[64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2], Afi::Ipv6Unicast).unwrap();
        assert_eq!(got, vec!["2001:db8:1:2::/64".parse::<IpNetwork>().unwrap()]);
    }

    #[test]
    fn malformed_prefixes_are_errors() {
        assert_eq!(dec(&[33, 1, 2, 3, 4, 5], Afi::Ipv4Unicast), Err(BadNlri));
        assert_eq!(dec(&[24, 10, 0], Afi::Ipv4Unicast), Err(BadNlri));
        assert_eq!(dec(&[129], Afi::Ipv6Unicast), Err(BadNlri));
    }
}
