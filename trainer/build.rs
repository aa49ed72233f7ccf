//! Makes binaries and tests find libtorch at run time without LD_LIBRARY_PATH.
//!
//! torch-sys (a direct dependency for this reason; its manifest says `links = "tch"`) exports the
//! libtorch library directory it linked against as `DEP_TCH_LIBTORCH_LIB`. We bake that directory
//! into the rpath, and link `libtorch` with `--no-as-needed` so that on a CUDA build the CUDA
//! backend library stays loaded (and registers itself) even though no symbol of it is used directly.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-link-search=native={dir}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
