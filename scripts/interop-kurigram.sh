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

source scripts/interop-server.sh 13579

status=0
(cd "$work" && timeout 600 "$venv/bin/python" "$OLDPWD/examples/interop/kurigram_secret.py" \
  127.0.0.1 "$port" "$work/key.pem" "$code") || status=$?
[ "$status" -eq 0 ] || interop_failed
exit "$status"
