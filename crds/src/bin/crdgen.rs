//! Writes every tortie CRD to `deploy/crds/<plural>.crd.tortie.dev.yaml`.
//!
//! Usage: `cargo run -p tortie-crds --bin crdgen [-- --stdout | --dir DIR]`
//! (default DIR: `deploy/crds` of the workspace).

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut dir: PathBuf = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(tortie_crds::crdgen::CRD_DIR);
    let mut stdout = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--stdout" => stdout = true,
            "--dir" => dir = args.next().context("--dir needs a directory")?.into(),
            other => anyhow::bail!("unknown argument {other:?} (expected --stdout or --dir DIR)"),
        }
    }
    let files = tortie_crds::crdgen::render_all()?;
    if stdout {
        for (_, text) in &files {
            print!("---\n{text}");
        }
        return Ok(());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in &files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
