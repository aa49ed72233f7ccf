#!/usr/bin/env bash
# Installs the Debian packages a part of the project needs, once.
#   guest   Debian's Rust (rustc-web) with std sources, wasi-libc and wasm-ld, for the guest;
#           patch, for the project's patches to RustPython
#   daemon  for the daemon's tests: systemd (`systemd-analyze verify` of the units), strace
#           (recording a workload's system calls), gdb (making the running daemon attempt a
#           forbidden call)
#   trainer a font for the text of `azr-trainer report`'s charts (fonts-dejavu-core)
#   node    Node.js and npm, for the daemon's grpc-js client test (when node is missing)
set -euo pipefail
want=()
case "${1:-all}" in
  guest) want=(rustc-web cargo-web rust-web-src wasi-libc lld-16 patch) ;;
  daemon) want=(systemd strace gdb) ;;
  trainer) want=(fonts-dejavu-core) ;;
  node) want=(nodejs npm) ;;
  all) want=(rustc-web cargo-web rust-web-src wasi-libc lld-16 patch systemd strace gdb fonts-dejavu-core) ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
echo "installing Debian packages: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
