//! tortie-datastore: see DESIGN.md for what this crate owns.
