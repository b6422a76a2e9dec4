#!/usr/bin/env bash
# Fetches the real Milvus 2.3.5 (the `milvus` wheel on PyPI) and unpacks it under .work/milvus:
#   .work/milvus/bin/milvus              the Go binary (all roles, including the Go datacoord)
#   .work/milvus/lib/*.so*               its shared libraries (LD_LIBRARY_PATH)
#   .work/milvus/config.yaml.template    the wheel's milvus.yaml template (milvus-lite flavour)
#   .work/milvus/glog.conf
# Idempotent: does nothing when the binary is already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.work/milvus"
[ -x "$dest/bin/milvus" ] && exit 0
mkdir -p "$dest/bin" "$dest/lib" "$root/.work/wheel"
if ! ls "$root"/.work/wheel/milvus-2.3.5-*.whl >/dev/null 2>&1; then
  python3 -m pip download --quiet --no-deps milvus==2.3.5 -d "$root/.work/wheel"
fi
python3 - "$root"/.work/wheel/milvus-2.3.5-*.whl "$dest" <<'PY'
import lzma, os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if name.startswith("milvus/data/bin/") and name.endswith(".lzma"):
            base = os.path.basename(name)[: -len(".lzma")]
            sub = "bin" if base == "milvus" else "lib"
            out = os.path.join(dest, sub, base)
            with z.open(info) as src, open(out + ".tmp", "wb") as dst:
                dst.write(lzma.decompress(src.read()))
            os.chmod(out + ".tmp", 0o755)
            os.replace(out + ".tmp", out)
        elif name in ("milvus/data/config.yaml.template", "milvus/data/glog.conf"):
            with z.open(info) as src, open(os.path.join(dest, os.path.basename(name)), "wb") as dst:
                dst.write(src.read())
PY
