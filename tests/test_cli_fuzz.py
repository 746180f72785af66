"""Fuzzing the console scripts as a hostile user would: every ``ertheory`` sub-command, and ``ertrain train``
on damaged data files and mismatched data options or models.

Every case runs ``python -m ertheory.cli`` (or ``ertrain.cli``) in a fresh, empty working directory, in a
child process with a wall-clock timeout and a memory cap (see :func:`memory_cap`), and must end in one of
two ways:

* exit status 0 with sane output: JSON that parses (no NaN or infinity) when ``--json`` was asked,
  some text otherwise, and nothing on stderr;
* exit status 2 with exactly one line on stderr, ``<script>...: error: ...``;

never a traceback, never a hang, and nothing written outside ``--out`` (the working directory must stay
empty unless ``--out`` points into it).  Hypothesis draws flags for every sub-command (mostly valid values,
sometimes one hostile token); a table adds the hostile cases met in practice.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

#: Wall-clock seconds one command may take.
TIMEOUT_S = 60
#: Private writable memory a command may take beyond what the interpreter with numpy and torch loaded takes.
HEADROOM = 2 * 2**30
#: What a bare ``import numpy, torch`` child reports as its private writable memory (``VmData``, kB).
BASELINE_CODE = (
    "import numpy\n"
    "try:\n    import torch\nexcept ImportError:\n    pass\n"
    "print(next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmData:')))"
)

#: Tokens a hostile user types where a number belongs.
HOSTILE = ("0", "-1", "-1e-3", "1e9", "99999999999999999999", "1e308", "nan", "inf", "-inf", "", "abc", "1e-400",
           "0.0", "1.5", "2**10", "--json")


@dataclass(frozen=True)
class Outcome:
    script: str
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    created: tuple[str, ...]  # paths created in the working directory, outside --out


@functools.cache
def memory_cap() -> int:
    """The children's ``RLIMIT_DATA`` in bytes: the private writable memory (heap and anonymous maps) of a bare
    ``import numpy, torch`` in this environment, plus :data:`HEADROOM`.

    The cap counts what a runaway size really allocates, and not the shared libraries mapped read-only: an
    address-space cap (``RLIMIT_AS``) of a few GiB cannot even load a CUDA build of torch, whose libraries map
    several GiB, while the CPU build maps well under one.  Where ``/proc`` is absent the baseline is 1 GiB.
    """
    try:
        done = subprocess.run([sys.executable, "-c", BASELINE_CODE], capture_output=True, text=True, timeout=120,
                              check=True)
        baseline = int(done.stdout.split()[-1]) * 1024
    except (subprocess.SubprocessError, ValueError, IndexError):
        baseline = 2**30
    return baseline + HEADROOM


def _limit_child(cap: int) -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_ertheory(argv: list[str], workdir: Path, scratch: Path, script: str = "ertheory") -> Outcome:
    """Run ``<script> argv`` in ``workdir`` (empty); report its exit, output and the files it created."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MPLBACKEND="Agg", MPLCONFIGDIR=str(scratch / "mpl"), TMPDIR=str(scratch), HOME=str(scratch),
               PYTHONWARNINGS="default", COLUMNS="120")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"{script}.cli", *argv], cwd=workdir, env=env, capture_output=True, text=True,
            timeout=TIMEOUT_S, preexec_fn=functools.partial(_limit_child, memory_cap()), stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} {' '.join(argv)!r} did not finish within {TIMEOUT_S} s")
    out = _out_dir(argv, workdir)
    created = tuple(
        str(p.relative_to(workdir)) for p in sorted(workdir.rglob("*"))
        if out is None or not (p == out or out in p.parents or p in out.parents)
    )
    return Outcome(script, tuple(argv), proc.returncode, proc.stdout, proc.stderr, created)


def _out_dir(argv: list[str], workdir: Path) -> Path | None:
    if "--out" not in argv or argv.index("--out") + 1 >= len(argv) or not argv[argv.index("--out") + 1]:
        return None
    return (workdir / argv[argv.index("--out") + 1]).resolve()


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} in JSON output")


