"""README.md: every command of its code blocks runs, and every number it quotes matches its results file.

Commands run in a scratch folder that links the repository's ``configs/`` and figure scripts, with the running
interpreter's ``bin`` first on ``PATH``.  Lines that need a GPU, a SLURM cluster, CIFAR or several processes are
checked as far as a CPU allows: ``--help`` of the exact command line (its flags and choices are parsed up to there)
or the sweep's ``--dry-run``.  The two set-up commands (``bash scripts/main.sh``, ``bash scripts/test.sh``) are
replayed from a fresh clone by ``tests/test_replay.py``.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```", re.S | re.M)

#: Decimal-looking numbers in the README's prose that are inputs or names, not results (theorem numbers,
#: versions, settings of the commands, the paper's arXiv number).
NOT_RESULTS = {
    "2210.02412", "3.10", "2.1", "2.2", "2.3", "2.4", "2.5", "A.4", "A.5", "A.1", "0.5", "0.9", "0.99", "0.1", "0.01",
    "0.001", "0.05", "0.75", "0.95", "1e-9", "5e-4", "10%", "95%",
}
NUMBER = re.compile(
    r"(?<![\w.\-/])(\d{1,3}(?:,\d{3})+|\d+\.\d+|\d+(?:\.\d+)?e-?\d+|\d+(?:\.\d+)?%|\d+(?:\.\d+)?×(?!\d))"
)


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def numbers() -> ModuleType:
    return load("readme_numbers", ROOT / "scripts" / "readme_numbers.py")


def blocks(lang: str) -> list[str]:
    return [m.group("body") for m in FENCE.finditer(README.read_text()) if m.group("lang") == lang]


def bash_lines() -> list[str]:
    """The command lines of the README's bash blocks (comment lines and blank lines dropped)."""
    return [line for body in blocks("bash") for line in body.splitlines() if line.strip() and not line.startswith("#")]


# ------------------------------------------------------------------------------------------------ numbers


def test_every_marked_number_matches_its_results_file(numbers: ModuleType) -> None:
    text = README.read_text()
    filled, changed = numbers.fill(text, numbers.values())
    assert changed == [], f"README.md disagrees with the results files at {changed}: run scripts/readme_numbers.py"
    assert filled == text


def test_the_check_fails_when_a_number_is_edited(numbers: ModuleType, tmp_path: Path) -> None:
    """The check is not vacuous: a hand-edited number is reported."""
    edited = re.sub(r"(<!--n:c1\.alpha-->)[^<]*", r"\g<1>9.99", README.read_text(), count=1)
    path = tmp_path / "README.md"
    path.write_text(edited)
    assert numbers.main(["--check", "--readme", str(path)]) == 1
    assert numbers.main(["--check"]) == 0


def test_every_key_the_script_knows_is_used(numbers: ModuleType) -> None:
    used = {m.group("key") for m in numbers.MARK.finditer(README.read_text())}
    assert used == set(numbers.values()), "a README marker or a generated value lost its counterpart"


def prose(text: str) -> str:
    """The README without code blocks, code spans, marked numbers, HTML comments and link targets."""
    text = FENCE.sub("", text)
    text = re.sub(r"<!--n:[^>]*-->.*?<!--/n-->", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"\]\([^)]*\)|<https?://[^>]*>", "]", text)
    return text


def test_no_unmarked_result_in_the_prose() -> None:
    """A number typed by hand (a result without a marker) fails here; inputs and names are listed above."""
    found = {m.group(1) for m in NUMBER.finditer(prose(README.read_text()))}
    assert found <= NOT_RESULTS, f"numbers without a results file: {sorted(found - NOT_RESULTS)}"


@pytest.mark.slow
def test_theory_results_are_what_the_code_computes(numbers: ModuleType) -> None:
    """``results/readme/theory.json`` recomputed now (the tighter construction at sparsity 0.99 is the slow part)."""
    import json

    committed = json.loads((numbers.RESULTS / "theory.json").read_text())
    assert _close(numbers.compute_theory(), committed)


