//! Codec errors and the NOTIFICATION each one requires (RFC 4271 §6, RFC 7606, RFC 7313,
//! RFC 5492). Pure.
//!
//! A [`DecodeError`] always means "session reset": the speaker sends
//! [`DecodeError::notification`] and closes. Attribute problems that RFC 7606 lets the
//! session survive are not errors but [`AttrIssue`]s carried in
//! [`Decoded`](super::Decoded).

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::msg::{Notification, err};

/// A received message that requires a NOTIFICATION and the end of the session.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Header marker is not all ones (RFC 4271 §6.1).
    #[error("message header: marker is not all ones")]
    NotSynchronized,
    /// The length field is outside 19..=max, or wrong for the message type (RFC 4271 §6.1).
    /// `what` names the message or the bound that was violated.
    #[error("message header: bad length {len} ({what})")]
    BadLength { len: u16, what: &'static str },
    /// Unknown message type (RFC 4271 §6.1).
    #[error("message header: unknown message type {0}")]
    BadType(u8),

    /// OPEN version is not 4 (RFC 4271 §6.2).
    #[error("OPEN: unsupported version {0}")]
    UnsupportedVersion(u8),
    /// OPEN My AS is not what was configured for the peer. Raised by the FSM, not the codec.
    #[error("OPEN: peer AS {got}, expected {want}")]
    BadPeerAs { got: u32, want: u32 },
    /// OPEN BGP Identifier is invalid (zero, RFC 6286 §2.2) or equals our own (FSM).
    #[error("OPEN: bad BGP identifier {0}")]
    BadBgpId(Ipv4Addr),
    /// OPEN optional parameter type other than Capabilities (RFC 5492).
    #[error("OPEN: unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    /// OPEN hold time 1 or 2 (RFC 4271 §6.2). Raised by the FSM, not the codec.
    #[error("OPEN: unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    /// A capability the local policy requires is missing or unsupported (RFC 5492 §5).
    /// `data` is the capability TLV(s) to report. Raised by the FSM, not the codec.
    #[error("OPEN: unsupported capability {code}")]
    UnsupportedCapability { code: u8, data: Vec<u8> },
    /// OPEN optional parameters or a capability are malformed; `field` names which
    /// (RFC 4271 §6.2: subcode 0, unspecific).
    #[error("OPEN: malformed {field}")]
    MalformedOpen { field: &'static str },

    /// Withdrawn Routes Length or Total Path Attribute Length inconsistent with the
    /// message length, or a duplicated MP_REACH/MP_UNREACH (RFC 4271 §6.3, RFC 7606 §3.g).
    #[error("UPDATE: malformed attribute list ({field})")]
    MalformedAttributeList { field: &'static str },
    /// Unrecognized well-known attribute (RFC 4271 §6.3). `attr` is the whole attribute.
    #[error("UPDATE: unrecognized well-known attribute type {type_code}")]
    UnrecognizedWellKnown { type_code: u8, attr: Vec<u8> },
    /// An attribute error that forces a session reset (MP_REACH_NLRI / MP_UNREACH_NLRI
    /// malformed, RFC 7606 §7.11), or any attribute fault when the caller chooses strict
    /// RFC 4271 handling via [`AttrIssue::into_error`].
    #[error("UPDATE: attribute type {type_code}: {fault}")]
    Attribute {
        type_code: u8,
        fault: AttrFault,
        attr: Vec<u8>,
    },
    /// The classic NLRI or withdrawn routes field is malformed (RFC 4271 §6.3,
    /// RFC 7606 §5.3). `field` names which.
    #[error("UPDATE: invalid network field ({field})")]
    InvalidNetworkField { field: &'static str },

    /// ROUTE-REFRESH BoRR/EoRR with a length other than 23 (RFC 7313 §5); `message` is
    /// the whole received message.
    #[error("ROUTE-REFRESH: invalid message length {len}")]
    RouteRefreshLength { len: u16, message: Vec<u8> },
}

impl DecodeError {
    /// The NOTIFICATION to send before closing the session (RFC 4271 §6).
    pub fn notification(&self) -> Notification {
        use DecodeError::*;
        let n = |code, subcode, data: Vec<u8>| Notification {
            code,
            subcode,
            data,
        };
        match self {
            NotSynchronized => n(
                err::MESSAGE_HEADER,
                err::CONNECTION_NOT_SYNCHRONIZED,
                vec![],
            ),
            BadLength { len, .. } => n(
                err::MESSAGE_HEADER,
                err::BAD_MESSAGE_LENGTH,
                len.to_be_bytes().to_vec(),
            ),
            BadType(t) => n(err::MESSAGE_HEADER, err::BAD_MESSAGE_TYPE, vec![*t]),
            // Data: the largest supported version, 2 octets (RFC 4271 §6.2).
            UnsupportedVersion(_) => n(err::OPEN_MESSAGE, err::UNSUPPORTED_VERSION, vec![0, 4]),
            BadPeerAs { .. } => n(err::OPEN_MESSAGE, err::BAD_PEER_AS, vec![]),
            BadBgpId(_) => n(err::OPEN_MESSAGE, err::BAD_BGP_IDENTIFIER, vec![]),
            UnsupportedOptionalParameter(_) => n(
                err::OPEN_MESSAGE,
                err::UNSUPPORTED_OPTIONAL_PARAMETER,
                vec![],
            ),
            UnacceptableHoldTime(_) => n(err::OPEN_MESSAGE, err::UNACCEPTABLE_HOLD_TIME, vec![]),
            UnsupportedCapability { data, .. } => {
                n(err::OPEN_MESSAGE, err::UNSUPPORTED_CAPABILITY, data.clone())
            }
            MalformedOpen { .. } => n(err::OPEN_MESSAGE, 0, vec![]),
            MalformedAttributeList { .. } => {
                n(err::UPDATE_MESSAGE, err::MALFORMED_ATTRIBUTE_LIST, vec![])
            }
            UnrecognizedWellKnown { attr, .. } => n(
                err::UPDATE_MESSAGE,
                err::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                attr.clone(),
            ),
            Attribute {
                type_code,
                fault,
                attr,
            } => fault.notification(*type_code, attr),
            InvalidNetworkField { .. } => {
                n(err::UPDATE_MESSAGE, err::INVALID_NETWORK_FIELD, vec![])
            }
            RouteRefreshLength { message, .. } => n(err::ROUTE_REFRESH, 1, message.clone()),
        }
    }
}

/// What is wrong with one path attribute (RFC 4271 §6.3 subcodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttrFault {
    /// Optional/Transitive flags conflict with the attribute type (subcode 4).
    Flags { flags: u8 },
    /// Length wrong for the type, or the attribute overruns the attribute section
    /// (subcode 5).
    Length { len: u16 },
    /// ORIGIN value other than 0..=2 (subcode 6).
    InvalidOrigin(u8),
    /// NEXT_HOP syntactically invalid: 0.0.0.0, multicast or broadcast (subcode 8).
    InvalidNextHop,
    /// AS_PATH segments malformed (subcode 11).
    MalformedAsPath,
    /// A recognised optional attribute's value is invalid (subcode 9).
    OptionalAttribute,
    /// A mandatory well-known attribute is missing (subcode 3).
    Missing,
    /// The attribute appeared more than once (subcode 1).
    Duplicate,
    /// AS4_PATH / AS4_AGGREGATOR received on a 4-octet-AS session (RFC 6793 §4.1), or
    /// an AS4 attribute that the merge rules say to ignore (RFC 6793 §4.2.3) (subcode 9).
    UnexpectedAs4,
    /// MP_REACH/MP_UNREACH for an AFI/SAFI this codec does not model (subcode 9).
    UnknownFamily { afi: u16, safi: u8 },
}

impl fmt::Display for AttrFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrFault::Flags { flags } => write!(f, "flags {flags:#04x} conflict with type"),
            AttrFault::Length { len } => write!(f, "bad length {len}"),
            AttrFault::InvalidOrigin(v) => write!(f, "invalid ORIGIN value {v}"),
            AttrFault::InvalidNextHop => write!(f, "invalid NEXT_HOP"),
            AttrFault::MalformedAsPath => write!(f, "malformed AS_PATH"),
            AttrFault::OptionalAttribute => write!(f, "invalid optional attribute value"),
            AttrFault::Missing => write!(f, "missing well-known attribute"),
            AttrFault::Duplicate => write!(f, "duplicate attribute"),
            AttrFault::UnexpectedAs4 => write!(f, "AS4 attribute ignored (RFC 6793)"),
            AttrFault::UnknownFamily { afi, safi } => {
                write!(f, "unsupported AFI/SAFI {afi}/{safi}")
            }
        }
    }
}

