//! Link settings of the guest that only its final link needs (so changing them does not
//! rebuild every dependency, as RUSTFLAGS would).
fn main() {
    // RustPython recurses on the shadow stack for every Python call; 1 MiB (the default)
    // overflows long before Python's recursion limit.
    println!("cargo:rustc-cdylib-link-arg=-zstack-size=33554432");
    println!("cargo:rerun-if-changed=build.rs");
}
