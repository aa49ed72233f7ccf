//! Generates the Rust code of `azr/sandbox/v1/sandbox.proto`.
//!
//! The `.proto` is compiled with protox (a protobuf compiler written in Rust) so that
//! building needs no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "azr/sandbox/v1/sandbox.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["."])?;
    tonic_prost_build::configure()
        // The client crate brings its own Unix-socket channel; no TCP `connect` helpers.
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
