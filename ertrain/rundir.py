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
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from ertheory.fileio import TMP_SUFFIX, atomic_write, atomic_write_text, remove_stale_temporaries
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

#: What :meth:`RunDir.result_state` says of ``result.json``: a readable result, an unreadable one (a torn
#: copy, now or set aside as ``result.json.torn`` and not finished again since), or none.
RESULT_STATES = ("finished", "torn", "absent")

_MAGIC = b"ERTCKPT4"
_MAGIC_V3 = b"ERTCKPT3"
_FOOTER = struct.Struct("<QI8s")
_FOOTER_TAG = b"ERTCKEND"


class RunLockedError(ValueError):
    """Another process is training this run."""


class ForeignCheckpointError(ValueError):
    """A checkpoint that belongs to another run."""


class TornResultError(ValueError):
    """A ``result.json`` that exists but cannot be read as a result (torn or corrupt)."""


class SaveError(OSError):
    """Saving a run's file failed (disk full, permissions...): the message names the file and the cause."""


def save_error(path: str | Path, exc: OSError) -> SaveError:
    """A :class:`SaveError` for ``path`` from the ``OSError`` a write raised (its errno and its cause)."""
    cause = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__)
    return SaveError(exc.errno, f"cannot save {path}: {cause}")


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
        """Hold the run's lock (create the folder); :class:`RunLockedError`, naming the holder, if another
        process holds it.

        The kernel releases an ``flock`` when its holder dies, so a killed run never stays locked.  The lock
        file is written (``pid N on HOST``) and locked under a temporary name and only then linked to
        ``.lock``, so a lock another process can see always names its holder.  A stale ``.lock`` (its holder
        died) is replaced the same way.  Temporary files of interrupted writes are removed once the lock is held.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        fh = self._take_lock()
        try:
            remove_stale_temporaries(self.path)
            yield
        finally:
            fh.close()

    def _take_lock(self) -> Any:
        """The open, ``flock``-ed ``.lock`` file of this process (see :meth:`lock`)."""
        path = self.file(LOCK)
        for _ in range(100):  # retried only when another process replaced or removed the file meanwhile
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f"{LOCK}.", suffix=TMP_SUFFIX)
            mine = os.fdopen(fd, "w")
            try:
                fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)
                mine.write(f"pid {os.getpid()} on {platform.node()}")
                mine.flush()
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
                    return mine
                if self._replace_stale_lock(path, tmp):
                    return mine
            except FileNotFoundError:  # our temporary was removed by another holder's clean-up: try again
                pass
            except BaseException:
                mine.close()
                raise
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            mine.close()
        raise RunLockedError(f"run {str(self.path)!r}: could not take its lock (.lock kept changing); try again")

    def _replace_stale_lock(self, path: Path, tmp: str) -> bool:
        """Put ``tmp`` (locked, holding our pid) in place of ``path`` if no process holds ``path``.

        False when ``path`` changed meanwhile; :class:`RunLockedError` naming the holder when it is held.
        """
        try:
            old = open(path, "r+")  # noqa: SIM115 (closed below, after the rename)
        except FileNotFoundError:
            return False
        with old:
            try:
                fcntl.flock(old, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = old.read().strip() or "another process (it did not record its pid)"
                raise RunLockedError(f"run {str(self.path)!r} is being trained by {holder}; wait for it") from None
            old.truncate(0)  # whoever still looks at the stale file sees us, not its dead holder
            old.write(Path(tmp).read_text())
            old.flush()
            try:
                if os.stat(path).st_ino != os.fstat(old.fileno()).st_ino:
                    return False
            except FileNotFoundError:
                return False
            os.replace(tmp, path)
            return True

    # -- small JSON files --------------------------------------------------------------------------
    def read_json(self, name: str) -> dict[str, Any] | None:
        """The JSON object in ``name``, or None when absent, unreadable or not an object."""
        try:
            value = json.loads(self.file(name).read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def write_json(self, name: str, obj: Any) -> None:
        """Write ``name`` atomically; an ``OSError`` becomes a :class:`SaveError` naming the file."""
        with _saving(self.file(name)):
            atomic_write_text(self.file(name), json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")

    def read_result(self) -> dict[str, Any] | None:
        """``result.json`` as a dict; None when absent or torn (a torn copy is never reported as done).

        :meth:`load_result` tells the two apart.
        """
        return self.read_json(RESULT)

    def load_result(self) -> dict[str, Any] | None:
        """``result.json`` as a dict, None when the run has none; :class:`TornResultError` when it is unreadable."""
        path = self.file(RESULT)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TornResultError(f"{path}: unreadable result ({exc.strerror or exc})") from exc
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise TornResultError(f"{path}: torn or corrupt result ({len(text)} characters; {exc})") from None
        if not isinstance(value, dict):
            raise TornResultError(f"{path}: not a result (a JSON {type(value).__name__}, not an object)")
        return value

    def result_state(self) -> str:
        """One of :data:`RESULT_STATES`: ``finished``, ``torn`` (unreadable now, or set aside and not
        finished again) or ``absent``."""
        try:
            result = self.load_result()
        except TornResultError:
            return "torn"
        if result is not None:
            return "finished"
        return "torn" if self.file(RESULT + TORN_SUFFIX).exists() else "absent"

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
        with _saving(self.file(CONFIG)):
            atomic_write_text(self.file(CONFIG), config_json.rstrip("\n") + "\n")

    def write_error(self, exc: BaseException) -> None:
        """Record why this attempt failed (type, message, traceback); a failure to write it (a full disk)
        is ignored, so that the original error is the one reported."""
        if self.path.is_dir():
            err = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
            with contextlib.suppress(OSError):
                self.write_json(ERROR, err)

    def read_error(self) -> dict[str, Any] | None:
        return self.read_json(ERROR)

    def write_provenance(self) -> None:
        self.write_json(PROVENANCE, provenance())

    def check_data_identity(
        self, identity: dict[str, Any], of_version: Callable[[int], dict[str, Any]] | None = None
    ) -> None:
        """Refuse a run whose recorded data differ from ``identity`` (changed files never return old results).

        A run that recorded another fingerprint version (``fingerprint_version``, 1 when absent) is compared
        with ``of_version(its version)``, the identity of today's data in that version.
        """
        stored = self.read_json(DATA_IDENTITY)
        if stored is None:
            return
        version = stored.get("fingerprint_version", 1)
        if of_version is not None and version != identity.get("fingerprint_version", 1):
            identity = of_version(version)
        if stored != identity:
            raise ValueError(
                f"the data of run {str(self.path)!r} changed since it was trained (recorded {stored}, now {identity}); "
                "train into another --out or remove that run directory"
            )

    def write_data_identity(self, identity: dict[str, Any]) -> None:
        self.write_json(DATA_IDENTITY, identity)

    # -- metrics -----------------------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one record; a failed write (a full disk) is cut off again, so no partial line stays."""
        path = self.file(METRICS)
        data = (json.dumps(record) + "\n").encode()
        with _saving(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            try:
                size = os.fstat(fd).st_size
                try:
                    written = 0
                    while written < len(data):
                        written += os.write(fd, data[written:])
                    os.fsync(fd)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)
                    raise
            finally:
                os.close(fd)

    def rewrite_metrics(self, history: list[dict[str, Any]]) -> None:
        """Make ``metrics.jsonl`` hold exactly ``history`` (drops epochs past the restored checkpoint)."""
        with _saving(self.file(METRICS)):
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
        sink = _ErrorKeepingWriter(fh)
        try:
            with _record_crc32s():
                torch.save(state, cast(IO[bytes], sink))
        except RuntimeError:
            if sink.error is not None:  # torch reports a failed write as "unexpected pos": give the real cause
                raise sink.error from None
            raise
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
    with _saving(run_dir / CHECKPOINT):
        return atomic_write(run_dir / CHECKPOINT, write, binary=True, durable=False, keep_previous=previous)


class _ErrorKeepingWriter:
    """A file for ``torch.save`` that keeps the ``OSError`` of a failed write (torch replaces it by its own)."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return int(self.fh.write(data))
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.fh.flush()


@contextlib.contextmanager
def _saving(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` of a save into a :class:`SaveError` that names ``path`` and the cause."""
    try:
        yield
    except SaveError:
        raise
    except OSError as exc:
        raise save_error(path, exc) from exc


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
    "RESULT", "RESULT_STATES", "STATUSES", "ForeignCheckpointError", "RunDir", "RunLockedError", "SaveError",
    "TornResultError", "provenance", "read_checkpoint", "save_checkpoint", "save_error", "state_digest",
]
