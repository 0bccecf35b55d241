//! Thin binary: see DESIGN.md.
fn main() {}
