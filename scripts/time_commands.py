"""Time the README's two commands on this machine, cold and warm; write ``results/readme/command_times.json``.

Each command runs twice in its own fresh clone of HEAD (a temporary folder, removed afterwards): cold (no
``.venv`` yet: it is created and everything installed; pip's download cache as this user has it) and warm (the
same command again, nothing left to install).  ``scripts/readme_numbers.py`` quotes the file in the README.

    python3 scripts/time_commands.py                                   # the whole test suite (20-35 min on 2 cores)
    python3 scripts/time_commands.py --tests tests/test_cli_help.py    # the test command on these files only
    python3 scripts/time_commands.py --pypi                            # pip without this machine's configuration
    python3 scripts/time_commands.py --commands main                   # one command (the other's entry is kept)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "readme" / "command_times.json"
MAIN = ("bash", "scripts/main.sh")
TEST = ("bash", "scripts/test.sh")
#: What ``scripts/main.sh`` prints when it trains on the bundled digits instead of Fashion-MNIST.
DIGITS_LINE = "Fashion-MNIST not found"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment(pypi: bool) -> dict[str, str]:
    """This process's environment; with ``pypi``, pip reads no configuration file and no ``PIP_*`` variable."""
    env = dict(os.environ)
    if pypi:
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
    return env


def timed(argv: Sequence[str], clone: Path, env: dict[str, str], log: Path) -> tuple[float, str]:
    """Run ``argv`` in ``clone``; its wall seconds and output (a failure raises ``RuntimeError``)."""
    print(f"[time_commands] {' '.join(argv)} in {clone}", flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(list(argv), cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - t0
    with log.open("a") as fh:
        fh.write(done.stdout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed with exit status {done.returncode}; output in {log}")
    return seconds, done.stdout


def cold_and_warm(argv: Sequence[str], base: Path, name: str, env: dict[str, str]) -> dict[str, Any]:
    clone = base / name
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    log = base / f"{name}.log"
    cold, out = timed(argv, clone, env, log)
    warm, _ = timed(argv, clone, env, log)
    torch = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return {"argv": " ".join(argv), "cold_s": round(cold, 1), "warm_s": round(warm, 1), "torch": torch,
            "first_output": out}


def measure(commands: Sequence[str], tests: Sequence[str], pypi: bool) -> dict[str, Any]:
    """Time ``commands`` (``main``, ``test``); the results file's record of them and of this machine."""
    env = environment(pypi)
    load = os.getloadavg()[0]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    base = Path(tempfile.mkdtemp(prefix="ertoolkit-times-"))
    timed_commands: dict[str, dict[str, Any]] = {}
    try:
        for name in commands:
            argv = MAIN if name == "main" else (*TEST, *tests)
            timed_commands[name] = record = cold_and_warm(argv, base, name, env)
            first = record.pop("first_output")
            if name == "main":
                record["dataset"] = "digits" if DIGITS_LINE in first else "fashion-mnist"
            else:
                record["tests"] = list(tests) or "all"
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for record in timed_commands.values():
        record.update(commit=commit, date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
                      machine={"cpus": os.cpu_count(), "cpu": cpu_model(), "load_before": round(load, 2),
                               "python": platform.python_version()},
                      pip="PyPI (no pip configuration)" if pypi else "this machine's pip configuration")
    return timed_commands


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", nargs="+", choices=("main", "test"), default=["main", "test"],
                        help="which commands to time (default both); the results file keeps the others' entries")
    parser.add_argument("--tests", nargs="+", default=[], metavar="PATH",
                        help="the test command's pytest arguments: these test files only (default: the whole suite)")
    parser.add_argument("--pypi", action="store_true", help="pip without this machine's configuration (PyPI)")
    parser.add_argument("--out", default=str(OUT), help=f"the results file (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    missing = [t for t in args.tests if not (ROOT / t.split("::")[0]).is_file()]
    if missing:
        sys.stderr.write(f"time_commands: error: --tests {missing[0]!r} is not a test file of {ROOT}\n")
        return 2
    out = Path(args.out)
    try:
        measured = measure(args.commands, args.tests, args.pypi)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        sys.stderr.write(f"time_commands: error: {exc}\n")
        return 1
    data = json.loads(out.read_text()) if out.is_file() else {"commands": {}}
    data["commands"].update(measured)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(out)
    for record in measured.values():
        print(f"[time_commands] {out}: {record['argv']}: {record['cold_s']} s cold, {record['warm_s']} s warm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
