//! tortie-cni: see DESIGN.md for what this crate owns.
