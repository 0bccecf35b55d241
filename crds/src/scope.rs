//! Typed views of "who does this apply to": a BGPPeer's local scope and remote end, and
//! an IPPool's node selection.
//!
//! Pure. Owns the interpretation of the raw selector/address strings (already checked by
//! validation) as values the node agent can match nodes against, with errors naming the
//! field for objects that never went through validation.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::selector::Selector;
use crate::validation::ValidationErrors;
use crate::{AsNumber, BgpPeerSpec, IpPoolSpec, TortieNode};

/// Which nodes open a BGPPeer's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerScope {
    /// Every node (neither `node` nor `nodeSelector`): Calico's "global" peer.
    Global,
    /// Only the node with this name (`node`): Calico's "node specific" peer.
    Node(String),
    /// The nodes whose labels match (`nodeSelector`).
    Selector(Selector),
}

/// Whom a BGPPeer's sessions go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerRemote {
    /// One address (`peerIP` + `asNumber`).
    Address {
        /// Remote address.
        ip: IpAddr,
        /// Remote port, when given in `peerIP` (else the BGP port).
        port: Option<u16>,
        /// Remote AS.
        asn: AsNumber,
    },
    /// Every tortie node matching (`peerSelector`), each with its own address and AS.
    Nodes(Selector),
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.trim().is_empty())
}

fn one_error(field: &str, message: String) -> ValidationErrors {
    let mut e = ValidationErrors::default();
    e.push(field, message);
    e
}

impl BgpPeerSpec {
    /// The peer's local scope.
    pub fn scope(&self) -> Result<PeerScope, ValidationErrors> {
        match (nonempty(&self.node), nonempty(&self.node_selector)) {
            (Some(_), Some(_)) => Err(one_error(
                "spec.nodeSelector",
                "node and nodeSelector are mutually exclusive".into(),
            )),
            (Some(n), None) => Ok(PeerScope::Node(n.to_string())),
            (None, Some(s)) => Selector::parse(s).map(PeerScope::Selector).map_err(|e| {
                one_error("spec.nodeSelector", format!("invalid selector {s:?}: {e}"))
            }),
            (None, None) => Ok(PeerScope::Global),
        }
    }

    /// The peer's remote end.
    pub fn remote(&self) -> Result<PeerRemote, ValidationErrors> {
        match (nonempty(&self.peer_ip), nonempty(&self.peer_selector)) {
            (Some(_), Some(_)) => Err(one_error(
                "spec.peerSelector",
                "peerIP and peerSelector are mutually exclusive".into(),
            )),
            (Some(text), None) => {
                let (ip, port) = crate::parse_peer_ip(text)
                    .map_err(|e| one_error("spec.peerIP", e.to_string()))?;
                let asn = self.as_number.ok_or_else(|| {
                    one_error("spec.asNumber", "required when peerIP is set".into())
                })?;
                Ok(PeerRemote::Address { ip, port, asn })
            }
            (None, Some(s)) => Selector::parse(s).map(PeerRemote::Nodes).map_err(|e| {
                one_error("spec.peerSelector", format!("invalid selector {s:?}: {e}"))
            }),
            (None, None) => Err(one_error(
                "spec.peerIP",
                "one of peerIP or peerSelector is required".into(),
            )),
        }
    }
}

impl PeerScope {
    /// True when the node called `name` with these labels opens this peer's session.
    pub fn includes(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        match self {
            PeerScope::Global => true,
            PeerScope::Node(n) => n == name,
            PeerScope::Selector(s) => s.matches(labels),
        }
    }

    /// The peer type shown by `tortiectl node status` (`global`, `node specific`).
    pub fn peer_type(&self) -> &'static str {
        match self {
            PeerScope::Global => "global",
            PeerScope::Node(_) | PeerScope::Selector(_) => "node specific",
        }
    }
}

impl IpPoolSpec {
    /// The pool's node selector, parsed (empty = `all()`).
    pub fn node_selector_parsed(&self) -> Result<Selector, ValidationErrors> {
        Selector::parse(&self.node_selector).map_err(|e| {
            one_error(
                "spec.nodeSelector",
                format!("invalid selector {:?}: {e}", self.node_selector),
            )
        })
    }

    /// True when `node` may take blocks from this pool (its labels match `nodeSelector`).
    pub fn selects_node(&self, node: &TortieNode) -> Result<bool, ValidationErrors> {
        Ok(self.node_selector_parsed()?.matches(&node.labels_map()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TortieNodeSpec;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn peer_scope_and_remote() {
        let rr = BgpPeerSpec {
            node_selector: Some("all()".into()),
            peer_selector: Some("route-reflector == 'true'".into()),
            ..Default::default()
        };
        let scope = rr.scope().unwrap();
        assert!(scope.includes("any", &labels(&[])));
        let PeerRemote::Nodes(sel) = rr.remote().unwrap() else {
            panic!("expected a selector remote")
        };
        assert!(sel.matches(&labels(&[("route-reflector", "true")])));
        assert!(!sel.matches(&labels(&[])));

        let tor = BgpPeerSpec {
            node: Some("n1".into()),
            peer_ip: Some("[fd00::1]:1179".into()),
            as_number: Some(AsNumber(65000)),
            ..Default::default()
        };
        assert_eq!(tor.scope().unwrap(), PeerScope::Node("n1".into()));
        assert!(!tor.scope().unwrap().includes("n2", &labels(&[])));
        assert_eq!(
            tor.remote().unwrap(),
            PeerRemote::Address {
                ip: "fd00::1".parse().unwrap(),
                port: Some(1179),
                asn: AsNumber(65000)
            }
        );
        let global = BgpPeerSpec {
            peer_ip: Some("192.0.2.1".into()),
            as_number: Some(AsNumber(65000)),
            ..Default::default()
        };
        assert_eq!(global.scope().unwrap().peer_type(), "global");
    }

    #[test]
    fn peer_errors_name_fields() {
        let no_as = BgpPeerSpec {
            peer_ip: Some("192.0.2.1".into()),
            ..Default::default()
        };
        assert!(no_as.remote().unwrap_err().mentions("spec.asNumber"));
        let bad_sel = BgpPeerSpec {
            node_selector: Some("a ==".into()),
            ..Default::default()
        };
        assert!(bad_sel.scope().unwrap_err().mentions("spec.nodeSelector"));
        assert!(
            BgpPeerSpec::default()
                .remote()
                .unwrap_err()
                .mentions("spec.peerIP")
        );
    }

    #[test]
    fn pool_selects_nodes_by_label() {
        let mut pool = IpPoolSpec::new("10.0.0.0/16".parse().unwrap());
        pool.node_selector = "zone == 'a'".into();
        let mut node = TortieNode::new("n1", TortieNodeSpec::default());
        assert!(!pool.selects_node(&node).unwrap());
        node.metadata.labels = Some(labels(&[("zone", "a")]));
        assert!(pool.selects_node(&node).unwrap());
        pool.node_selector = String::new();
        assert!(
            pool.selects_node(&TortieNode::new("n2", TortieNodeSpec::default()))
                .unwrap()
        );
    }
}
