"""The checkpoint file format: version 4 written, versions 3 and older read; every corruption is a ValueError."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ertrain import zipcrc
from ertrain.rundir import (
    CHECKPOINT,
    PREVIOUS_CHECKPOINT,
    ForeignCheckpointError,
    RunDir,
    read_checkpoint,
    save_checkpoint,
    state_digest,
)

FOOTER = struct.Struct("<QI8s")  # payload length, CRC-32, tag: the layout the module docstring describes
TAG = b"ERTCKEND"


def small_state(epoch: int = 1) -> dict[str, Any]:
    return {"epoch": epoch, "w": torch.arange(64, dtype=torch.float64) + epoch, "nested": {"k": [1, "a"]}}


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def test_round_trip_writes_version_4_with_a_footer_that_measures_the_payload(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, small_state(), run_hash="abc")
    raw = path.read_bytes()
    assert raw[:8] == b"ERTCKPT4"
    size, _, tag = FOOTER.unpack(raw[-FOOTER.size:])
    assert tag == TAG and size == len(raw) - 8 - FOOTER.size
    payload = raw[8:-FOOTER.size]
    assert zipfile.ZipFile(io.BytesIO(payload)).testzip() is None  # torch's own record CRC-32s are there
    assert_same(read_checkpoint(path), {**small_state(), "run_hash": "abc"})


def test_a_flipped_byte_in_a_tensor_names_its_record_and_the_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, small_state())
    raw = bytearray(path.read_bytes())
    at = bytes(raw).find(small_state()["w"].numpy().tobytes())  # the tensor's data, found without the zip layout
    assert at > 0
    raw[at + 256] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=rf"{path}: checkpoint digest mismatch \(CRC-32 of record 'archive/data/"):
        read_checkpoint(path)


def test_every_single_byte_change_is_detected(tmp_path: Path) -> None:
    """Each byte of a small checkpoint, changed in turn: headers, padding and directory are covered too."""
    path = save_checkpoint(tmp_path, {"epoch": 3, "w": torch.ones(3)})
    raw = path.read_bytes()
    missed = []
    with open(path, "r+b", buffering=0) as fh:  # changed in place: no truncation per byte
        for i in range(len(raw)):
            fh.seek(i)
            fh.write(bytes([raw[i] ^ (0x01 << (i % 8))]))
            try:
                read_checkpoint(path)
            except ValueError as exc:
                assert str(path) in str(exc)
            else:
                missed.append(i)
            fh.seek(i)
            fh.write(raw[i:i + 1])
    assert missed == []
    assert path.read_bytes() == raw


@pytest.mark.parametrize("damage", ["truncate one", "truncate half", "magic only", "empty", "append one",
                                    "append a footer", "wrong tag"])
def test_torn_or_extended_files_are_refused(tmp_path: Path, damage: str) -> None:
    path = save_checkpoint(tmp_path, small_state())
    raw = path.read_bytes()
    damaged = {
        "truncate one": raw[:-1], "truncate half": raw[: len(raw) // 2], "magic only": raw[:8], "empty": b"",
        "append one": raw + b"\0", "append a footer": raw + raw[-FOOTER.size:],
        "wrong tag": raw[:-8] + b"ERTCKENX",
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(ValueError, match=str(path)):
        read_checkpoint(path)


def test_checkpoints_stay_verifiable_when_torch_is_told_not_to_write_crc32s(tmp_path: Path) -> None:
    from torch.serialization import get_crc32_options, set_crc32_options

    set_crc32_options(False)
    try:
        path = save_checkpoint(tmp_path, small_state())
        assert get_crc32_options() is False  # the caller's choice is restored
    finally:
        set_crc32_options(True)
    payload = path.read_bytes()[8:-FOOTER.size]
    assert zipfile.ZipFile(io.BytesIO(payload)).testzip() is None
    assert_same(read_checkpoint(path), small_state())


def test_version_3_checkpoints_stay_readable(tmp_path: Path) -> None:
    """Built by hand: magic, torch.save's bytes, footer with the CRC-32 of all of them."""
    buffer = io.BytesIO()
    torch.save(small_state(), buffer)
    payload = buffer.getvalue()
    path = tmp_path / CHECKPOINT
    path.write_bytes(b"ERTCKPT3" + payload + FOOTER.pack(len(payload), zlib.crc32(payload), TAG))
    assert_same(read_checkpoint(path), small_state())
    path.write_bytes(b"ERTCKPT3" + payload + FOOTER.pack(len(payload), zlib.crc32(payload) ^ 1, TAG))
    with pytest.raises(ValueError, match="digest mismatch"):
        read_checkpoint(path)


