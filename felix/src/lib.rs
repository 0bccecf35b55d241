//! tortie-felix: see DESIGN.md for what this crate owns.
pub mod input;
pub mod iptables;
pub mod policy;
pub mod route;
