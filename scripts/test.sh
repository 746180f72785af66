#!/usr/bin/env bash
# Install with the dev tools, then lint (ruff), type-check (mypy) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
python3 -m ruff check .
python3 -m mypy
python3 -m pytest -n 2 --hypothesis-profile=ci "$@"
