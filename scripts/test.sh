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
s3_pid=""
cleanup() {
  kill "$etcd_pid" 2>/dev/null || true
  wait "$etcd_pid" 2>/dev/null || true
  if [ -n "$s3_pid" ]; then
    kill "$s3_pid" 2>/dev/null || true
    wait "$s3_pid" 2>/dev/null || true
  fi
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

# A real S3-compatible server process on loopback (s3s-fs, signature-checking) for the storage
# tests; built from this workspace, so nothing outside the project is needed.
cargo build -p milvus-storage --features testing --bin s3-test-server
s3_port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/target/debug/s3-test-server" "$etcd_dir/s3" "$s3_port" >"$etcd_dir/s3.out" 2>&1 &
s3_pid=$!
for _ in $(seq 1 100); do
  [ -s "$etcd_dir/s3.out" ] && break
  kill -0 "$s3_pid" 2>/dev/null || { cat "$etcd_dir/s3.out"; exit 1; }
  sleep 0.1
done
read -r S3_TEST_ENDPOINT S3_TEST_ACCESS_KEY S3_TEST_SECRET_KEY <"$etcd_dir/s3.out"
export S3_TEST_ENDPOINT S3_TEST_ACCESS_KEY S3_TEST_SECRET_KEY
echo "s3 test server at $S3_TEST_ENDPOINT"
export MILVUS_TEST_STRICT=1
export MILVUS_BINARY="$root/.work/milvus/bin/milvus"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
cargo build -p milvus-datacoord
export DATACOORD_BIN="$root/target/debug/milvus-datacoord"

"$py" -m pytest tests/e2e
