"""The run directory: the only module that knows its files.

``runs_dir/<run hash>/`` holds

=====================  =========================================================================
``config.json``        the run's configuration (written first)
``provenance.json``    package version, git commit, Python/torch/numpy versions, command line, host
``metrics.jsonl``      one JSON record per trained epoch
``checkpoint.pt``      the newest checkpoint; ``checkpoint.prev.pt`` the one before
``result.json``        the result, written atomically and last: its presence means "done"
``error.json``         why the last attempt failed (removed when the run finishes)
``data.json``          the dataset and the fingerprint of its files the run was trained on
``.lock``              held (``flock``) by the process training the run; the kernel releases it
=====================  =========================================================================

A checkpoint file is ``MAGIC + payload + footer``; the payload is the zip archive ``torch.save`` writes
straight into the file, the footer holds ``(payload length, CRC-32, tag)``.  Version 4 (``ERTCKPT4``,
written) relies on the CRC-32 torch's archive stores for every record (switched on for the write if
``torch.serialization.set_crc32_options(False)`` turned it off); the footer's CRC-32 covers the bytes
between the records (headers, padding, directory), so every byte is checked (:mod:`ertrain.zipcrc`)
and the write costs no extra pass over the tensors.  Version 3 (``ERTCKPT3``, read only): the footer's
CRC-32 covers the whole payload.  Older checkpoints (a torch file with a ``digest`` entry) stay readable.
A torn or corrupted file is detected before unpickling (with ``weights_only=True``; the checksums guard
against accidents, the unpickler's allow-list against content).
Every checkpoint records the run hash it belongs to; loading it into another
run is refused.  A ``result.json`` that does not parse (a torn copy, a disk error) is moved aside and
the run is finished again from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import platform
import struct
import subprocess
import sys
import time
import traceback
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ertheory.fileio import atomic_write, atomic_write_text, remove_stale_temporaries
from ertrain import zipcrc

CONFIG = "config.json"
PROVENANCE = "provenance.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
RESULT = "result.json"
ERROR = "error.json"
DATA_IDENTITY = "data.json"
LOCK = ".lock"
TORN_SUFFIX = ".torn"

#: The statuses :meth:`RunDir.status` reports.
STATUSES = ("pending", "running", "done", "failed")

_MAGIC = b"ERTCKPT4"
_MAGIC_V3 = b"ERTCKPT3"
_FOOTER = struct.Struct("<QI8s")
_FOOTER_TAG = b"ERTCKEND"


class RunLockedError(ValueError):
    """Another process is training this run."""


class ForeignCheckpointError(ValueError):
    """A checkpoint that belongs to another run."""


@dataclass(frozen=True)
class RunDir:
    """One run directory (the folder need not exist yet)."""

    path: Path

    @classmethod
    def of(cls, runs_dir: str | Path, run_hash: str) -> RunDir:
        return cls(Path(runs_dir) / run_hash)

    def file(self, name: str) -> Path:
        return self.path / name

    # -- status ------------------------------------------------------------------------------------
    def status(self) -> str:
        """``done`` (a readable result), ``running`` (locked), ``failed`` (error.json) or ``pending``."""
        if self.read_result() is not None:
            return "done"
        if self.is_locked():
            return "running"
        return "failed" if self.file(ERROR).is_file() else "pending"

    def is_locked(self) -> bool:
        path = self.file(LOCK)
        if not path.exists():
            return False
        try:
            with open(path) as fh:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock (create the folder); :class:`RunLockedError` if another process holds it.

        The kernel releases an ``flock`` when its holder dies, so a killed run never stays locked.
        Temporary files of interrupted writes are removed once the lock is held.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        fh = open(self.file(LOCK), "a+")  # noqa: SIM115 (held for the whole block)
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise RunLockedError(f"run {str(self.path)!r} is being trained by {holder}; wait for it") from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {platform.node()}")
            fh.flush()
            remove_stale_temporaries(self.path)
            yield
        finally:
            fh.close()

    # -- small JSON files --------------------------------------------------------------------------
    def read_json(self, name: str) -> dict[str, Any] | None:
        """The JSON object in ``name``, or None when absent, unreadable or not an object."""
        try:
            value = json.loads(self.file(name).read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_text(self.file(name), json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")

    def read_result(self) -> dict[str, Any] | None:
        """``result.json`` as a dict; None when absent or torn (a torn copy is never reported as done)."""
        return self.read_json(RESULT)

    def set_aside_torn_result(self) -> bool:
        """Move an unreadable ``result.json`` to ``result.json.torn``; True when there was one."""
        path = self.file(RESULT)
        if path.exists() and self.read_result() is None:
            os.replace(path, path.with_name(RESULT + TORN_SUFFIX))
            return True
        return False

    def write_result(self, result: dict[str, Any]) -> None:
        self.write_json(RESULT, result)
        with contextlib.suppress(FileNotFoundError):
            self.file(ERROR).unlink()

    def read_config(self) -> dict[str, Any] | None:
        return self.read_json(CONFIG)

    def write_config(self, config_json: str) -> None:
        atomic_write_text(self.file(CONFIG), config_json.rstrip("\n") + "\n")

    def write_error(self, exc: BaseException) -> None:
        """Record why this attempt failed (type, message, traceback)."""
        if self.path.is_dir():
            err = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
            self.write_json(ERROR, err)

    def read_error(self) -> dict[str, Any] | None:
        return self.read_json(ERROR)

    def write_provenance(self) -> None:
        self.write_json(PROVENANCE, provenance())

    def check_data_identity(self, identity: dict[str, Any]) -> None:
        """Refuse a run whose recorded data differ from ``identity`` (changed files never return old results)."""
        stored = self.read_json(DATA_IDENTITY)
        if stored is not None and stored != identity:
            raise ValueError(
                f"the data of run {str(self.path)!r} changed since it was trained (recorded {stored}, now {identity}); "
                "train into another --out or remove that run directory"
            )

    def write_data_identity(self, identity: dict[str, Any]) -> None:
        self.write_json(DATA_IDENTITY, identity)

    # -- metrics -----------------------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.file(METRICS), "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def rewrite_metrics(self, history: list[dict[str, Any]]) -> None:
        """Make ``metrics.jsonl`` hold exactly ``history`` (drops epochs past the restored checkpoint)."""
        atomic_write_text(self.file(METRICS), "".join(json.dumps(r) + "\n" for r in history))

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.file(METRICS)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # -- checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any], run_hash: str | None = None) -> Path:
        """Write ``checkpoint.pt`` atomically (the previous one becomes ``checkpoint.prev.pt``)."""
        return save_checkpoint(self.path, state, run_hash)

    def load_checkpoint(self, run_hash: str | None = None) -> tuple[dict[str, Any] | None, list[str]]:
        """The newest good checkpoint (current, else previous) and the problems met on the way.

        With ``run_hash`` a checkpoint of another run raises :class:`ForeignCheckpointError`.
        """
        problems: list[str] = []
        for name in (CHECKPOINT, PREVIOUS_CHECKPOINT):
            path = self.file(name)
            if not path.exists():
                continue
            try:
                state = read_checkpoint(path)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            owner = state.get("run_hash")
            if run_hash is not None and owner is not None and owner != run_hash:
                raise ForeignCheckpointError(
                    f"{path} belongs to run {owner}, not to {run_hash}; remove it or use another --out"
                )
            return state, problems
        return None, problems


def save_checkpoint(run_dir: str | Path, state: dict[str, Any], run_hash: str | None = None) -> Path:
    """Write ``run_dir/checkpoint.pt`` (see the module docstring for the format); keep the previous one.

    ``torch.save`` writes straight into the file, with a CRC-32 per record; afterwards the few kilobytes
    between the records are read back for the footer's CRC-32.  One serialisation, no pass over the tensors.
    """
    import torch

    state = dict(state)
    if run_hash is not None:
        state["run_hash"] = run_hash

    def write(fh: Any) -> None:
        fh.write(_MAGIC)
        start = fh.tell()
        with _record_crc32s():
            torch.save(state, fh)
        fh.flush()
        size = fh.tell() - start
        archive = zipcrc.FdWindow(fh.fileno(), start, size)
        frame = zipcrc.frame_crc32(archive.read_at, size, zipcrc.records(archive, size))
        fh.write(_FOOTER.pack(size, frame, _FOOTER_TAG))
        # The new checkpoint is complete: drop the one before the current, so that the current one is then
        # renamed onto a free name.  Renaming onto an existing file makes ext4 write the renamed file's data
        # out at once (auto_da_alloc), which cost as much as half of torch.save.
        with contextlib.suppress(FileNotFoundError):
            previous.unlink()

    # Atomic against kills (renames); not fsynced: a power cut may cost the checkpoints of the last half minute.
    run_dir = Path(run_dir)
    previous = run_dir / PREVIOUS_CHECKPOINT
    return atomic_write(run_dir / CHECKPOINT, write, binary=True, durable=False, keep_previous=previous)


@contextlib.contextmanager
def _record_crc32s() -> Iterator[None]:
    """Make ``torch.save`` store a CRC-32 per record within the block, whatever the global option says."""
    from torch.serialization import get_crc32_options, set_crc32_options

    if get_crc32_options():
        yield
        return
    set_crc32_options(True)
    try:
        yield
    finally:
        set_crc32_options(False)


def _check_v4(payload: bytes, footer_crc: int) -> str | None:
    """What is wrong with a version-4 payload (its records' and its frame's CRC-32s), or None."""
    view = memoryview(payload)

    def read_at(offset: int, n: int) -> memoryview:
        return view[offset:offset + n]

    try:
        recs = zipcrc.records(io.BytesIO(payload), len(payload))
        if zipcrc.frame_crc32(read_at, len(payload), recs) != footer_crc:
            return "CRC-32 of the zip headers and directory"
    except zipcrc.ZipLayoutError as exc:
        return str(exc)
    bad = zipcrc.bad_record(read_at, recs)
    return None if bad is None else f"CRC-32 of record {bad!r}"


def _check_v3(payload: bytes, footer_crc: int) -> str | None:
    """What is wrong with a version-3 payload (its CRC-32), or None."""
    return None if zlib.crc32(payload) == footer_crc else "CRC-32 of the payload"


#: The payload check of each checkpoint version, by magic.
_PAYLOAD_CHECKS = {_MAGIC: _check_v4, _MAGIC_V3: _check_v3}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load one checkpoint and check its integrity; ``ValueError`` if torn, corrupt or not a checkpoint."""
    import torch

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            check = _PAYLOAD_CHECKS.get(fh.read(len(_MAGIC)))
            if check is None:
                return _read_legacy_checkpoint(path)
            total = os.fstat(fh.fileno()).st_size
            if total < len(_MAGIC) + _FOOTER.size:
                raise ValueError(f"{path}: truncated checkpoint ({total} bytes; torn or corrupt file)")
            fh.seek(total - _FOOTER.size)
            size, crc, tag = _FOOTER.unpack(fh.read(_FOOTER.size))
            if tag != _FOOTER_TAG or size != total - len(_MAGIC) - _FOOTER.size:
                raise ValueError(f"{path}: checkpoint digest mismatch (no footer for its {total} bytes; "
                                 "torn or corrupt file)")
            fh.seek(len(_MAGIC))
            payload = fh.read(size)
    except OSError as exc:
        raise ValueError(f"{path}: unreadable checkpoint ({exc.strerror})") from exc
    problem = check(payload, crc)
    if problem is not None:
        raise ValueError(f"{path}: checkpoint digest mismatch ({problem}; torn or corrupt file)")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (any unpickling failure means "not a checkpoint")
        raise ValueError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not an ertrain checkpoint")
    return state


