#!/usr/bin/env bash
# Install ertoolkit and its dependencies into the current Python environment.
#   scripts/install.sh            -> the packages + training extras
#   scripts/install.sh dev        -> also the test/lint tools
# torch: a CPU build is installed first when no torch is present (set ERTOOLKIT_TORCH to choose
# another spec, e.g. a CUDA build on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras="train,cluster"
[ "${1:-}" = "dev" ] && extras="train,cluster,dev"
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  "$PY" -m pip install --quiet "${ERTOOLKIT_TORCH:-torch==2.13.0}"
fi
"$PY" -m pip install --quiet -e ".[${extras}]"
# Fashion-MNIST (gzipped IDX files) from Debian's package, when apt is available and we are root.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) || \
   echo "note: could not install Debian's dataset-fashion-mnist; Fashion-MNIST runs need --data-dir" >&2
fi