impl AttrFault {
    /// The NOTIFICATION RFC 4271 §6.3 prescribes for this fault; `attr` is the whole
    /// attribute as received (flags, type, length, value).
    pub fn notification(&self, type_code: u8, attr: &[u8]) -> Notification {
        let (subcode, data) = match self {
            AttrFault::Flags { .. } => (err::ATTRIBUTE_FLAGS_ERROR, attr.to_vec()),
            AttrFault::Length { .. } => (err::ATTRIBUTE_LENGTH_ERROR, attr.to_vec()),
            AttrFault::InvalidOrigin(_) => (err::INVALID_ORIGIN_ATTRIBUTE, attr.to_vec()),
            AttrFault::InvalidNextHop => (err::INVALID_NEXT_HOP_ATTRIBUTE, attr.to_vec()),
            AttrFault::MalformedAsPath => (err::MALFORMED_AS_PATH, vec![]),
            AttrFault::OptionalAttribute
            | AttrFault::UnexpectedAs4
            | AttrFault::UnknownFamily { .. } => (err::OPTIONAL_ATTRIBUTE_ERROR, attr.to_vec()),
            AttrFault::Missing => (err::MISSING_WELL_KNOWN_ATTRIBUTE, vec![type_code]),
            AttrFault::Duplicate => (err::MALFORMED_ATTRIBUTE_LIST, vec![]),
        };
        Notification {
            code: err::UPDATE_MESSAGE,
            subcode,
            data,
        }
    }
}

