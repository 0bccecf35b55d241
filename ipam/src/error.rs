//! The crate's error type. Every variant names the pool, block, handle, address or node it
//! is about, so a failed assignment says what it was doing.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

/// Errors of IPAM.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// No enabled pool matches the node, the use and the IP family.
    #[error("no enabled IPv{family} pool allows {use_} on node {node}")]
    NoMatchingPool {
        node: String,
        use_: String,
        family: u8,
    },
    /// The matching pools have no room left for the node (no free block to claim, the
    /// block cap is reached, and borrowing is off or found nothing).
    #[error(
        "pool(s) {pools:?} exhausted for node {node}: wanted {wanted} IPv{family} address(es), got {got}"
    )]
    PoolExhausted {
        pools: Vec<String>,
        node: String,
        family: u8,
        wanted: usize,
        got: usize,
    },
    /// The node has no TortieNode resource (its labels drive pool selection).
    #[error("node {node} not found (no TortieNode)")]
    NodeNotFound { node: String },
    /// An address lies outside every pool (for assign/release of a specific address).
    #[error("address {ip} is in no IP pool")]
    NotInPool { ip: IpAddr },
    /// The pool holding an address does not allow the node or is disabled.
    #[error("address {ip}: pool {pool} cannot be used by node {node}: {reason}")]
    PoolNotUsable {
        ip: IpAddr,
        pool: String,
        node: String,
        reason: String,
    },
    /// An address is outside the block handed in.
    #[error("address {ip} is not in block {block}")]
    NotInBlock { ip: IpAddr, block: IpNetwork },
    /// A specific address is already assigned.
    #[error("address {ip} in block {block} is already assigned (handle {holder})")]
    AlreadyAssigned {
        ip: IpAddr,
        block: IpNetwork,
        holder: String,
    },
    /// A release named an address that is not assigned.
    #[error("address {ip} in block {block} is not assigned")]
    NotAssigned { ip: IpAddr, block: IpNetwork },
    /// A release carried a sequence number that no longer matches the allocation: the
    /// address was freed and re-assigned since.
    #[error("address {ip} in block {block}: stale sequence number {given} (now {current})")]
    StaleSequence {
        ip: IpAddr,
        block: IpNetwork,
        given: u64,
        current: u64,
    },
    /// A block object is internally inconsistent (bad ordinal or attribute index).
    #[error("block {block}: corrupt {field}: {reason}")]
    CorruptBlock {
        block: IpNetwork,
        field: &'static str,
        reason: String,
    },
    /// A compare-and-swap loop gave up.
    #[error("{what}: still conflicting after {attempts} attempts")]
    TooManyConflicts { what: String, attempts: usize },
    /// A pool's nodeSelector does not parse.
    #[error("pool {pool}: invalid nodeSelector: {reason}")]
    BadSelector { pool: String, reason: String },
    /// The failpoint hook asked the operation to stop.
    #[error("failpoint {name} stopped the operation")]
    Failpoint { name: &'static str },
    /// The liveness source (WorkloadEndpoints, Pods) could not be read.
    #[error("liveness source: {0}")]
    Liveness(String),
    /// The datastore failed.
    #[error("datastore: {0}")]
    Store(#[from] tortie_datastore::Error),
}

/// Result alias of this crate.
pub type Result<T, E = IpamError> = std::result::Result<T, E>;
