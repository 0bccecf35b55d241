//! tortie-ipam: see DESIGN.md for what this crate owns.
