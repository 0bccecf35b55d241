//! tortie-crds: the resources operators and components write, and their rules.
//!
//! tortie's own resources (group `crd.tortie.dev`, version `v1`; kinds and camelCase field
//! names as Calico's `projectcalico.org/v3`):
//!
//! | kind | Rust type | scope |
//! |---|---|---|
//! | IPPool | [`IpPool`] / [`IpPoolSpec`] | cluster |
//! | BGPConfiguration | [`BgpConfiguration`] / [`BgpConfigurationSpec`] | cluster (`default`, `node.<name>`) |
//! | BGPPeer | [`BgpPeer`] / [`BgpPeerSpec`] | cluster |
//! | TortieNode | [`TortieNode`] / [`TortieNodeSpec`] | cluster (named after the node) |
//! | IPAMBlock | [`IpamBlock`] / [`IpamBlockSpec`] | cluster |
//! | BlockAffinity | [`BlockAffinity`] / [`BlockAffinitySpec`] | cluster |
//! | IPAMHandle | [`IpamHandle`] / [`IpamHandleSpec`] | cluster |
//! | IPAMConfig | [`IpamConfig`] / [`IpamConfigSpec`] | cluster (`default`) |
//! | WorkloadEndpoint | [`WorkloadEndpoint`] / [`WorkloadEndpointSpec`] | namespaced |
//!
//! Kubernetes natives re-exported from k8s-openapi: [`NetworkPolicy`]
//! (`networking.k8s.io/v1`), [`Node`], [`Namespace`], [`Pod`] (`v1`).
//!
//! Everything here is pure (no async, sockets or clocks):
//!
//! - the types and Calico's defaults (`with_defaults`, serde/schema defaults), name
//!   schemes (`IpamBlock::name_for`, `BlockAffinity::name_for`, `WorkloadEndpoint::name_for`);
//! - [`asn`]: AS numbers, plain and asdot; [`duration`]: Go durations;
//! - [`selector`]: Calico's selector language (parse with positioned errors, canonical
//!   printing, evaluation over label maps); [`scope`]: BGPPeer scope/remote and pool node
//!   selection as typed values;
//! - [`validation`]: `Validate::validate` / `ValidateUpdate::validate_update` per resource,
//!   pool overlap, errors naming the field (`spec.blockSize: ...`);
//! - [`defaults`]: the default pools from `CALICO_IPV4POOL_*` / `CALICO_IPV6POOL_*`;
//! - [`import`]: multi-document manifests, tortie's own and Calico's `projectcalico.org/v3`
//!   IPPool/BGPPeer/BGPConfiguration converted ([`from_calico_v3_yaml`]);
//! - [`crdgen`]: the CRDs (with `x-kubernetes-validations` CEL rules) behind
//!   `deploy/crds/` and the `crdgen` binary.

pub mod asn;
pub mod bgp;
pub mod crdgen;
pub mod defaults;
pub mod duration;
pub mod endpoint;
pub mod import;
pub mod ipam;
pub mod ippool;
pub mod node;
pub mod scope;
pub mod selector;
pub mod serde_net;
pub mod validation;

pub use asn::{AsNumber, AsNumberError};
pub use bgp::{
    BgpConfiguration, BgpConfigurationSpec, BgpPassword, BgpPeer, BgpPeerSpec, BindMode, Community,
    NextHopMode, PrefixAdvertisement, ServiceCidr, SourceAddress, parse_peer_ip,
};
pub use defaults::{default_ipv4_pool, default_ipv6_pool};
pub use endpoint::{EndpointPort, Protocol, WorkloadEndpoint, WorkloadEndpointSpec};
pub use import::{ImportError, ImportErrorKind, TortieObject, from_calico_v3_yaml};
pub use ipam::{
    AffinityState, AllocationAttribute, AllocationSecondary, BlockAffinity, BlockAffinitySpec,
    IpamBlock, IpamBlockSpec, IpamConfig, IpamConfigSpec, IpamHandle, IpamHandleSpec, cidr_name,
};
pub use ippool::{AllowedUse, EncapMode, IpPool, IpPoolSpec};
pub use node::{NodeBgpSpec, TortieNode, TortieNodeSpec};
pub use scope::{PeerRemote, PeerScope};
pub use selector::{Expr, Selector, SelectorError};
pub use validation::{
    FieldError, Validate, ValidateUpdate, ValidationErrors, validate_pool_overlap,
    validate_pool_update,
};

pub use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
pub use k8s_openapi::api::networking::v1::NetworkPolicy;

/// API group of tortie's resources.
pub const GROUP: &str = "crd.tortie.dev";
/// API version of tortie's resources.
pub const VERSION: &str = "v1";
/// `apiVersion` of tortie's resources.
pub const API_VERSION: &str = "crd.tortie.dev/v1";
