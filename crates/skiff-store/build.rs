//! Compiles the peer protocol (`proto/raft.proto`, `proto/kv.proto`) with tonic.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [dir.join("raft.proto"), dir.join("kv.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    tonic_prost_build::configure().compile_protos(&files, &[dir])?;
    Ok(())
}
