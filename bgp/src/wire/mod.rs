//! BGP-4 wire codec: bytes ⇄ [`crate::msg`] values. Pure: no I/O, no clocks.
//!
//! - [`frame_len`] splits a TCP byte stream into messages (header checks only).
//! - [`decode_message`] decodes one whole message into a [`Decoded`]: the message plus
//!   the RFC 7606 attribute issues that were survived (treat-as-withdraw, attribute
//!   discard). Anything that requires a session reset is a [`DecodeError`], and
//!   [`DecodeError::notification`] is the NOTIFICATION to send.
//! - [`encode_message`] encodes one message, refusing to exceed the negotiated maximum.
//! - [`Ctx`] is what OPEN negotiation decided (4-octet AS, extended messages, IPv4 in
//!   MP); [`Ctx::default`] is safe before negotiation.
//! - Packing helpers for the RIB: [`max_message_len`], [`announce_overhead`],
//!   [`withdraw_overhead`], [`prefix_wire_len`], [`attrs_len`].
//!
//! No decoder panics, indexes or does unchecked arithmetic on input; every loop consumes
//! input and every allocation is bounded by the message length.

mod aspath;
pub mod attrs;
mod error;
pub mod header;
mod nlri;
pub mod notification;
pub mod open;
mod reader;
mod update;

use serde::{Deserialize, Serialize};

use crate::msg::{Capability, Message, Open};

pub use error::{AttrAction, AttrFault, AttrIssue, DecodeError, EncodeError};
pub use header::{frame_len, max_message_len};
pub use nlri::prefix_wire_len;
pub use notification::{shutdown_communication, shutdown_notification};
pub use open::{AS_TRANS, encode_capability};
pub use update::{announce_overhead, attrs_len, withdraw_overhead};

/// The negotiated codec context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ctx {
    /// Both sides sent the 4-octet AS capability (RFC 6793): AS numbers are 4 octets in
    /// AS_PATH/AGGREGATOR. Otherwise 2 octets with AS_TRANS and AS4_PATH/AS4_AGGREGATOR.
    pub four_octet_as: bool,
    /// Both sides sent the Extended Message capability (RFC 8654): UPDATE,
    /// NOTIFICATION and ROUTE-REFRESH may be up to 65535 octets.
    pub extended_message: bool,
    /// Encode IPv4 unicast prefixes in MP_REACH/MP_UNREACH instead of the classic
    /// withdrawn/NLRI fields (decoding accepts both either way). Default false, which is
    /// what every peer expects for IPv4 unicast.
    pub ipv4_in_mp: bool,
}

impl Ctx {
    /// The context after OPEN negotiation: a feature is on when both OPENs carry it.
    pub fn negotiated(ours: &Open, theirs: &Open) -> Ctx {
        let both = |f: fn(&Capability) -> bool| {
            ours.capabilities.iter().any(f) && theirs.capabilities.iter().any(f)
        };
        Ctx {
            four_octet_as: both(|c| matches!(c, Capability::FourOctetAs(_))),
            extended_message: both(|c| matches!(c, Capability::ExtendedMessage)),
            ipv4_in_mp: false,
        }
    }
}

/// One decoded message and what RFC 7606 handling did to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decoded {
    pub message: Message,
    /// Attribute problems survived (UPDATE only). With any
    /// [`AttrAction::TreatAsWithdraw`] issue, the UPDATE's announced prefixes have been
    /// moved to `withdrawn` (and `attrs` is kept, so it is never an End-of-RIB).
    pub issues: Vec<AttrIssue>,
    /// The RFC says to ignore this message without error: a ROUTE-REFRESH for an
    /// AFI/SAFI not modelled here or with an unknown subtype (RFC 2918 §4, RFC 7313 §5).
    /// `message` is then only a placeholder.
    pub ignore: bool,
}

impl Decoded {
    /// Whether treat-as-withdraw was applied.
    pub fn treat_as_withdraw(&self) -> bool {
        self.issues
            .iter()
            .any(|i| i.action == AttrAction::TreatAsWithdraw)
    }
}

/// Decodes exactly one whole message (header included; `buf.len()` must equal the
/// header's length field, as [`frame_len`] reported).
pub fn decode_message(buf: &[u8], ctx: &Ctx) -> Result<Decoded, DecodeError> {
    let Some(h) = buf.first_chunk::<{ header::HEADER_LEN }>() else {
        return Err(DecodeError::BadLength {
            len: u16::try_from(buf.len()).unwrap_or(u16::MAX),
            what: "shorter than the header",
        });
    };
    let (len, ty) = header::check_header(h, ctx)?;
    if len != buf.len() {
        return Err(DecodeError::BadLength {
            len: u16::try_from(len).unwrap_or(u16::MAX),
            what: "length field differs from the bytes given",
        });
    }
    let body = buf.get(header::HEADER_LEN..).unwrap_or_default();
    let plain = |message| Decoded {
        message,
        issues: Vec::new(),
        ignore: false,
    };
    Ok(match ty {
        header::OPEN => plain(Message::Open(open::decode(body)?)),
        header::UPDATE => {
            let (u, issues) = update::decode(body, ctx)?;
            Decoded {
                message: Message::Update(u),
                issues,
                ignore: false,
            }
        }
        header::NOTIFICATION => plain(Message::Notification(notification::decode(body)?)),
        header::KEEPALIVE => plain(Message::Keepalive),
        header::ROUTE_REFRESH => match notification::decode_refresh(body, buf)? {
            notification::Refresh::Request(rr) => plain(Message::RouteRefresh(rr)),
            notification::Refresh::Ignore(rr) => Decoded {
                ignore: true,
                ..plain(Message::RouteRefresh(rr))
            },
        },
        other => return Err(DecodeError::BadType(other)),
    })
}

/// Encodes one message, header included. Errors rather than emitting a message longer
/// than [`max_message_len`] (4096 for OPEN and KEEPALIVE always).
pub fn encode_message(msg: &Message, ctx: &Ctx) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    encode_message_into(msg, ctx, &mut out)?;
    Ok(out)
}

/// [`encode_message`] appending to `out` (on error `out` is restored to its length
/// before the call).
pub fn encode_message_into(msg: &Message, ctx: &Ctx, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let at = out.len();
    let res = (|| {
        let (ty, max) = match msg {
            Message::Open(_) => (header::OPEN, header::MAX_LEN),
            Message::Update(_) => (header::UPDATE, max_message_len(ctx)),
            Message::Notification(_) => (header::NOTIFICATION, max_message_len(ctx)),
            Message::Keepalive => (header::KEEPALIVE, header::MAX_LEN),
            Message::RouteRefresh(_) => (header::ROUTE_REFRESH, max_message_len(ctx)),
        };
        header::start(out, ty);
        match msg {
            Message::Open(o) => open::encode(o, out)?,
            Message::Update(u) => update::encode(u, ctx, out)?,
            Message::Notification(n) => notification::encode(n, out),
            Message::Keepalive => {}
            Message::RouteRefresh(rr) => notification::encode_refresh(rr, out),
        }
        header::finish(out, at, max)
    })();
    if res.is_err() {
        out.truncate(at);
    }
    res
}
