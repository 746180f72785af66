#!/usr/bin/env bash
# Create/update .venv with the dev tools (scripts/install.sh dev), then lint (ruff), type-check (mypy) and run the
# test suite.  Arguments go to pytest, e.g. `bash scripts/test.sh tests/test_bounds.py -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
py=.venv/bin/python
echo "[test] ruff check ."
"$py" -m ruff check .
echo "[test] mypy"
"$py" -m mypy
echo "[test] pytest -n 2 --hypothesis-profile=ci $*"
"$py" -m pytest -n 2 --hypothesis-profile=ci "$@"
