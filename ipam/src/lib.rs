//! tortie-ipam: Calico-style IP address management.
//!
//! - [`block`] (pure): the allocator over one IPAMBlock — ordinals, FIFO free list,
//!   attributes, per-ordinal sequence numbers.
//! - [`pools`] (pure): pool selection (nodeSelector, use, family, disabled), the block of an
//!   address, the per-host pseudo-random walk over candidate blocks.
//! - [`stores`]: the datastore stores IPAM reads and writes, and a counting wrapper.
//! - [`ipam`]: [`Ipam`], assignment over the datastore with compare-and-swap (the claim
//!   protocol and handle bookkeeping live in the private `claim` and `handles` modules).
//! - [`release`]: release by address (+ sequence number) and by handle.
//! - [`gc`]: garbage collection of leaked addresses, deleted nodes and empty blocks.
//! - [`check`]: the consistency check and the usage report with their table formats
//!   (`tortiectl ipam check`, `tortiectl ipam show [--show-blocks]`).
//!
//! Typical use: `Ipam::new(Stores::from_datastore(&ds)).auto_assign(&AssignArgs { .. })`,
//! `release_by_handle`, `release_ips`, `assign_ip`, `assign_tunnel_addr`; `gc(..)` from one
//! elected agent; `check(..)` / `usage(..)` from the CLI.

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
