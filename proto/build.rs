//! Compiles the canonical API with protox (pure Rust), so building confab
//! needs nothing but cargo: no system `protoc`.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "confab/v1/common.proto",
        "confab/v1/chat.proto",
        "confab/v1/presence.proto",
        "confab/v1/call.proto",
        "confab/v1/notify.proto",
    ];
    let fds = protox::compile(files, ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("confab_descriptor.bin"), fds.encode_to_vec())?;
    // Services built in later issues answer UNIMPLEMENTED for RPCs they do
    // not serve yet instead of failing to compile.
    tonic_prost_build::configure()
        .generate_default_stubs(true)
        // A notification is much larger than the other notify events; a
        // bus log holds a few thousand events at most, so it stays inline
        // (no Box for publishers to build or subscribers to unwrap).
        .enum_attribute(
            ".confab.v1.NotifyEvent.kind",
            "#[allow(clippy::large_enum_variant)]",
        )
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=confab");
    Ok(())
}
