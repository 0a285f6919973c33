//! Writes the contract (`docs/contract/`) from the wire types:
//! `cargo run -p airport-protocol --example contract --features schema`.

use airport_protocol::contract::{self, ContractFile};
use std::path::Path;

fn main() -> std::io::Result<()> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(contract::DIRECTORY);
    if directory.exists() {
        // Files of packets that no longer exist must go too.
        std::fs::remove_dir_all(&directory)?;
    }
    for ContractFile { path, text } in contract::files() {
        let path = directory.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    println!("wrote {}", directory.canonicalize()?.display());
    Ok(())
}
