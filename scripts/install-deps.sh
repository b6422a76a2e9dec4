#!/usr/bin/env bash
# Installs what the tests and the real-cluster harness need; safe to run again (each step checks first).
#   - Debian: etcd-server (etcd 3.4, the metadata store) and protobuf-compiler (protoc: etcd-client's
#     build script, our proto crate, and the Python harness's descriptor set)
#   - .work/venv: pytest, pymilvus 2.3.6 with the pins it needs on this Python, grpcio, protobuf, pyyaml
#   - .work/milvus: the real Milvus 2.3.5 binary (scripts/fetch-milvus.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
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

bash "$root/scripts/fetch-milvus.sh"
echo "install-deps: ok (venv $venv, milvus $root/.work/milvus/bin/milvus)"
