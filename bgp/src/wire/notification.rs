//! NOTIFICATION (RFC 4271 §4.5) with the RFC 9003 shutdown communication, and
//! ROUTE-REFRESH (RFC 2918, RFC 7313 subtypes). Pure.

use super::reader::Reader;
use super::{DecodeError, EncodeError};
use crate::msg::{Afi, Notification, RouteRefresh, err};

/// RFC 9003: the shutdown communication is at most 255 octets of UTF-8.
pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

/// ROUTE-REFRESH subtypes (RFC 7313 §3.2).
pub mod refresh {
    pub const NORMAL: u8 = 0;
    pub const BORR: u8 = 1;
    pub const EORR: u8 = 2;
}

/// Decodes a NOTIFICATION body: code, subcode, data (the rest).
pub(crate) fn decode(body: &[u8]) -> Result<Notification, DecodeError> {
    let mut r = Reader::new(body);
    let (Some(code), Some(subcode)) = (r.u8(), r.u8()) else {
        return Err(DecodeError::BadLength {
            len: u16::try_from(body.len() + 19).unwrap_or(u16::MAX),
            what: "NOTIFICATION shorter than 21",
        });
    };
    Ok(Notification {
        code,
        subcode,
        data: r.rest().to_vec(),
    })
}

pub(crate) fn encode(n: &Notification, out: &mut Vec<u8>) {
    out.push(n.code);
    out.push(n.subcode);
    out.extend_from_slice(&n.data);
}

/// Builds a Cease NOTIFICATION carrying an RFC 9003 shutdown communication. `subcode`
/// should be [`err::ADMIN_SHUTDOWN`] or [`err::ADMIN_RESET`]; `text` is at most 255
/// octets of UTF-8 (an empty text sends a zero length octet).
pub fn shutdown_notification(subcode: u8, text: &str) -> Result<Notification, EncodeError> {
    let len = u8::try_from(text.len()).map_err(|_| EncodeError::FieldTooLong {
        field: "shutdown communication",
        len: text.len(),
    })?;
    let mut data = Vec::with_capacity(text.len() + 1);
    data.push(len);
    data.extend_from_slice(text.as_bytes());
    Ok(Notification {
        code: err::CEASE,
        subcode,
        data,
    })
}

/// The RFC 9003 shutdown communication of a Cease/Administrative Shutdown or
/// Cease/Administrative Reset NOTIFICATION: `None` for other notifications, for one with
/// no data, and for one whose length octet overruns the data or whose text is not UTF-8
/// (RFC 9003 §3: then it is not a shutdown communication and is only logged as data).
pub fn shutdown_communication(n: &Notification) -> Option<&str> {
    if n.code != err::CEASE || !(n.subcode == err::ADMIN_SHUTDOWN || n.subcode == err::ADMIN_RESET)
    {
        return None;
    }
    let mut r = Reader::new(&n.data);
    let len = r.u8()?;
    let text = r.take(usize::from(len))?;
    std::str::from_utf8(text).ok()
}

/// What a ROUTE-REFRESH body decodes to.
pub(crate) enum Refresh {
    Request(RouteRefresh),
    /// RFC 2918 §4 / RFC 7313 §5: an AFI/SAFI not modelled here or an unknown subtype is
    /// ignored (the RouteRefresh carries IPv4 and the received subtype as a placeholder).
    Ignore(RouteRefresh),
}

/// Decodes a ROUTE-REFRESH body; `whole` is the entire message, reported back in the
/// RFC 7313 §5 Invalid Message Length NOTIFICATION.
pub(crate) fn decode_refresh(body: &[u8], whole: &[u8]) -> Result<Refresh, DecodeError> {
    let mut r = Reader::new(body);
    let (Some(afi), Some(subtype), Some(safi)) = (r.u16(), r.u8(), r.u8()) else {
        return Err(DecodeError::BadLength {
            len: u16::try_from(whole.len()).unwrap_or(u16::MAX),
            what: "ROUTE-REFRESH shorter than 23",
        });
    };
    if !r.is_empty() {
        let len = u16::try_from(whole.len()).unwrap_or(u16::MAX);
        if subtype == refresh::BORR || subtype == refresh::EORR {
            return Err(DecodeError::RouteRefreshLength {
                len,
                message: whole.to_vec(),
            });
        }
        return Err(DecodeError::BadLength {
            len,
            what: "ROUTE-REFRESH not 23",
        });
    }
    match Afi::from_wire(afi, safi) {
        Some(afi) if subtype <= refresh::EORR => {
            Ok(Refresh::Request(RouteRefresh { afi, subtype }))
        }
        _ => Ok(Refresh::Ignore(RouteRefresh {
            afi: Afi::Ipv4Unicast,
            subtype,
        })),
    }
}

pub(crate) fn encode_refresh(rr: &RouteRefresh, out: &mut Vec<u8>) {
    let (afi, safi) = rr.afi.wire();
    out.extend_from_slice(&afi.to_be_bytes());
    out.push(rr.subtype);
    out.push(safi);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_text_round_trips_and_rejects_bad_lengths() {
        let n = shutdown_notification(err::ADMIN_SHUTDOWN, "maintenance ✓").unwrap();
        assert_eq!(n.data[0] as usize, "maintenance ✓".len());
        assert_eq!(shutdown_communication(&n), Some("maintenance ✓"));
        assert!(shutdown_notification(err::ADMIN_RESET, &"x".repeat(256)).is_err());
        let overrun = Notification {
            code: err::CEASE,
            subcode: err::ADMIN_RESET,
            data: vec![10, b'a'],
        };
        assert_eq!(shutdown_communication(&overrun), None);
        let other = Notification {
            code: err::CEASE,
            subcode: err::PEER_DECONFIGURED,
            data: vec![1, b'a'],
        };
        assert_eq!(shutdown_communication(&other), None);
        let bad_utf8 = Notification {
            code: err::CEASE,
            subcode: err::ADMIN_SHUTDOWN,
            data: vec![1, 0xff],
        };
        assert_eq!(shutdown_communication(&bad_utf8), None);
    }
}
