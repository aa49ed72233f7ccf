//! Finds the wasm guest this crate embeds, building it when it is not cached.
//!
//! The guest (sandbox/guest) is built by `scripts/build-guest.sh` with Debian's rustc for
//! wasm32-wasip1; its output is cached under `$HOME/.cache/azr-rs/guest/<hash of its
//! inputs>/`, so after the first (≈ 13 min) build this is a lookup. Set `AZR_GUEST_WASM` to
//! embed a guest built elsewhere.

use std::{env, fs, path::PathBuf, process::Command};

use sha2::{Digest, Sha256};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("sandbox/ sits in the workspace root");
    for path in [
        "guest/src",
        "guest/python",
        "guest/Cargo.toml",
        "guest/Cargo.lock",
        "guest/build.rs",
    ] {
        println!("cargo:rerun-if-changed={}", manifest.join(path).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("scripts/build-guest.sh").display()
    );
    println!("cargo:rerun-if-env-changed=AZR_GUEST_WASM");

    let wasm = match env::var("AZR_GUEST_WASM") {
        Ok(path) => PathBuf::from(path),
        Err(_) => {
            let output = Command::new("bash")
                .arg(root.join("scripts/build-guest.sh"))
                .env("AZR_NO_APT", "1")
                .output()
                .expect("bash runs");
            if !output.status.success() {
                panic!(
                    "building the wasm guest failed (run scripts/setup.sh once to install its \
                     Debian packages):\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            let stdout = String::from_utf8_lossy(&output.stdout);
            PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
        }
    };
    let bytes =
        fs::read(&wasm).unwrap_or_else(|e| panic!("reading the guest {}: {e}", wasm.display()));
    let digest = Sha256::digest(&bytes);
    let key: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    println!("cargo:rerun-if-changed={}", wasm.display());
    println!("cargo:rustc-env=AZR_GUEST_WASM_PATH={}", wasm.display());
    println!("cargo:rustc-env=AZR_GUEST_KEY={key}");
}
