#!/usr/bin/env bash
# The main job: install dependencies, build our DataCoord, bring up a real Milvus 2.3.5 cluster with
# it as the active DataCoord, run the pymilvus workload (step-by-step report), stop the cluster.
#   scripts/main-job.sh                  our binary (cargo build -p milvus-datacoord, debug)
#   DATACOORD_IMPL=go scripts/main-job.sh   the Go DataCoord in its place (harness check)
#   STORAGE=s3 scripts/main-job.sh       every component on S3 (common.storageType: minio) against the
#                                        s3-test-server process instead of a local dir (default: local)
# Environment: DATACOORD_BIN overrides the binary path; CLUSTER_NAME (default main); WORKLOAD_ARGS.
# Exit code: the workload's (0 only when every step passed); logs stay in .work/cluster/<name>/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
name=${CLUSTER_NAME:-main}
py="$root/.work/venv/bin/python"

bash scripts/install-deps.sh

if [ "${DATACOORD_IMPL:-ours}" = go ]; then
  start_args=(--go)
else
  cargo build -p milvus-datacoord
  start_args=(--datacoord-bin "${DATACOORD_BIN:-$root/target/debug/milvus-datacoord}")
fi

storage=${STORAGE:-local}
case "$storage" in
  local) ;;
  s3) cargo build -p milvus-storage --features testing --bin s3-test-server ;;
  *) echo "main-job: STORAGE must be local or s3, not '$storage'" >&2; exit 2 ;;
esac

trap '"$py" scripts/cluster.py stop --name "$name"' EXIT
"$py" scripts/cluster.py start --name "$name" --storage "$storage" "${start_args[@]}"
rc=0
# shellcheck disable=SC2086 # WORKLOAD_ARGS is a word list on purpose
"$py" scripts/run-workload.py --name "$name" --json ".work/cluster/$name/workload.json" ${WORKLOAD_ARGS:-} || rc=$?
echo "main-job: workload exit code $rc (results in .work/cluster/$name/workload.json, logs in .work/cluster/$name/)"
exit $rc
