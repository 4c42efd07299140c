#!/usr/bin/env bash
# Installs what building and testing Columba needs on a fresh Debian or Ubuntu machine:
# a C toolchain and clang/libclang (RocksDB's bindings), OpenSSL's headers (the compare
# binary's peer), Python 3 (interop tests), and Rust
# through rustup when cargo is missing. Safe to run again: it installs only what is absent.
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
# bindgen needs the unversioned libclang.so that only the -dev package ships.
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || need_apt+=(libclang-dev)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# Debian splits venv (and the pip it bootstraps) out of python3; the Telethon test needs it.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v curl >/dev/null 2>&1 || need_apt+=(curl ca-certificates)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# The compare binary measures against OpenSSL through the openssl crate (headers and .pc file).
[ -f /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)

if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need_apt[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing Rust with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
