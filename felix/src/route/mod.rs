//! Felix's route dataplane: the pure calculation ([`calc`]) from [`crate::input::Input`]
//! to desired routes, tunnel devices and VTEPs; the delta tracker ([`delta`]); and the
//! rtnetlink reconciler that keeps the kernel equal to it.

pub mod calc;
pub mod model;

pub use calc::RouteCalc;
pub use model::{Devices, Hop, RouteTarget};
