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
pub mod error;
pub mod pools;

pub use error::{IpamError, Result};
