"""The README's two commands, replayed as a new user would run them.

In a fresh clone of the committed tree, as a user who is not root (created with ``useradd`` when needed), with
no Fashion-MNIST anywhere the loader looks (an empty cache folder, and Debian's folder hidden behind an empty
``tmpfs`` in a private mount namespace when it exists): ``bash scripts/main.sh`` creates ``.venv`` itself and
succeeds (training on the bundled digits data and saying so), ``bash scripts/test.sh`` (with one small test file as
its pytest arguments, a form the README documents) succeeds, the clone's ``git status --porcelain`` stays empty, and
a second ``bash scripts/main.sh`` takes under a quarter of the first one's time.  Packages come from the machine's
configured indexes and wheel folders (pip's own settings), so nothing is downloaded twice needlessly.

It needs root (to create the user and hide the data); outside CI it is skipped when that cannot be done, under
``CI=true`` it fails instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER = "ertoolkit-replay"
DEBIAN_DATA = Path("/usr/share/datasets")
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def cannot(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"the replay cannot run under CI: {reason}")
    pytest.skip(reason)


def ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True, capture_output=True)
        return pwd.getpwnam(USER)


@pytest.fixture
def clone() -> Iterator[tuple[Path, pwd.struct_passwd]]:
    if os.geteuid() != 0:
        cannot("needs root to create a user and hide the data")
    missing = [tool for tool in ("git", "runuser", "useradd", "unshare", "mount") if shutil.which(tool) is None]
    if missing:
        cannot(f"missing tools: {', '.join(missing)}")
    user = ensure_user()
    base = Path(tempfile.mkdtemp(prefix="ertoolkit-replay-", dir="/tmp"))
    base.chmod(0o755)
    try:
        repo = base / "ertoolkit"
        subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(repo)], check=True)
        (base / "cache").mkdir()
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(base)], check=True)
        yield repo, user
    finally:
        shutil.rmtree(base, ignore_errors=True)


def as_user(user: pwd.struct_passwd, repo: Path, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``repo`` as ``user`` with a plain environment; Debian's data folder hidden if present."""
    env = {
        "PATH": SAFE_PATH, "HOME": user.pw_dir, "USER": user.pw_name, "LANG": "C.UTF-8",
        "XDG_CACHE_HOME": str(repo.parent / "cache"), "MPLBACKEND": "Agg",
        **{k: v for k, v in os.environ.items() if k.startswith("PIP_") or k == "CI"},
    }
    inner = ["runuser", "-u", user.pw_name, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
             "bash", "-c", f"cd {repo} && {command}"]
    if DEBIAN_DATA.exists():
        script = f"mount -t tmpfs tmpfs {DEBIAN_DATA} && exec \"$@\""
        inner = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *inner]
    return subprocess.run(inner, capture_output=True, text=True, timeout=timeout)


def check(done: subprocess.CompletedProcess[str], what: str) -> None:
    assert done.returncode == 0, f"{what} failed with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.mark.slow
def test_readme_commands_as_a_new_user(clone: tuple[Path, pwd.struct_passwd]) -> None:
    repo, user = clone
    t0 = time.perf_counter()
    first = as_user(user, repo, "bash scripts/main.sh", timeout=1800)
    first_s = time.perf_counter() - t0
    check(first, "bash scripts/main.sh")
    assert "[install] creating the virtual environment .venv" in first.stdout
    assert "Fashion-MNIST not found" in first.stdout
    assert (repo / ".venv" / "bin" / "python").exists()

    tests = as_user(user, repo, "bash scripts/test.sh tests/test_figure2.py -p no:randomly", timeout=1800)
    check(tests, "bash scripts/test.sh")

    t0 = time.perf_counter()
    second = as_user(user, repo, "bash scripts/main.sh", timeout=600)
    second_s = time.perf_counter() - t0
    check(second, "the second bash scripts/main.sh")
    assert "up to date" in second.stdout
    assert second_s < first_s / 4, f"second run {second_s:.1f} s, first {first_s:.1f} s"

    status = as_user(user, repo, "git status --porcelain", timeout=60)
    check(status, "git status")
    assert status.stdout == "", f"the commands changed tracked files or left untracked ones:\n{status.stdout}"
