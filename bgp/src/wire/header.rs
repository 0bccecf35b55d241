//! The 19-octet message header (RFC 4271 §4.1) and stream framing. Pure.

use super::{Ctx, DecodeError};

/// Header length: 16-octet marker, 2-octet length, 1-octet type.
pub const HEADER_LEN: usize = 19;
/// Largest message before RFC 8654 extended messages (and always for OPEN/KEEPALIVE).
pub const MAX_LEN: usize = 4096;
/// Largest message with RFC 8654 extended messages.
pub const MAX_EXTENDED_LEN: usize = 65535;

/// Message type codes (RFC 4271 §4.1, RFC 2918).
pub const OPEN: u8 = 1;
pub const UPDATE: u8 = 2;
pub const NOTIFICATION: u8 = 3;
pub const KEEPALIVE: u8 = 4;
pub const ROUTE_REFRESH: u8 = 5;

/// The largest message `ctx` allows (UPDATE, NOTIFICATION, ROUTE-REFRESH; OPEN and
/// KEEPALIVE stay within 4096 either way, RFC 8654 §4).
pub fn max_message_len(ctx: &Ctx) -> usize {
    if ctx.extended_message {
        MAX_EXTENDED_LEN
    } else {
        MAX_LEN
    }
}

/// Checks a complete header and returns (length, type).
pub(crate) fn check_header(h: &[u8; HEADER_LEN], ctx: &Ctx) -> Result<(usize, u8), DecodeError> {
    let [marker @ .., l0, l1, ty] = *h;
    if marker.iter().any(|&b| b != 0xff) {
        return Err(DecodeError::NotSynchronized);
    }
    let len = u16::from_be_bytes([l0, l1]);
    let n = usize::from(len);
    let bad = |what| Err(DecodeError::BadLength { len, what });
    if n < HEADER_LEN {
        return bad("shorter than the header");
    }
    if n > max_message_len(ctx) {
        return bad("longer than the negotiated maximum");
    }
    match ty {
        OPEN if n < HEADER_LEN + 10 => bad("OPEN shorter than 29"),
        OPEN if n > MAX_LEN => bad("OPEN longer than 4096"),
        UPDATE if n < HEADER_LEN + 4 => bad("UPDATE shorter than 23"),
        NOTIFICATION if n < HEADER_LEN + 2 => bad("NOTIFICATION shorter than 21"),
        KEEPALIVE if n != HEADER_LEN => bad("KEEPALIVE not 19"),
        // Short ROUTE-REFRESH is a header error; longer ones are judged by subtype
        // (RFC 7313 §5) once the body is read.
        ROUTE_REFRESH if n < HEADER_LEN + 4 => bad("ROUTE-REFRESH shorter than 23"),
        OPEN | UPDATE | NOTIFICATION | KEEPALIVE | ROUTE_REFRESH => Ok((n, ty)),
        other => Err(DecodeError::BadType(other)),
    }
}

/// Splits a TCP byte stream: looks at the start of `buf` and returns `Ok(None)` while
/// fewer than 19 octets have arrived, else the total length of the first message
/// (which may be more than `buf` holds yet: wait for that many octets, then call
/// [`decode_message`](super::decode_message) on exactly them). Header errors (marker,
/// length bounds per type, unknown type) are returned as soon as they are visible.
pub fn frame_len(buf: &[u8], ctx: &Ctx) -> Result<Option<usize>, DecodeError> {
    let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
        // Reject a bad marker early even on a partial header.
        if buf.iter().take(16).any(|&b| b != 0xff) {
            return Err(DecodeError::NotSynchronized);
        }
        return Ok(None);
    };
    check_header(h, ctx).map(|(n, _)| Some(n))
}

/// Appends a header for a message of total length `len` (patched by [`finish`]).
pub(crate) fn start(out: &mut Vec<u8>, ty: u8) {
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&[0, 0, ty]);
}

/// Writes the length into a message started with [`start`] at offset `at`, checking it
/// against `max`.
pub(crate) fn finish(out: &mut [u8], at: usize, max: usize) -> Result<(), super::EncodeError> {
    let len = out.len().saturating_sub(at);
    if len > max {
        return Err(super::EncodeError::TooLong { len, max });
    }
    let l = u16::try_from(len).map_err(|_| super::EncodeError::TooLong { len, max })?;
    if let Some(slot) = out.get_mut(at + 16..at + 18) {
        slot.copy_from_slice(&l.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(len: u16, ty: u8) -> Vec<u8> {
        let mut v = vec![0xff; 16];
        v.extend_from_slice(&len.to_be_bytes());
        v.push(ty);
        v
    }

    #[test]
    fn frames_and_rejects() {
        let ctx = Ctx::default();
        assert_eq!(frame_len(&hdr(19, 4)[..10], &ctx), Ok(None));
        assert_eq!(frame_len(&hdr(19, 4), &ctx), Ok(Some(19)));
        assert_eq!(frame_len(&hdr(4096, 2), &ctx), Ok(Some(4096)));
        assert!(matches!(
            frame_len(&hdr(4097, 2), &ctx),
            Err(DecodeError::BadLength { len: 4097, .. })
        ));
        let ext = Ctx {
            extended_message: true,
            ..Ctx::default()
        };
        assert_eq!(frame_len(&hdr(5000, 2), &ext), Ok(Some(5000)));
        assert!(frame_len(&hdr(5000, 1), &ext).is_err());
        assert!(matches!(
            frame_len(&hdr(20, 4), &ctx),
            Err(DecodeError::BadLength { len: 20, .. })
        ));
        assert_eq!(frame_len(&hdr(19, 9), &ctx), Err(DecodeError::BadType(9)));
        let mut bad = hdr(19, 4);
        bad[3] = 0;
        assert_eq!(frame_len(&bad, &ctx), Err(DecodeError::NotSynchronized));
        assert_eq!(
            frame_len(&bad[..5], &ctx),
            Err(DecodeError::NotSynchronized)
        );
    }
}
