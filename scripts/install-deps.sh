#!/usr/bin/env bash
# Installs what the tests and the real-cluster harness need; safe to run again (each step checks first).
#   - Debian: etcd-server (etcd 3.4, the metadata store), protobuf-compiler (protoc: etcd-client's
#     build script, our proto crate, and the Python harness's descriptor set) and libprotobuf-dev
#     (the well-known .proto files protoc imports, google/protobuf/descriptor.proto among them;
#     protobuf-compiler only recommends it, so --no-install-recommends leaves it out)
#   - .work/venv: pytest, pymilvus 2.3.6 with the pins it needs on this Python, grpcio, protobuf, pyyaml
#   - .work/milvus: the real Milvus 2.3.5 binary (scripts/fetch-milvus.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

missing=()
# Each package is checked by what it installs, so a machine that has the tool from elsewhere is
# not made to reinstall it; the proof below still fails if the result cannot build our protos.
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Prove protoc can build what our proto crate builds: a file importing the well-known descriptor
# types (common.proto does), compiled with only protoc's own include path.
proof=$(mktemp -d)
trap 'rm -rf "$proof"' EXIT
cat >"$proof/proof.proto" <<'PROTO'
syntax = "proto3";
package installdeps.proof;
import "google/protobuf/descriptor.proto";
extend google.protobuf.MessageOptions { string proof_option = 50001; }
message Proof { string name = 1; }
PROTO
if ! protoc -I"$proof" --descriptor_set_out="$proof/proof.fds" "$proof/proof.proto" 2>"$proof/err"; then
  echo "install-deps: protoc cannot compile a proto importing google/protobuf/descriptor.proto:" >&2
  cat "$proof/err" >&2
  echo "install-deps: the well-known types come from Debian's libprotobuf-dev" >&2
  exit 1
fi
for tool in etcd etcdctl protoc python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "install-deps: $tool not found after install" >&2; exit 1; }
done
# The Debian package starts a system etcd on 2379 on some images; we never use it (our scripts start
# their own on free ports), so it is left alone.

venv="$root/.work/venv"
# pymilvus 2.3.6 imports pkg_resources (setuptools < 70) and environs' old API (environs < 10, which
# needs marshmallow < 4). grpcio is capped by pymilvus itself (<= 1.60).
pins=(
  "pytest>=7,<9"
  "pymilvus==2.3.6"
  "setuptools<70"
  "marshmallow<4"
  "environs<10"
  "grpcio>=1.49.1,<=1.60.0"
  "protobuf>=4.21,<5"
  "pyyaml>=6"
  # Imported by the e2e helpers themselves (S3 listing in cluster.py, .npy files for bulk insert);
  # named here rather than relied on as pymilvus's dependencies.
  "minio>=7,<8"
  "numpy>=1.24"
)
stamp="$venv/.deps-$(printf '%s\n' "${pins[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
  rm -f "$venv"/.deps-*
  touch "$stamp"
fi
"$venv/bin/python" -c 'import pytest, pymilvus, grpc, google.protobuf, yaml, minio, numpy' \
  || { echo "install-deps: the venv at $venv lacks a module the tests import" >&2; exit 1; }

bash "$root/scripts/fetch-milvus.sh"
echo "install-deps: ok (venv $venv, milvus $root/.work/milvus/bin/milvus)"
