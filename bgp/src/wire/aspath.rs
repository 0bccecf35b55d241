//! AS_PATH and AS4_PATH (RFC 4271 §4.3, RFC 6793 §4.2): segment coding with 2- or
//! 4-octet AS numbers, the AS_TRANS substitution for 2-octet peers, and the merge of
//! AS4_PATH into AS_PATH (RFC 6793 §4.2.3). Pure.
//!
//! Segment types are preserved exactly: an AS_SEQUENCE never becomes an AS_SET.

use super::EncodeError;
use super::open::AS_TRANS;
use super::reader::Reader;
use crate::msg::AsSegment;

const SET: u8 = 1;
const SEQUENCE: u8 = 2;
const CONFED_SEQUENCE: u8 = 3;
const CONFED_SET: u8 = 4;

/// Decodes AS_PATH (or AS4_PATH with `four_octet`). `None` if malformed: unknown segment
/// type, zero-length segment, or a segment that overruns the value (RFC 7606 §7.2).
pub(crate) fn decode(value: &[u8], four_octet: bool) -> Option<Vec<AsSegment>> {
    let mut r = Reader::new(value);
    let mut segs = Vec::new();
    while !r.is_empty() {
        let ty = r.u8()?;
        let n = r.u8()?;
        if n == 0 {
            return None;
        }
        let width = if four_octet { 4 } else { 2 };
        // Bounded: the value must hold n ASNs, checked before allocating.
        let mut body = r.sub(usize::from(n) * width)?;
        let mut asns = Vec::with_capacity(usize::from(n));
        while !body.is_empty() {
            let a = if four_octet {
                body.u32()?
            } else {
                u32::from(body.u16()?)
            };
            asns.push(a);
        }
        segs.push(match ty {
            SET => AsSegment::Set(asns),
            SEQUENCE => AsSegment::Sequence(asns),
            CONFED_SEQUENCE => AsSegment::ConfedSequence(asns),
            CONFED_SET => AsSegment::ConfedSet(asns),
            _ => return None,
        });
    }
    Some(segs)
}

fn parts(s: &AsSegment) -> (u8, &[u32]) {
    match s {
        AsSegment::Set(v) => (SET, v),
        AsSegment::Sequence(v) => (SEQUENCE, v),
        AsSegment::ConfedSequence(v) => (CONFED_SEQUENCE, v),
        AsSegment::ConfedSet(v) => (CONFED_SET, v),
    }
}

fn is_confed(s: &AsSegment) -> bool {
    matches!(s, AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_))
}

/// Encodes segments. With `four_octet == false`, AS numbers above 65535 become AS_TRANS
/// (their real values then travel in AS4_PATH, see [`as4_path`]); in a confederation
/// segment that is an error since AS4_PATH never carries those (RFC 6793 §3).
pub(crate) fn encode(
    segs: &[AsSegment],
    four_octet: bool,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    for s in segs {
        let (ty, asns) = parts(s);
        let n =
            u8::try_from(asns.len())
                .ok()
                .filter(|&n| n > 0)
                .ok_or(EncodeError::FieldTooLong {
                    field: "AS_PATH segment (1..=255 AS numbers)",
                    len: asns.len(),
                })?;
        out.push(ty);
        out.push(n);
        for &a in asns {
            if four_octet {
                out.extend_from_slice(&a.to_be_bytes());
            } else {
                let a2 = match u16::try_from(a) {
                    Ok(a2) => a2,
                    Err(_) if !is_confed(s) => AS_TRANS,
                    Err(_) => {
                        return Err(EncodeError::AsNotRepresentable {
                            asn: a,
                            field: "confederation segment for a 2-octet peer",
                        });
                    }
                };
                out.extend_from_slice(&a2.to_be_bytes());
            }
        }
    }
    Ok(())
}

/// The AS4_PATH to send a 2-octet peer alongside `segs`: `None` when every AS fits in two
/// octets, else the path without confederation segments (RFC 6793 §4.2.2).
pub(crate) fn as4_path(segs: &[AsSegment]) -> Option<Vec<AsSegment>> {
    let needed = segs
        .iter()
        .filter(|s| !is_confed(s))
        .any(|s| parts(s).1.iter().any(|&a| a > u32::from(u16::MAX)));
    needed.then(|| segs.iter().filter(|s| !is_confed(s)).cloned().collect())
}

