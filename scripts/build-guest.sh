#!/usr/bin/env bash
# Builds the RustPython guest (sandbox/guest) for wasm32-wasip1 and caches it.
#
# The rustup toolchain on these machines has no wasm32 standard library and cannot fetch
# one, so the guest is built with Debian's rustc (the `rustc-web` packages) and
# `-Zbuild-std`, linked by Debian's wasm-ld against Debian's wasi-libc.
#
# Output: prints the path of the cached guest .wasm, keyed by the hash of the guest's
# sources, lock file and this script. A cold build takes about 13 minutes on 2 cores.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
guest="$root/sandbox/guest"
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"

if [[ -z "${AZR_NO_APT:-}" ]]; then
  "$root/scripts/apt-deps.sh" guest >&2
fi
for tool in /usr/bin/cargo /usr/bin/rustc /usr/bin/wasm-ld-16 /usr/lib/wasm32-wasi/libc.a; do
  [[ -e "$tool" ]] || { echo "missing $tool: run scripts/setup.sh (Debian packages for the guest)" >&2; exit 1; }
done

key=$(cd "$guest" && cat Cargo.toml Cargo.lock build.rs $(find src python -type f | sort) "$root/scripts/build-guest.sh" \
      | sha256sum | cut -c1-16)
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
