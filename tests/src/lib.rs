//! tortie-tests: see DESIGN.md for what this crate owns.
