#!/usr/bin/env bash
# The main job: install, regenerate every figure into figures/out/, run a small real training run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python3 figures/make_all.py
# A small real training run: an MLP on Fashion-MNIST with a balanced ER mask at sparsity 0.9 (CPU, about a minute).
# A finished run is not re-run: its stored result is printed again.
python3 -m ertrain.cli train --model mlp --dataset fashion-mnist --density-scheme balanced --sparsity 0.9 \
  --epochs 3 --seed 0 --out runs/