def test_checkpoints_of_earlier_releases_stay_readable(tmp_path: Path) -> None:
    state = small_state()
    path = tmp_path / CHECKPOINT
    torch.save({**state, "digest": state_digest(state)}, path)
    assert_same(read_checkpoint(path), state)
    torch.save({**state, "digest": "0" * 64}, path)
    with pytest.raises(ValueError, match="digest mismatch"):
        read_checkpoint(path)


def test_a_failed_write_keeps_both_checkpoints(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, small_state(1))
    save_checkpoint(tmp_path, small_state(2))
    with pytest.raises(Exception, match="pickle"):
        save_checkpoint(tmp_path, {"epoch": 3, "f": lambda: 0})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CHECKPOINT, PREVIOUS_CHECKPOINT])
    assert read_checkpoint(tmp_path / CHECKPOINT)["epoch"] == 2
    assert read_checkpoint(tmp_path / PREVIOUS_CHECKPOINT)["epoch"] == 1


def test_a_checkpoint_of_another_run_is_refused(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, small_state(), run_hash="aaaa")
    state, problems = RunDir(tmp_path).load_checkpoint("aaaa")
    assert state is not None and state["run_hash"] == "aaaa" and problems == []
    with pytest.raises(ForeignCheckpointError, match="belongs to run aaaa, not to bbbb"):
        RunDir(tmp_path).load_checkpoint("bbbb")


# -- the zip coverage on archives written by Python's zipfile (another writer than torch) ---------------------------
members = st.dictionaries(st.text("abcxyz/._", min_size=1, max_size=12), st.binary(max_size=300), max_size=6)


def stored_zip(contents: dict[str, bytes], prefix: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    buffer.write(prefix)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, data in contents.items():
            zf.writestr(name, data)
    return buffer.getvalue()[len(prefix):]


@given(members)
def test_records_and_frame_partition_the_archive(contents: dict[str, bytes]) -> None:
    archive = stored_zip(contents)
    recs = zipcrc.records(io.BytesIO(archive), len(archive))
    assert [r.name for r in recs] == list(contents)
    assert [archive[r.start:r.end] for r in recs] == list(contents.values())
    assert [r.crc for r in recs] == [zlib.crc32(v) for v in contents.values()]
    bounds = [0, *(x for r in recs for x in (r.start, r.end)), len(archive)]
    frame = b"".join(archive[a:b] for a, b in zip(bounds[::2], bounds[1::2], strict=True))
    assert len(frame) + sum(len(v) for v in contents.values()) == len(archive)
    read_at = lambda offset, n: archive[offset:offset + n]  # noqa: E731
    assert zipcrc.frame_crc32(read_at, len(archive), recs) == zlib.crc32(frame)
    assert zipcrc.bad_record(read_at, recs) is None


@given(members.filter(lambda c: any(c.values())), st.data())
def test_bad_record_names_the_changed_record(contents: dict[str, bytes], data: st.DataObject) -> None:
    archive = bytearray(stored_zip(contents))
    name = data.draw(st.sampled_from([k for k, v in contents.items() if v]))
    recs = zipcrc.records(io.BytesIO(bytes(archive)), len(archive))
    (rec,) = [r for r in recs if r.name == name]
    archive[data.draw(st.integers(rec.start, rec.end - 1))] ^= 0x80
    assert zipcrc.bad_record(lambda offset, n: bytes(archive[offset:offset + n]), recs) == name


def test_compressed_or_garbled_archives_raise_layout_errors() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a", b"x" * 100)
    with pytest.raises(zipcrc.ZipLayoutError, match="'a' is compressed"):
        zipcrc.records(io.BytesIO(buffer.getvalue()), len(buffer.getvalue()))
    with pytest.raises(zipcrc.ZipLayoutError, match="unreadable zip directory"):
        zipcrc.records(io.BytesIO(b"not a zip at all"), 16)


def test_fd_window_reads_part_of_a_file_without_moving_its_offset(tmp_path: Path) -> None:
    archive = stored_zip({"a": b"hello", "b": b"world"})
    path = tmp_path / "f"
    path.write_bytes(b"PREFIX" + archive + b"SUFFIX")
    fd = os.open(path, os.O_RDWR)
    try:
        os.lseek(fd, 3, os.SEEK_SET)
        window = zipcrc.FdWindow(fd, 6, len(archive))
        assert window.read() == archive
        assert window.seek(-3, os.SEEK_END) == len(archive) - 3 and window.read(10) == archive[-3:]
        assert window.read_at(len(archive) - 1, 5) == archive[-1:]
        recs = zipcrc.records(window, len(archive))
        assert [archive[r.start:r.end] for r in recs] == [b"hello", b"world"]
        assert os.lseek(fd, 0, os.SEEK_CUR) == 3
    finally:
        os.close(fd)
