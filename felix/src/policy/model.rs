//! Plain input and output types of the policy compiler.
//!
//! Pure data: what the compiler reads (endpoints, namespaces, NetworkPolicies, pools,
//! node addresses) and what it produces (iptables chains per table plus the ipsets the
//! rules reference). Everything derives `Serialize`/`Deserialize` so a recorded input can
//! be replayed in a test. Until felix's `Input` enum feeds these, callers build them
//! directly.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::{Deserialize, Serialize};

/// A named container port of a pod (`containers[].ports[].name`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NamedPort {
    pub name: String,
    /// `TCP`, `UDP` or `SCTP` (Kubernetes spelling; any case accepted).
    pub protocol: String,
    pub port: u16,
}

/// A workload endpoint (one pod). Endpoints of other nodes carry `iface: None`: they only
/// feed the ipsets that selectors resolve to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub namespace: String,
    pub pod: String,
    /// Host-side interface (`cali...`) when the pod lives on this node.
    pub iface: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub ips: Vec<IpAddr>,
    pub named_ports: Vec<NamedPort>,
}

/// An IP pool as far as the dataplane ACLs care.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub cidr: IpNetwork,
    pub nat_outgoing: bool,
}

/// Dataplane switches that change the rule set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneConfig {
    /// Accept IPIP (protocol 4) on INPUT only from known node addresses.
    pub ipip: bool,
    /// Accept VXLAN on INPUT only from known node addresses.
    pub vxlan: bool,
    pub vxlan_port: u16,
    /// Dispatch chains hold at most this many interface rules before they split by the
    /// next character of the interface name (a tree, like Calico's).
    pub dispatch_fanout: usize,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            ipip: false,
            vxlan: false,
            vxlan_port: 4789,
            dispatch_fanout: 16,
        }
    }
}

/// Everything the compiler reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PolicyInput {
    pub endpoints: Vec<Endpoint>,
    /// Namespace name → labels. `kubernetes.io/metadata.name` is implied.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub policies: Vec<NetworkPolicy>,
    pub pools: Vec<Pool>,
    /// Addresses of every node of the cluster (this one included).
    pub node_ips: Vec<IpAddr>,
    pub config: DataplaneConfig,
}

/// An IP family: felix programs each into its own tables (iptables / ip6tables) and
/// ipsets (`cali40*` family inet / `cali60*` family inet6), as Calico does.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Family {
    #[default]
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// Whether `ip` belongs to this family.
    pub fn has(self, ip: &IpAddr) -> bool {
        matches!(
            (self, ip),
            (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
        )
    }

    /// Whether `net` belongs to this family.
    pub fn has_net(self, net: &IpNetwork) -> bool {
        self.has(&net.ip())
    }

    /// `ipset create ... family <this>`.
    pub fn ipset_family(self) -> &'static str {
        match self {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        }
    }

    /// The digit in our ipset names: `cali40…` / `cali60…`.
    pub fn digit(self) -> char {
        match self {
            Family::V4 => '4',
            Family::V6 => '6',
        }
    }

    /// The ICMP protocol name of this family in iptables syntax.
    pub fn icmp(self) -> &'static str {
        match self {
            Family::V4 => "icmp",
            Family::V6 => "ipv6-icmp",
        }
    }
}

/// The iptables tables tortie programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Table {
    Raw,
    Nat,
    Filter,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Raw, Table::Nat, Table::Filter];

    pub fn name(self) -> &'static str {
        match self {
            Table::Raw => "raw",
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }
}

/// One rule: match and target in iptables syntax, without `-A <chain>` and without the
/// `cali:` comment (the renderer adds both).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rule(pub String);

impl Rule {
    pub fn new(spec: impl Into<String>) -> Self {
        Rule(spec.into())
    }
}

/// Our rules inside one kernel chain (`INPUT`, `FORWARD`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    /// Kept as the first rules of the kernel chain, in this order.
    pub insert: Vec<Rule>,
    /// Kept somewhere after every inserted rule, in this order (nat POSTROUTING).
    pub append: Vec<Rule>,
}

/// Desired content of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRules {
    /// Our own chains (`cali-` prefix) → rules.
    pub chains: BTreeMap<String, Vec<Rule>>,
    /// Kernel chain → our hook rules in it.
    pub hooks: BTreeMap<String, Hooks>,
}

impl TableRules {
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(Vec::len).sum::<usize>()
            + self
                .hooks
                .values()
                .map(|h| h.insert.len() + h.append.len())
                .sum::<usize>()
    }
}

/// ipset types the rules use (the kernel has no `hash:net,net` or `hash:ip,mac`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IpSetKind {
    HashIp,
    HashNet,
    HashIpPort,
}

impl IpSetKind {
    pub fn name(self) -> &'static str {
        match self {
            IpSetKind::HashIp => "hash:ip",
            IpSetKind::HashNet => "hash:net",
            IpSetKind::HashIpPort => "hash:ip,port",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hash:ip" => Some(IpSetKind::HashIp),
            "hash:net" => Some(IpSetKind::HashNet),
            "hash:ip,port" => Some(IpSetKind::HashIpPort),
            _ => None,
        }
    }
}

/// Desired content of one ipset; members in `ipset add` syntax (`10.0.0.1`,
/// `10.0.0.0/24`, `10.0.0.1,tcp:80`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpSetSpec {
    pub kind: IpSetKind,
    pub members: BTreeSet<String>,
}

/// Complete desired ACL state of one family.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ruleset {
    /// Which tables (iptables or ip6tables) and ipsets (`cali40`/`cali60`) this is for.
    pub family: Family,
    pub tables: BTreeMap<Table, TableRules>,
    pub ipsets: BTreeMap<String, IpSetSpec>,
    /// Problems found in the input; the offending peer or port matches nothing
    /// (fail closed) and the rest of the policy still applies.
    pub warnings: Vec<super::PolicyError>,
}

impl Ruleset {
    pub fn table(&self, t: Table) -> Option<&TableRules> {
        self.tables.get(&t)
    }

    pub fn rule_count(&self) -> usize {
        self.tables.values().map(TableRules::rule_count).sum()
    }
}
