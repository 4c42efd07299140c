# Sourced by the interop scripts: builds the echo server as the test command does, starts a
# fresh one on a free loopback port with a temporary data directory and a fixed login code,
# stops it on exit, and sets `work` (the temporary directory), `port`, `api_port` (when the
# Bot API runs), `code` and `work/key.pem` (the server's public key). Arguments: the login
# code, then extra flags for the server.
#
# The echo server is built exactly as the test command builds it (for the examples'
# integration tests): `cargo build` would resolve features without the dev-dependencies and
# compile RocksDB's C++ and a dozen crates a second time, about 15 minutes on a fresh machine.
cargo test --workspace --all-features --no-run --quiet
server="${CARGO_TARGET_DIR:-target}/debug/echo-server"

work="$(mktemp -d)"
code="$1"
shift
"$server" --listen 127.0.0.1:0 --data "$work/data" --login-code "$code" "$@" \
  >"$work/out" 2>"$work/log" &
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
api_port="$(sed -n 's/^bot api listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/out")"
[ -n "$port" ] || { echo "interop: the server did not start listening" >&2; exit 1; }
sed -n '/BEGIN RSA PUBLIC KEY/,/END RSA PUBLIC KEY/p' "$work/out" >"$work/key.pem"

# Shows the server's log after a failure.
interop_failed() {
  echo "interop: failed; the server's log follows" >&2
  tail -n 50 "$work/log" >&2
}
