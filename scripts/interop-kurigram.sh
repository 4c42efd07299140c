#!/usr/bin/env bash
# The secret-chat interoperability test with a real third-party client: installs Kurigram
# 2.2.26 (a Pyrogram fork, layer 229) and tg-secret 0.1.3 (secret chats over it) from PyPI into
# a virtual environment kept in the cache directory, starts a fresh echo server on a free
# loopback port with a temporary data directory, runs examples/interop/kurigram_secret.py (two
# users' secret chat, then one with @echo through a re-key) against it with the server's
# printed public key, and stops the server. Exit status: the script's (non-zero on any failed
# check and on any warning the clients log).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cache="${COLUMBA_CACHE:-$HOME/.cache/columba}"
mkdir -p "$cache"
venv="$cache/kurigram-2.2.26-tg-secret-0.1.3"
check='import sys, pyrogram, tg_secret, tgcrypto; sys.exit(pyrogram.__version__ != "2.2.26")'
if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  # tgcrypto: the C AES both libraries use when it is there (pure Python otherwise, slower).
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    kurigram==2.2.26 tg-secret==0.1.3 tgcrypto==1.2.5
fi

# The echo server exactly as the test command builds it (see interop-telethon.sh).
cargo test --workspace --all-features --no-run --quiet
server="${CARGO_TARGET_DIR:-target}/debug/echo-server"

work="$(mktemp -d)"
code=13579
"$server" --listen 127.0.0.1:0 --data "$work/data" --login-code "$code" >"$work/out" 2>"$work/log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 300); do
  grep -q '^listening on ' "$work/out" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; echo "interop: the server exited" >&2; exit 1; }
  sleep 0.1
done
port="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/out")"
[ -n "$port" ] || { echo "interop: the server did not start listening" >&2; exit 1; }
sed -n '/BEGIN RSA PUBLIC KEY/,/END RSA PUBLIC KEY/p' "$work/out" >"$work/key.pem"

status=0
(cd "$work" && timeout 600 "$venv/bin/python" "$OLDPWD/examples/interop/kurigram_secret.py" \
  127.0.0.1 "$port" "$work/key.pem" "$code") || status=$?
if [ "$status" -ne 0 ]; then
  echo "interop: failed; the server's log follows" >&2
  tail -n 50 "$work/log" >&2
fi
exit "$status"
