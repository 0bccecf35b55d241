//! Felix's route dataplane: the pure calculation ([`calc`]) from [`crate::input::Input`]
//! to desired routes, tunnel devices and VTEPs; the pure delta tracker ([`delta`]); thin
//! rtnetlink I/O ([`kernel`], [`devices`]); pipelined route writes ([`batch`]); and the
//! reconciler ([`reconciler`]) that keeps the kernel equal to the calculation.

pub mod batch;
pub mod calc;
pub mod delta;
pub mod devices;
pub mod error;
pub mod kernel;
pub mod model;
pub mod mtu;
pub mod reconciler;

pub use calc::RouteCalc;
pub use error::RouteError;
pub use model::{Devices, Hop, RouteTarget};
pub use reconciler::{ReconcilerConfig, ReconcilerTask, RouteReconciler, Status, spawn};
