//! Compiles proto/ivory/v1/inventory.proto with protox (pure Rust, no system protoc; docs/stack.md §4).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("ivory/v1/inventory.proto");
    let holds = root.join("ivory/v1/holds.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    println!("cargo:rerun-if-changed={}", holds.display());
    let fds = protox::compile([&file, &holds], [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