def check_contract(o: Outcome, sanity: Callable[[dict[str, Any]], None] | None = None) -> None:
    """The promise of the module docstring."""
    shown = (f"{o.script} {' '.join(o.argv)!r}: exit {o.returncode}\n"
             f"stdout: {o.stdout[-2000:]}\nstderr: {o.stderr[-4000:]}")
    assert "Traceback" not in o.stderr, shown
    assert not o.created, f"{shown}\nwrote outside --out: {o.created}"
    if o.returncode == 0:
        assert o.stderr == "", shown
        assert o.stdout.strip(), shown
        if "--json" in o.argv and "--help" not in o.argv and "--version" not in o.argv:
            obj = json.loads(o.stdout, parse_constant=_reject_constant)
            assert isinstance(obj, dict), shown
            if sanity is not None:
                sanity(obj)
        return
    assert o.returncode == 2, shown
    lines = o.stderr.splitlines()
    assert len(lines) == 1, shown
    assert lines[0].startswith(o.script) and ": error: " in lines[0], shown


@pytest.fixture()
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "work"
    scratch = tmp_path / "scratch"
    work.mkdir()
    scratch.mkdir()
    return work, scratch


# ---------------------------------------------------------------------------------------------- sanity checks


def bounds_sane(obj: dict[str, Any]) -> None:
    layers = obj["layers"]
    for row in layers:
        assert row["width"] == row["q_int"] * row["n_T"] >= row["n_T"] >= 1
        assert row["q"] >= 1.0
    assert obj["total_source_neurons"] == sum(row["width"] for row in layers)


def slt_sane(obj: dict[str, Any]) -> None:
    if "success_rate" in obj:
        rates = obj["success_rate"]
        assert isinstance(rates, list) and all(0.0 <= r <= 1.0 for r in rates)
    else:
        assert obj["success"] == all(b <= obj["epsilon"] for b in obj["bound"])
        assert obj["sup_error"] <= max(obj["bound"]) + 1e-9


# ---------------------------------------------------------------------------------------------- strategies


Flags = list[tuple[str, list[str]]]


def fmt(x: float) -> str:
    return repr(float(x)) if isinstance(x, float) else str(x)


def floats(lo: float, hi: float) -> st.SearchStrategy[str]:
    return st.floats(min_value=lo, max_value=hi, allow_nan=False).map(fmt)