def test_figure2_copy_is_what_the_code_computes(numbers: ModuleType) -> None:
    """The committed ``docs/figures/figure2.csv`` holds the current Theorem 2.1 widths."""
    import csv

    from ertheory.figure2 import compute

    with open(numbers.FIGURES / "figure2.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    data = compute()
    assert [int(r["width"]) for r in rows] == data.width.tolist()
    assert [float(r["q1"]) for r in rows] == pytest.approx(data.q1.tolist(), rel=1e-12)


@pytest.mark.slow
def test_model_and_mask_results_are_what_the_code_computes(numbers: ModuleType) -> None:
    import json

    assert numbers.compute_models() == json.loads((numbers.RESULTS / "models.json").read_text())
    assert _close(numbers.compute_masks(), json.loads((numbers.RESULTS / "masks.json").read_text()), abs_tol=1e-15)


@pytest.mark.slow
def test_a_method_table_run_reproduces(numbers: ModuleType, tmp_path: Path) -> None:
    """The static ER row trains again to the same accuracy (CPU training is deterministic)."""
    import json

    committed = json.loads((numbers.RESULTS / "digits_methods.json").read_text())["rows"][0]["er"]
    again = numbers.train_digits(committed["flags"], tmp_path)
    assert again["test_accuracy"] == committed["test_accuracy"]
    assert again["density"] == pytest.approx(committed["density"], abs=1e-12)


def _close(a: object, b: object, rel_tol: float = 1e-9, abs_tol: float = 0.0) -> bool:
    """Equal structures, floats within tolerance (last-digit differences of another libm are no change)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel_tol, abs_tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, rel_tol, abs_tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=rel_tol,
                                                                                          abs_tol=abs_tol)
    return a == b


# ----------------------------------------------------------------------------------------------- commands


def test_every_command_line_is_valid_bash() -> None:
    """Placeholders such as ``runs/<hash>`` (a redirection) or a literal ``...`` argument do not appear."""
    for line in bash_lines():
        check = subprocess.run(["bash", "-n", "-c", line], capture_output=True, text=True)
        assert check.returncode == 0, f"{line!r}: {check.stderr.strip()}"
        assert "..." not in shlex.split(line, comments=True), line


def how_to_check(words: list[str]) -> str:
    """``replay`` (set-up scripts), ``help`` (CIFAR, DDP, absent Fashion-MNIST), ``dry-run`` (SLURM) or ``run``."""
    if words[:1] == ["bash"]:
        return "replay"
    paper_scale = any(w.endswith("full.toml") for w in words)  # the paper's CIFAR-scale sweeps
    cifar = any(w in words for w in ("cifar10", "cifar100", "tiny-imagenet"))
    if "torch.distributed.run" in words or paper_scale or cifar:
        return "help"  # their data is checked before anything runs, also by a dry run
    if "slurm" in words:
        return "dry-run"
    if "fashion-mnist" in words:
        from ertrain.data.idx import find_files

        try:
            find_files(None)
        except ValueError:
            return "help"
    return "run"


def command_for(line: str) -> str:
    """The shell command that checks ``line``."""
    words = shlex.split(line, comments=True)
    mode = how_to_check(words)
    if mode == "dry-run":
        return f"{line.split('#')[0].rstrip()} --dry-run"
    if mode == "help" and "torch.distributed.run" in words:
        inner = words[words.index("ertrain.cli") + 1:]
        return f"python3 -m torch.distributed.run --help && python3 -m ertrain.cli {shlex.join(inner)} --help"
    if mode == "help":
        return f"{line.split('#')[0].rstrip()} --help"
    return line


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder with the repository's configs and figure scripts, for commands that name them."""
    work = tmp_path_factory.mktemp("readme")
    (work / "configs").symlink_to(ROOT / "configs")
    (work / "figures").mkdir()
    for script in (ROOT / "figures").glob("*.py"):
        (work / "figures" / script.name).symlink_to(script)
    return work


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    env.pop("RUN", None)
    return env


def finished_run(runs: Path) -> Path:
    """A finished run directory under ``runs`` (for the export line's ``$RUN``)."""
    done = sorted(p.parent for p in runs.glob("*/result.json"))
    assert done, f"no finished run under {runs}"
    return done[0]


@pytest.mark.slow
def test_every_bash_command_runs(workspace: Path) -> None:
    env = environment()
    failures = []
    for line in bash_lines():
        words = shlex.split(line, comments=True)
        if how_to_check(words) == "replay":
            continue
        if "$RUN" in line:
            env["RUN"] = str(finished_run(workspace / "runs"))
        cmd = command_for(line)
        done = subprocess.run(["bash", "-c", cmd], cwd=workspace, env=env, capture_output=True, text=True,
                              timeout=900)
        if done.returncode != 0:
            failures.append(f"{cmd}\n  exit {done.returncode}: {done.stderr.strip()[-500:]}")
    assert not failures, "README commands that failed:\n" + "\n".join(failures)
    assert (workspace / "runs" / "smoke").is_dir() and (workspace / "figures" / "out").is_dir()


def test_the_set_up_lines_are_the_replayed_ones() -> None:
    """The README's set-up commands are exactly what ``tests/test_replay.py`` runs."""
    replayed = [line.split("#")[0].strip() for line in bash_lines() if line.startswith("bash ")]
    assert replayed == ["bash scripts/main.sh", "bash scripts/test.sh"]


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_every_python_block_runs(index: int, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(blocks("python")[index])
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=environment(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
