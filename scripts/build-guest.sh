#!/usr/bin/env bash
# Builds the RustPython guest (sandbox/guest) for wasm32-wasip1 and caches it.
#
# The rustup toolchain on these machines has no wasm32 standard library and cannot fetch
# one, so the guest is built with Debian's rustc (the `rustc-web` packages) and
# `-Zbuild-std`, linked by Debian's wasm-ld against Debian's wasi-libc.
#
# RustPython stays a crates.io dependency. Where the project changes it (CPython's set
# order and hashes), the change is a patch in sandbox/guest/patches/, named
# <crate>-<version>.patch: this script fetches the published crate as cargo does (checksum
# checked), copies it, applies the patch, and links the patched crates at
# sandbox/guest/patched/, where the guest's [patch.crates-io] table points.
#
# Output: prints the path of the cached guest .wasm, keyed by the hash of the guest's
# sources, patches, lock file and this script. A cold build takes about 13 minutes on 2 cores.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
guest="$root/sandbox/guest"
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"

if [[ -z "${AZR_NO_APT:-}" ]]; then
  "$root/scripts/apt-deps.sh" guest >&2
fi
for tool in /usr/bin/cargo /usr/bin/rustc /usr/bin/wasm-ld-16 /usr/lib/wasm32-wasi/libc.a /usr/bin/patch; do
  [[ -e "$tool" ]] || { echo "missing $tool: run scripts/setup.sh (Debian packages for the guest)" >&2; exit 1; }
done

key=$(cd "$guest" && cat Cargo.toml Cargo.lock build.rs $(find src python patches ../contract -type f | sort) \
      "$root/scripts/build-guest.sh" | sha256sum | cut -c1-16)
out="$cache/guest/$key/azr_sandbox_guest.wasm"
if [[ -s "$out" ]]; then
  echo "$out"
  exit 0
fi

# One build at a time (cargo's build script and the set-up script may race).
mkdir -p "$cache"
exec 9>"$cache/guest.lock"
flock 9
if [[ -s "$out" ]]; then
  echo "$out"
  exit 0
fi

# The patched RustPython crates, keyed by the patches (and this script).
patch_key=$(cat "$guest"/patches/*.patch "$root/scripts/build-guest.sh" | sha256sum | cut -c1-16)
patched="$cache/rustpython-patched/$patch_key"
if [[ ! -f "$patched/.complete" ]]; then
  echo "patching RustPython ($(cd "$guest/patches" && echo *.patch)) ..." >&2
  scratch="$cache/rustpython-fetch"
  mkdir -p "$scratch/src" "$patched"
  : > "$scratch/src/lib.rs"
  {
    printf '[package]\nname = "azr-rustpython-fetch"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n[workspace]\n\n[dependencies]\n'
    for p in "$guest"/patches/*.patch; do
      base=$(basename "$p" .patch)
      printf '%s = { version = "=%s", default-features = false }\n' "${base%-*}" "${base##*-}"
    done
  } > "$scratch/Cargo.toml"
  (cd "$scratch" && /usr/bin/cargo fetch -q >&2)
  registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
  for p in "$guest"/patches/*.patch; do
    base=$(basename "$p" .patch)
    name=${base%-*}
    src=$(ls -d "$registry"/*/"$base" 2>/dev/null | head -n1)
    [[ -n "$src" ]] || { echo "cargo fetched no source for $base under $registry" >&2; exit 1; }
    rm -rf "$patched/$name"
    cp -r "$src" "$patched/$name"
    patch -s -p1 -d "$patched/$name" < "$p" || { echo "$p does not apply to $base" >&2; exit 1; }
  done
  touch "$patched/.complete"
fi
ln -sfn "$patched" "$guest/patched"

echo "building the wasm guest (cold: ~13 min on 2 cores) ..." >&2
# When cargo runs this from a build script, its own settings are in the environment; the
# guest build must not inherit them (CARGO_ENCODED_RUSTFLAGS would override RUSTFLAGS).
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_MAKEFLAGS MAKEFLAGS MFLAGS \
      RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER CARGO_BUILD_TARGET RUSTUP_TOOLCHAIN
export CARGO_TARGET_DIR="$cache/guest-target"
export RUSTC_BOOTSTRAP=1
export RUSTC=/usr/bin/rustc
export CARGO_TARGET_WASM32_WASIP1_LINKER=/usr/bin/wasm-ld-16
export RUSTFLAGS="-C link-self-contained=no -L /usr/lib/wasm32-wasi -C link-arg=/usr/lib/wasm32-wasi/crt1-reactor.o"
(cd "$guest" && /usr/bin/cargo build --locked --release -Zbuild-std=std,panic_abort \
   --target wasm32-wasip1 >&2)
mkdir -p "$(dirname "$out")"
cp "$CARGO_TARGET_DIR/wasm32-wasip1/release/azr_sandbox_guest.wasm" "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