def ints(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(min_value=lo, max_value=hi).map(str)


@st.composite
def with_hostility(draw: st.DrawFn, flags: Flags, command: str) -> list[str]:
    """``flags`` as an argv, with one value replaced by a hostile token in about half of the examples."""
    hostile: bool = draw(st.booleans())
    if flags and hostile:
        k = draw(st.integers(0, len(flags) - 1))
        name, values = flags[k]
        if values:
            j = draw(st.integers(0, len(values) - 1))
            values = [*values[:j], draw(st.sampled_from(HOSTILE)), *values[j + 1:]]
        else:
            values = [draw(st.sampled_from(HOSTILE))]
        flags = [*flags[:k], (name, values), *flags[k + 1:]]
    argv = [command]
    for name, values in flags:
        argv += [name, *values]
    if draw(st.booleans()):
        argv.append("--json")
    return argv


def density_flag(draw: st.DrawFn, layers: int, top: float = 1.0) -> tuple[str, list[str]]:
    """``--density`` in [0.02, top] or ``--sparsity`` in [1 - top, 0.98], one value or one per layer."""
    count = draw(st.sampled_from([1, layers]))
    if draw(st.booleans()):
        return "--density", [draw(floats(0.02, top)) for _ in range(count)]
    return "--sparsity", [draw(floats(1.0 - top, 0.98)) for _ in range(count)]


@st.composite
def bounds_argv(draw: st.DrawFn) -> list[str]:
    flags: Flags = []
    if draw(st.integers(0, 4)) == 0:
        L = draw(st.integers(1, 3))
        flags += [("--conv", []), ("--channels", [draw(ints(1, 64)) for _ in range(L + 1)]),
                  ("--kernel", [draw(st.sampled_from(["1", "9", "3x3", "5x5"])) for _ in range(L)])]
    else:
        widths = [draw(ints(1, 10**6)) for _ in range(draw(st.integers(2, 5)))]
        L = len(widths) - 1
        flags.append(("--target", widths))
        if draw(st.integers(0, 3)) == 0:
            flags += [("--theorem", ["2.5"]), ("--epsilon", [draw(floats(1e-4, 0.5))]),
                      ("--gamma", [draw(floats(0.01, 2.0))]), ("--C", [draw(floats(0.1, 10.0))])]
    flags.append(density_flag(draw, L))
    if draw(st.booleans()):
        flags.append(("--delta", [draw(floats(1e-9, 0.5))]))
    if draw(st.booleans()):
        flags.append(("--recursion", [draw(st.sampled_from(["integer", "real"]))]))
    return draw(with_hostility(flags, "bounds"))


@st.composite
def slt_argv(draw: st.DrawFn) -> list[str]:
    flags: Flags = [("--target", [draw(ints(1, 2)), draw(ints(1, 3)), draw(ints(1, 2))])]
    flags.append(("--density", [draw(floats(0.3, 1.0))]) if draw(st.booleans()) else
                 ("--sparsity", [draw(floats(0.0, 0.7))]))
    flags.append(("--epsilon", [draw(floats(0.02, 0.5))]))
    flags.append(("--max-values", [draw(ints(1, 10))]))
    flags.append(("--seed", [draw(ints(0, 2**32))]))
    if draw(st.booleans()):
        flags += [("--sweep", [draw(ints(1, 12)) for _ in range(draw(st.integers(1, 2)))]), ("--draws", ["1"])]
    else:
        flags.append(("--q", [draw(ints(1, 24))]))
    return draw(with_hostility(flags, "slt"))


@st.composite
def exact_argv(draw: st.DrawFn) -> list[str]:
    widths = [draw(ints(1, 4)) for _ in range(draw(st.integers(2, 3)))]
    flags: Flags = [("--target", widths), density_flag(draw, len(widths) - 1)]
    if draw(st.booleans()):
        flags.append(("--delta", [draw(floats(1e-4, 0.5))]))
    if draw(st.booleans()):
        flags.append(("--no-tight", []))
    return draw(with_hostility(flags, "exact"))


@st.composite
def simulate_argv(draw: st.DrawFn) -> list[str]:
    widths = [draw(ints(1, 4)) for _ in range(draw(st.integers(2, 3)))]
    flags: Flags = [("--target", widths), density_flag(draw, len(widths) - 1, top=0.99),
                    ("--trials", [draw(ints(1, 2000))]), ("--seed", [draw(ints(0, 10**6))]),
                    ("--sampler", [draw(st.sampled_from(["counts", "masks"]))])]
    if draw(st.booleans()):
        flags.append(("--confidence", [draw(floats(0.5, 0.999))]))
    return draw(with_hostility(flags, "simulate"))


@st.composite
def lower_bound_argv(draw: st.DrawFn) -> list[str]:
    flags: Flags = [("--inputs", [draw(ints(1, 40))]),
                    ("--density", [draw(floats(0.05, 0.99))]) if draw(st.booleans()) else
                    ("--sparsity", [draw(floats(0.01, 0.9))]),
                    ("--delta", [draw(floats(1e-3, 0.5))])]
    if draw(st.booleans()):
        flags += [("--trials", [draw(ints(1, 2000))]), ("--seed", [draw(ints(0, 10**6))]),
                  ("--sampler", [draw(st.sampled_from(["counts", "masks"]))])]
    return draw(with_hostility(flags, "lower-bound"))


@st.composite
def subset_sum_argv(draw: st.DrawFn) -> list[str]:
    if draw(st.booleans()):
        flags: Flags = [("--values", [draw(floats(-1.0, 1.0)) for _ in range(draw(st.integers(1, 12)))])]
    else:
        flags = [("--random", [draw(ints(1, 24))]), ("--density", [draw(floats(0.2, 1.0))]),
                 ("--seed", [draw(ints(0, 10**6))])]
    if draw(st.booleans()):
        flags += [("--coverage", []), ("--epsilon", [draw(floats(0.01, 0.5))])]
    else:
        flags.append(("--target", [draw(floats(-2.0, 2.0)) for _ in range(draw(st.integers(1, 3)))]))
    return draw(with_hostility(flags, "subset-sum"))


@st.composite
def figure2_argv(draw: st.DrawFn) -> list[str]:
    flags: Flags = [("--out", ["out"]), ("--points", [draw(ints(2, 60))]),
                    ("--max-sparsity", [draw(floats(0.5, 0.99))]), ("--hidden", [draw(ints(1, 256))])]
    return draw(with_hostility(flags, "figure2"))


def has_dense_layer(argv: list[str]) -> bool:
    """Whether ``argv`` asks for a layer of density 1 (``--density 1`` or ``--sparsity 0``)."""
    dense = {"--density": 1.0, "--sparsity": 0.0}
    flag = None
    for token in argv:
        if token.startswith("--") and not token[2:3].isdigit():
            flag = token
            continue
        try:
            if flag in dense and float(token) == dense[flag]:
                return True
        except ValueError:
            pass
    return False


#: ``simulate`` and ``lower-bound`` are drawn without dense layers (density 1).
STRATEGIES: dict[str, tuple[st.SearchStrategy[list[str]], Callable[[dict[str, Any]], None] | None]] = {
    "bounds": (bounds_argv(), bounds_sane),
    "slt": (slt_argv(), slt_sane),
    "exact": (exact_argv(), None),
    "simulate": (simulate_argv().filter(lambda a: not has_dense_layer(a)), None),
    "lower-bound": (lower_bound_argv().filter(lambda a: not has_dense_layer(a)), None),
    "subset-sum": (subset_sum_argv(), None),
    "figure2": (figure2_argv(), None),
}


@pytest.mark.parametrize("command", sorted(STRATEGIES))
def test_fuzzed_flags_keep_the_contract(command: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    strategy, sanity = STRATEGIES[command]

    @settings(max_examples=5, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(argv=strategy)
    def check(argv: list[str]) -> None:
        base = tmp_path_factory.mktemp(command)
        work, scratch = base / "work", base / "scratch"
        work.mkdir()
        scratch.mkdir()
        check_contract(run_ertheory(argv, work, scratch), sanity)

    check()


# ---------------------------------------------------------------------------------------------- hostile table

#: Hostile command lines (``{file}``: an existing file in the working directory) and the exit they must give.
HOSTILE_CASES: list[tuple[list[str], int]] = [
    # the script itself
    ([], 2),
    (["nosuch"], 2),
    (["--version"], 0),
    (["bounds"], 2),
    (["bounds", "--target", "4", "3", "--density", "0.5", "--debug"], 0),
    # bounds: widths that do not fit, densities and deltas out of range, negative numbers as values
    (["bounds", "--target", "99999999999999999999", "10", "--density", "0.5"], 2),
    (["bounds", "--target", "4503599627370496", "10", "--density", "0.5", "--json"], 2),
    (["bounds", "--target", "100000000000", "100000000000", "10", "--density", "0.5", "--json"], 0),
    (["bounds", "--target", "784", "128", "10", "--density", "1e-300"], 2),
    (["bounds", "--target", "784", "128", "10", "--density", "nan"], 2),
    (["bounds", "--target", "784", "128", "10", "--density", "-1e-3"], 2),
    (["bounds", "--target", "784", "128", "10", "--sparsity", "1"], 2),
    (["bounds", "--target", "784", "128", "10", "--density", "0.5", "--delta", "0"], 2),
    (["bounds", "--target", "784", "128", "10", "--density", "0.5", "--delta", "1e-320"], 0),
    (["bounds", "--target", "784", "--density", "0.5"], 2),
    (["bounds", "--target", "784", "128", "10", "--density", "0.5", "--m-T", "0", "5"], 2),
    (["bounds", "--conv", "--channels", "3", "16", "--kernel", "0", "--density", "0.5"], 2),
    (["bounds", "--conv", "--channels", "3", "16", "--kernel", "3x", "--density", "0.5"], 2),
    (["bounds", "--target", "5", "4", "2", "--density", "0.5", "--theorem", "2.5", "--epsilon", "0.1",
      "--gamma", "1e308"], 2),
    (["bounds", "--target", "5", "4", "2", "--density", "0.5", "--theorem", "2.5", "--epsilon", "0.1",
      "--C", "1e308"], 2),
    (["bounds", "--target", "5", "4", "2", "--density", "1e-300", "--theorem", "2.5", "--epsilon", "0.1"], 2),
    # slt: runaway sizes, zero draws, negative seeds, out-of-range tolerances
    (["slt", "--q", "100000000"], 2),
    (["slt", "--target", "1000000000000000", "1", "1"], 2),
    (["slt", "--sweep", "4", "--draws", "0"], 2),
    (["slt", "--seed", "-1"], 2),
    (["slt", "--epsilon", "0"], 2),
    (["slt", "--epsilon", "nan"], 2),
    (["slt", "--density0", "0"], 2),
    (["slt", "--max-values", "41"], 2),
    (["slt", "--delta", "1"], 2),
    (["slt", "--q", "4", "--max-memory", "1KiB"], 2),
    (["slt", "--q", "4", "--max-memory", "lots"], 2),
    # commands of the other modules: negative seeds and sizes far beyond int64
    (["simulate", "--target", "4", "3", "1", "--density", "0.5", "--trials", "10", "--seed", "-1"], 2),
    (["lower-bound", "--inputs", "3", "--density", "0.5", "--trials", "10", "--seed", "-3"], 2),
    (["lower-bound", "--inputs", "99999999999999999999", "--density", "0.5"], 2),
    (["subset-sum", "--random", "5", "--density", "0.5", "--seed", "-1"], 2),
    (["subset-sum", "--values", "0.5", "-1e-3", "0.25", "--target", "0.2", "--json"], 0),
    (["exact", "--target", "4", "3", "1", "--density", "0.5", "--delta", "-1e-3"], 2),
    # runaway sizes of the other modules (refused by an estimate, or by the allocator under the memory cap)
    (["simulate", "--target", "100000", "100000", "1", "--density", "0.5", "--sampler", "masks", "--trials", "10"], 2),
    (["lower-bound", "--inputs", "100000", "--density", "0.01", "--sampler", "masks", "--trials", "1000"], 2),
    (["subset-sum", "--random", "1000000000"], 2),
    # figure2: sizes and output paths
    (["figure2", "--out", "out", "--points", "1e9"], 2),
    (["figure2", "--out", "out", "--points", "1000000000"], 2),
    (["figure2", "--out", "out", "--max-sparsity", "0"], 2),
    (["figure2", "--out", ""], 2),
    (["figure2", "--out", "{file}"], 2),
    (["figure2", "--out", "{file}/sub"], 2),
]


@pytest.mark.parametrize(("argv", "status"), HOSTILE_CASES, ids=[" ".join(a) or "(none)" for a, _ in HOSTILE_CASES])
def test_hostile_cases(argv: list[str], status: int, dirs: tuple[Path, Path]) -> None:
    work, scratch = dirs
    existing = scratch / "existing.txt"
    existing.write_text("keep me\n")
    argv = [a.replace("{file}", str(existing)) for a in argv]
    outcome = run_ertheory(argv, work, scratch)
    sanity = bounds_sane if argv[:1] == ["bounds"] else slt_sane if argv[:1] == ["slt"] else None
    check_contract(outcome, sanity)
    assert outcome.returncode == status, outcome
    assert existing.read_text() == "keep me\n"


# ---------------------------------------------------------------------------------------------- the cap itself


def _under_cap(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT_S,
                          preexec_fn=functools.partial(_limit_child, memory_cap()), stdin=subprocess.DEVNULL)


def test_the_cap_admits_torch_and_refuses_a_runaway_allocation() -> None:
    """Under the children's cap torch (whichever build is installed) loads and 256 MiB can be used, while an
    allocation the size of the cap fails with ``MemoryError`` instead of taking the machine's memory."""
    pytest.importorskip("torch")
    assert memory_cap() > HEADROOM
    fits = _under_cap("import numpy, torch\nb = bytearray(256 * 2**20); b[::4096] = b'x' * len(b[::4096])\n"
                      "print(torch.ones(3).sum().item())")
    assert fits.returncode == 0 and fits.stdout.strip() == "3.0", fits.stderr[-2000:]
    runaway = _under_cap(f"import numpy, torch\nb = bytearray({memory_cap()})")
    assert runaway.returncode == 1 and "MemoryError" in runaway.stderr, runaway.stderr[-2000:]


# ---------------------------------------------------------------------------------------------- ertrain: data

TRAIN = ["train", "--model", "mlp", "--dataset", "fashion-mnist", "--sparsity", "0.5", "--epochs", "1",
         "--device", "cpu", "--out", "runs"]


def _damaged(kind: str, root: Path) -> None:
    from fashion_files import corrupt_deflate, truncate, write_fashion

    write_fashion(root, n_train=0 if kind == "empty" else 12, test_item=(16, 49) if kind == "shape" else (28, 28))
    if kind == "truncated":
        truncate(root / "t10k-images-idx3-ubyte.gz")
    if kind == "deflate":
        corrupt_deflate(root / "train-images-idx3-ubyte.gz")


#: ``ertrain`` command lines (``{data}``: a Fashion-MNIST folder damaged as the case's name says) that must be
#: refused with one line before a run directory is made (more option faults: tests/test_data_faults.py).
DATA_CASES: dict[str, list[str]] = {
    "empty": [*TRAIN, "--data-dir", "{data}"],
    "shape": [*TRAIN, "--data-dir", "{data}"],
    "truncated": [*TRAIN, "--data-dir", "{data}"],
    "deflate": [*TRAIN, "--data-dir", "{data}"],
    "limit-zero": [*TRAIN, "--data-dir", "{data}", "--data-options", '{"limit_train": 0}'],
    "mistyped-option": [*TRAIN, "--data-dir", "{data}", "--data-options", '{"limit_trian": 5}'],
    "absent": [*TRAIN, "--data-dir", "{data}/nowhere"],
    "graph-model-on-images": ["train", "--model", "gcn", "--dataset", "digits", "--sparsity", "0.5", "--epochs", "1",
                              "--device", "cpu", "--out", "runs"],
    "image-model-on-graph": ["train", "--model", "mlp", "--dataset", "synthetic-citation", "--sparsity", "0.5",
                             "--epochs", "1", "--device", "cpu", "--out", "runs"],
    "teacher-1e10": ["train", "--model", "mlp", "--dataset", "teacher", "--data-options", '{"n_train": 10000000000}',
                     "--sparsity", "0.5", "--epochs", "1", "--device", "cpu", "--out", "runs"],
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_is_refused_before_any_run_directory(case: str, dirs: tuple[Path, Path]) -> None:
    work, scratch = dirs
    data = scratch / "fashion"
    _damaged(case, data)
    argv = [a.replace("{data}", str(data)) for a in DATA_CASES[case]]
    outcome = run_ertheory(argv, work, scratch, script="ertrain")
    check_contract(outcome)
    assert outcome.returncode == 2, outcome
    assert not (work / "runs").exists(), outcome
