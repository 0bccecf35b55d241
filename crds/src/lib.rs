//! tortie-crds: see DESIGN.md for what this crate owns.
