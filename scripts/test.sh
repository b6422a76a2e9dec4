#!/usr/bin/env bash
# The project's test command (README, .ci/run): Rust checks and tests against a real etcd, then the
# real-cluster end-to-end suite against our binary. Everything it starts it stops, by PID.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
py="$root/.work/venv/bin/python"

# A private etcd for the Rust tests, on a free loopback port (never the dev one on 23790).
etcd_dir=$(mktemp -d /tmp/milvus-test-etcd.XXXXXX)
read -r client_port peer_port < <("$py" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
etcd --name test --data-dir "$etcd_dir/data" \
  --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "test=http://127.0.0.1:$peer_port" >"$etcd_dir/etcd.log" 2>&1 &
etcd_pid=$!
cleanup() {
  kill "$etcd_pid" 2>/dev/null || true
  wait "$etcd_pid" 2>/dev/null || true
  rm -rf "$etcd_dir"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$client_port" endpoint health >/dev/null 2>&1 && break
  kill -0 "$etcd_pid" 2>/dev/null || { cat "$etcd_dir/etcd.log"; exit 1; }
  sleep 0.1
done
ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$client_port" endpoint health

export ETCD_ENDPOINTS="127.0.0.1:$client_port"
export MILVUS_TEST_STRICT=1
export MILVUS_BINARY="$root/.work/milvus/bin/milvus"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
cargo build -p milvus-datacoord
export DATACOORD_BIN="$root/target/debug/milvus-datacoord"

"$py" -m pytest tests/e2e