/// How RFC 7606 lets the session survive an attribute problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttrAction {
    /// RFC 7606 §2 "treat-as-withdraw": every prefix the UPDATE announced was moved to
    /// its withdrawn list.
    TreatAsWithdraw,
    /// RFC 7606 §2 "attribute discard": the attribute was dropped, the rest kept.
    Discard,
}

/// One attribute problem the decoder handled without resetting the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrIssue {
    pub type_code: u8,
    pub action: AttrAction,
    pub fault: AttrFault,
    /// The whole attribute as received (flags, type, length, value); empty for
    /// [`AttrFault::Missing`].
    pub attr: Vec<u8>,
}

impl AttrIssue {
    /// The NOTIFICATION strict RFC 4271 handling would send for this issue (for logging,
    /// or for a speaker configured to reset instead).
    pub fn notification(&self) -> Notification {
        self.fault.notification(self.type_code, &self.attr)
    }

    /// This issue as a session-reset error.
    pub fn into_error(self) -> DecodeError {
        DecodeError::Attribute {
            type_code: self.type_code,
            fault: self.fault,
            attr: self.attr,
        }
    }
}

/// A value that cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The encoded message would exceed the negotiated maximum (4096, or 65535 with
    /// RFC 8654 extended messages).
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLong { len: usize, max: usize },
    /// A length field would overflow; `field` names it.
    #[error("{field} of {len} bytes does not fit its length field")]
    FieldTooLong { field: &'static str, len: usize },
    /// An UPDATE announces prefixes but lacks a required attribute (`what` names it).
    #[error("UPDATE announces prefixes but has no {what}")]
    Missing { what: &'static str },
    /// IPv4 and IPv6 prefixes both need the single MP_REACH (or MP_UNREACH) attribute.
    #[error("UPDATE would need two {what} attributes (IPv4 and IPv6 both in MP)")]
    MixedMpFamilies { what: &'static str },
    /// An AS number above 65535 with no way to carry it (OPEN without the 4-octet AS
    /// capability, or a confederation segment for a 2-octet peer).
    #[error("AS {asn} cannot be encoded for this peer ({field})")]
    AsNotRepresentable { asn: u32, field: &'static str },
    /// An MP next hop that is not one address, or an IPv6 global plus an IPv6 link-local.
    #[error("invalid MP_REACH next hop")]
    BadMpNextHop,
}
