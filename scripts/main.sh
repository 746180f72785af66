#!/usr/bin/env bash
# The main job: install, regenerate every figure into figures/out/, run a small real training run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python3 figures/make_all.py
