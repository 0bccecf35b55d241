//! tortie-cni: the pod plumbing library (veth pair, addresses, routes, sysctls) shared
//! by the CNI plugin, felix and the tests, and the `tortie-cni` CNI plugin itself.
//!
//! Everything that touches the kernel here takes an explicit [`Netns`], so callers (and
//! tests) never program the namespace they happen to run in by accident.
//!
//! - plumbing (always built): [`names`], [`netns`], [`plumbing`], [`sysctl`], [`inspect`].
//! - the CNI protocol, pure (always built): [`spec`] (environment, results, error codes)
//!   and [`conf`] (the network configuration).
//! - the plugin driver (feature `plugin`, on by default; felix and the agent build
//!   without it so they never link the datastore): [`plugin`].

pub mod conf;
pub mod error;
pub mod inspect;
pub mod names;
pub mod netns;
#[cfg(feature = "plugin")]
pub mod plugin;
pub mod plumbing;
pub mod spec;
pub mod sysctl;

pub use error::PlumbingError;
pub use names::{HOST_END_MAC, POD_GATEWAY_V4, POD_GATEWAY_V6, host_iface_name};
pub use netns::Netns;
pub use plumbing::{WorkloadPlumbing, WorkloadSetup, setup_workload, teardown_workload};

/// Route protocol number carried by every route tortie programs (CNI host routes and
/// every felix route). Routes with another protocol are never touched by felix.
/// 80 is free in iproute2's `rt_protos` table.
pub const ROUTE_PROTOCOL: u8 = 80;