/// Path length for the RFC 6793 §4.2.3 comparison: a sequence counts its ASes, a set
/// counts one, confederation segments count zero.
fn count(segs: &[AsSegment]) -> usize {
    segs.iter()
        .map(|s| match s {
            AsSegment::Sequence(v) => v.len(),
            AsSegment::Set(_) => 1,
            _ => 0,
        })
        .sum()
}

/// Whether an AS4_PATH is acceptable at all: it must not carry confederation segments
/// (RFC 6793 §6: else it is malformed and discarded).
pub(crate) fn as4_valid(segs: &[AsSegment]) -> bool {
    !segs.iter().any(is_confed)
}

/// Merges AS_PATH and AS4_PATH from a 2-octet peer (RFC 6793 §4.2.3). When AS_PATH is
/// shorter than AS4_PATH, AS4_PATH is ignored; otherwise the leading ASes of AS_PATH
/// that AS4_PATH lacks (prepended by 2-octet speakers, plus any leading confederation
/// segments) are kept and AS4_PATH follows.
pub(crate) fn merge(as_path: Vec<AsSegment>, as4: Vec<AsSegment>) -> Vec<AsSegment> {
    let (n, m) = (count(&as_path), count(&as4));
    let Some(mut need) = n.checked_sub(m) else {
        return as_path;
    };
    let mut out: Vec<AsSegment> = Vec::new();
    for seg in as_path {
        if need == 0 && !is_confed(&seg) {
            break;
        }
        match seg {
            AsSegment::Sequence(mut v) => {
                let k = need.min(v.len());
                v.truncate(k);
                need -= k;
                out.push(AsSegment::Sequence(v));
            }
            AsSegment::Set(v) => {
                need = need.saturating_sub(1);
                out.push(AsSegment::Set(v));
            }
            confed => out.push(confed),
        }
    }
    let mut rest = as4.into_iter().peekable();
    if let (Some(AsSegment::Sequence(tail)), Some(AsSegment::Sequence(head))) =
        (out.last_mut(), rest.peek())
        && tail.len() + head.len() <= 255
    {
        tail.extend(head.iter().copied());
        rest.next();
    }
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use AsSegment::*;

    #[test]
    fn sequence_and_set_keep_their_types() {
        let segs = vec![Sequence(vec![65001, 65002]), Set(vec![7, 8])];
        let mut b = Vec::new();
        encode(&segs, false, &mut b).unwrap();
        assert_eq!(b, [2, 2, 0xfd, 0xe9, 0xfd, 0xea, 1, 2, 0, 7, 0, 8]);
        assert_eq!(decode(&b, false), Some(segs));
    }

    #[test]
    fn malformed_paths() {
        assert_eq!(decode(&[2, 0], true), None);
        assert_eq!(decode(&[2, 2, 0, 0, 0, 1], true), None);
        assert_eq!(decode(&[9, 1, 0, 1], false), None);
        assert_eq!(decode(&[2], false), None);
    }

    #[test]
    fn as_trans_split_and_merge() {
        let path = vec![ConfedSequence(vec![64512]), Sequence(vec![70000, 65001])];
        let mut b = Vec::new();
        encode(&path, false, &mut b).unwrap();
        let two = decode(&b, false).unwrap();
        assert_eq!(
            two,
            vec![ConfedSequence(vec![64512]), Sequence(vec![23456, 65001])]
        );
        let as4 = as4_path(&path).unwrap();
        assert_eq!(as4, vec![Sequence(vec![70000, 65001])]);
        assert_eq!(merge(two, as4), path);
    }

    #[test]
    fn merge_keeps_ases_prepended_by_old_speakers() {
        // An OLD speaker prepended 65010 after a NEW one wrote AS4_PATH.
        let as_path = vec![Sequence(vec![65010, 23456, 65001])];
        let as4 = vec![Sequence(vec![70000, 65001])];
        assert_eq!(
            merge(as_path, as4),
            vec![Sequence(vec![65010, 70000, 65001])]
        );
        // AS4_PATH longer than AS_PATH: ignored.
        let as_path = vec![Sequence(vec![23456])];
        let as4 = vec![Sequence(vec![70000, 65001])];
        assert_eq!(merge(as_path.clone(), as4), as_path);
    }

    #[test]
    fn no_as4_path_when_everything_fits() {
        assert_eq!(as4_path(&[Sequence(vec![1, 65535])]), None);
    }
}