def _read_legacy_checkpoint(path: Path) -> dict[str, Any]:
    """Checkpoints of earlier releases: a torch file whose ``digest`` entry hashes the rest of the state."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (truncated zip, bad pickle opcodes, ... all mean "corrupt")
        raise ValueError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or "digest" not in state:
        raise ValueError(f"{path}: not an ertrain checkpoint (no digest)")
    digest = state.pop("digest")
    if state_digest(state) != digest:
        raise ValueError(f"{path}: checkpoint digest mismatch (corrupt file)")
    return state


def state_digest(obj: Any) -> str:
    """SHA-256 of a nested state (dicts, lists, tensors, numbers, strings), independent of dict order."""
    import torch

    h = hashlib.sha256()

    def feed(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}|".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy().data)
        elif isinstance(o, dict):
            h.update(b"{")
            for k in sorted(o, key=str):
                h.update(repr(k).encode() + b":")
                feed(o[k])
            h.update(b"}")
        elif isinstance(o, list | tuple):
            h.update(b"[")
            for v in o:
                feed(v)
                h.update(b",")
            h.update(b"]")
        else:
            h.update(repr(o).encode() + b"|")

    feed(obj)
    return h.hexdigest()


def provenance() -> dict[str, Any]:
    """Where a result came from: versions, git commit (when the package is a checkout), command line, host."""
    import numpy
    import torch

    from ertrain import __version__

    return {
        "ertoolkit_version": __version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "command": list(sys.argv),
        "host": platform.node(),
        "platform": platform.platform(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


__all__ = [
    "CHECKPOINT", "CONFIG", "DATA_IDENTITY", "ERROR", "LOCK", "METRICS", "PREVIOUS_CHECKPOINT", "PROVENANCE",
    "RESULT", "STATUSES", "ForeignCheckpointError", "RunDir", "RunLockedError", "provenance", "read_checkpoint",
    "save_checkpoint", "state_digest",
]
