#!/usr/bin/env bash
# The main job: create/update .venv (scripts/install.sh), regenerate the figures into figures/out/ (only those whose
# inputs changed), and train a small sparse network into runs/ (a finished run is returned from its directory).
# Fashion-MNIST when it is present (Debian's location or ~/.cache/ertoolkit/fashion-mnist), else the bundled digits.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
py=.venv/bin/python

echo "[main] figures into figures/out/ (a figure is recomputed only when its inputs changed)"
"$py" figures/make_all.py

# Fashion-MNIST where the loader looks for it (Debian's location, then ~/.cache/ertoolkit/fashion-mnist).
fashion_dir=$("$py" -c '
from ertrain.data.idx import find_files
try:
    print(find_files(None)[0])
except ValueError:
    pass
')
if [ -n "$fashion_dir" ]; then
  echo "[main] training an MLP on Fashion-MNIST ($fashion_dir): balanced ER mask at sparsity 0.9, 3 epochs"
  "$py" -m ertrain.cli train --model mlp --dataset fashion-mnist --density-scheme balanced --sparsity 0.9 \
    --epochs 3 --seed 0 --out runs/
else
  echo "[main] Fashion-MNIST not found: training on the bundled digits data instead (README, section Data: how to get Fashion-MNIST)"
  "$py" -m ertrain.cli train --model mlp --dataset digits --density-scheme balanced --sparsity 0.9 \
    --epochs 20 --seed 0 --out runs/
fi
echo "[main] done"
