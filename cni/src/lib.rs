//! tortie-cni: the pod plumbing library (veth pair, addresses, routes, sysctls) shared
//! by the CNI plugin, felix and the tests, plus (later) the `tortie-cni` binary.
//!
//! Everything that touches the kernel here takes an explicit [`Netns`], so callers (and
//! tests) never program the namespace they happen to run in by accident.

pub mod error;
pub mod names;
pub mod netns;
pub mod plumbing;
pub mod sysctl;

pub use error::PlumbingError;
pub use names::{HOST_END_MAC, POD_GATEWAY_V4, POD_GATEWAY_V6, host_iface_name};
pub use netns::Netns;
pub use plumbing::{WorkloadPlumbing, WorkloadSetup, setup_workload, teardown_workload};

/// Route protocol number carried by every route tortie programs (CNI host routes and
/// every felix route). Routes with another protocol are never touched by felix.
/// 80 is free in iproute2's `rt_protos` table.
pub const ROUTE_PROTOCOL: u8 = 80;
