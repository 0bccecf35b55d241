//! tortie-bgp: a general BGP-4 library — wire codec, sans-IO session FSM, RIB with best
//! path selection and graceful restart, and a tokio speaker that drives them.
//!
//! Depends on none of tortie's Kubernetes-facing crates.

pub mod fsm;
pub mod msg;
pub mod rib;
pub mod speaker;
pub mod wire;
