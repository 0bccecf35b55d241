//! tortie-ipam: Calico-style IP address management.
//!
//! - [`block`] (pure): the allocator over one IPAMBlock — ordinals, FIFO free list,
//!   attributes, per-ordinal sequence numbers.
//! - [`pools`] (pure): pool selection (nodeSelector, use, family, disabled), the block of an
//!   address, the per-host pseudo-random walk over candidate blocks.
//! - [`stores`]: the datastore stores IPAM reads and writes, and a counting wrapper.
//! - [`ipam`]: [`Ipam`], assignment and release over the datastore with compare-and-swap.
//! - [`gc`]: garbage collection of leaked addresses, deleted nodes and empty blocks.
//! - [`check`]: the consistency check and the usage report with their table formats.

pub mod block;
pub mod check;
mod claim;
pub mod error;
pub mod gc;
mod handles;
pub mod ipam;
pub mod pools;
pub mod release;
pub mod stores;

pub use check::{Report, Snapshot, Usage, check, format_report, format_usage, usage};
pub use error::{IpamError, Result};
pub use gc::{GcOptions, GcReport, GcState, Liveness, PodLiveness, WorkloadEndpointLiveness, gc};
pub use ipam::{
    AssignArgs, Assigned, AssignedIp, Attrs, Clock, FP_CLAIM_AFTER_PENDING, Failpoint, Ipam,
    IpamOptions, TunnelKind, ipip_handle, pod_handle, vxlan_handle,
};
pub use release::ReleaseReport;
pub use stores::{Counters, Stores};
