//! The agent's endpoint input: the WorkloadEndpoints of *every* node (felix needs remote
//! ones too: their addresses fill the IP sets of policy rules that select pods by label),
//! with labels and named ports from the backend's source of truth. The join
//! ([`tortie_datastore::endpoints::ClusterJoin`]) and its driver live in the datastore
//! crate beside the per-node ones; this module names the driver for the agent.

pub use tortie_datastore::endpoints::watch_all_endpoints;
