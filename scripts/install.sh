#!/usr/bin/env bash
# Create the project's virtual environment (.venv) when it is missing and install ertoolkit into it.
#   bash scripts/install.sh          the packages, the training extras and the compiled kernels (numba)
#   bash scripts/install.sh dev      also the test and lint tools
# Nothing is installed again when pyproject.toml, the extras and the torch spec are unchanged since the last
# install (a stamp inside .venv holds their hash).  Works as any user on a system Python that refuses global
# installs (PEP 668): everything goes into .venv.
# Environment:
#   ERTOOLKIT_PYTHON   interpreter that creates .venv (default: the first python3 >= 3.10 on PATH)
#   ERTOOLKIT_TORCH    pip arguments for torch (default torch==2.13.0; e.g. a CUDA build on a GPU machine, or
#                      'torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu' for PyPI's CPU build)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[install] %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 2; }

case "${1:-}" in
  "") extras="train,cluster,fast" ;;
  dev) extras="train,cluster,fast,dev" ;;
  *) die "unknown argument '${1}'; valid: none (packages + training extras) or 'dev' (also test and lint tools)" ;;
esac
venv=.venv
torch_spec=${ERTOOLKIT_TORCH:-torch==2.13.0}

# A Python >= 3.10 that can create virtual environments (Debian's needs the python3-venv package for that).
usable() { "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; }
find_python() {
  if [ -n "${ERTOOLKIT_PYTHON:-}" ]; then
    usable "$ERTOOLKIT_PYTHON" || die "ERTOOLKIT_PYTHON='$ERTOOLKIT_PYTHON' is not a Python >= 3.10 with venv and ensurepip"
    printf '%s\n' "$ERTOOLKIT_PYTHON"
    return
  fi
  local candidate
  for candidate in python3 python3.13 python3.12 python3.11 python3.10 python; do
    if command -v "$candidate" >/dev/null 2>&1 && usable "$candidate"; then
      command -v "$candidate"
      return
    fi
  done
  die "no Python >= 3.10 with the venv module found on PATH (on Debian/Ubuntu: apt-get install python3-venv; or set ERTOOLKIT_PYTHON)"
}

if [ -x "$venv/bin/python" ]; then
  "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1 \
    || die "$venv exists but $venv/bin/python is not a working Python >= 3.10; remove $venv and run this again"
else
  [ -e "$venv" ] && die "$venv exists but holds no Python; remove it and run this again"
  base=$(find_python)
  say "creating the virtual environment $venv with $("$base" -c 'import sys; print(sys.version.split()[0])') ($base)"
  "$base" -m venv "$venv" || die "could not create $venv with $base"
fi
py="$venv/bin/python"

stamp="$venv/ertoolkit-install-${extras//,/-}.sha256"
want=$("$py" - "$extras" "$torch_spec" <<'EOF'
import hashlib, sys
digest = hashlib.sha256(open("pyproject.toml", "rb").read())
digest.update("\0".join([sys.version, *sys.argv[1:]]).encode())
print(digest.hexdigest())
EOF
)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "$venv is up to date (pyproject.toml, extras [$extras] and torch spec unchanged)"
else
  log="$venv/pip-install.log"
  pip_install() {
    if ! "$py" -m pip install --quiet --progress-bar off "$@" >>"$log" 2>&1; then
      tail -n 20 "$log" >&2
      die "pip install $* failed; full log in $log"
    fi
  }
  : >"$log"
  # torch first: an unpinned torch from the extras would pull a multi-GB CUDA build.
  if [ -n "${ERTOOLKIT_TORCH:-}" ] || ! "$py" -c "import torch" >/dev/null 2>&1; then
    say "installing $torch_spec into $venv (the largest download, a few minutes the first time)"
    # shellcheck disable=SC2086  # the spec may carry pip options, e.g. --index-url
    pip_install $torch_spec
  fi
  say "installing ertoolkit[$extras] (editable) and its dependencies into $venv"
  pip_install -e ".[$extras]"
  # Fashion-MNIST (gzipped IDX files) from Debian's package, only as root with apt-get (tried at install time
  # only, so an offline machine does not retry on every run); anyone else: see the README's section "Data".
  if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's dataset-fashion-mnist (apt-get)"
    (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
     (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) || \
     say "could not install dataset-fashion-mnist; the README's section 'Data' says how to get Fashion-MNIST"
  fi
  printf '%s\n' "$want" >"$stamp"
  say "done ($venv)"
fi
