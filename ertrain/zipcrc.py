"""CRC-32 coverage of an uncompressed zip archive (the container ``torch.save`` writes).

A zip archive stores a CRC-32 of every record's data, but none of the bytes around them: local headers,
alignment padding, data descriptors, the central directory.  :func:`records` lists where each record's
data lie and the CRC-32 the archive stores for it, :func:`frame_crc32` is the CRC-32 of every other byte,
and :func:`bad_record` recomputes the records' CRC-32s: together they check every byte of the archive
with one pass of ``zlib.crc32``.  Offsets are relative to the archive's first byte; the archive is read
through any seekable binary file (:class:`FdWindow` reads part of an open file without moving its offset).
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

#: A zip local file header (APPNOTE 4.3.7); its last two fields are the name and extra-field lengths.
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"

ReadAt = Callable[[int, int], bytes | memoryview]


class ZipLayoutError(ValueError):
    """The archive's directory or headers do not describe stored (uncompressed), disjoint records."""


@dataclass(frozen=True)
class Record:
    """One record's data: bytes ``[start, end)`` of the archive, whose CRC-32 the archive says is ``crc``."""

    name: str
    start: int
    end: int
    crc: int


def records(archive: IO[bytes] | io.RawIOBase, size: int) -> list[Record]:
    """The records of the ``size``-byte archive in file order; :class:`ZipLayoutError` if it is not readable."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
    except Exception as exc:  # noqa: BLE001 (a damaged directory raises BadZipFile, NotImplementedError, ...)
        raise ZipLayoutError(f"unreadable zip directory ({type(exc).__name__}: {exc})") from exc
    found: list[Record] = []
    end = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise ZipLayoutError(f"record {info.filename!r} is compressed (method {info.compress_type}); "
                                 "only stored records are supported")
        if info.header_offset < end:
            raise ZipLayoutError(f"record {info.filename!r} overlaps the record before it")
        archive.seek(info.header_offset)
        header = archive.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise ZipLayoutError(f"record {info.filename!r} has no local header at offset {info.header_offset}")
        name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
        start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        end = start + info.compress_size
        if end > size:
            raise ZipLayoutError(f"record {info.filename!r} ends at byte {end}, past the archive's {size} bytes")
        found.append(Record(info.filename, start, end, info.CRC))
    return found


def frame_crc32(read_at: ReadAt, size: int, recs: list[Record]) -> int:
    """CRC-32 of the archive's bytes outside the records' data (``read_at(offset, n)`` returns n bytes)."""
    crc, pos = 0, 0
    for rec in recs:
        crc = zlib.crc32(_exactly(read_at, pos, rec.start - pos), crc)
        pos = rec.end
    return zlib.crc32(_exactly(read_at, pos, size - pos), crc)


def bad_record(read_at: ReadAt, recs: list[Record]) -> str | None:
    """The name of the first record whose data do not match its stored CRC-32, or None."""
    for rec in recs:
        if zlib.crc32(_exactly(read_at, rec.start, rec.end - rec.start)) != rec.crc:
            return rec.name
    return None


def _exactly(read_at: ReadAt, offset: int, n: int) -> bytes | memoryview:
    data = read_at(offset, n)
    if len(data) != n:
        raise ZipLayoutError(f"{n} bytes at offset {offset} are past the end of the archive")
    return data


class FdWindow(io.RawIOBase):
    """Read-only, seekable view of ``size`` bytes of an open file descriptor from byte ``base``.

    Reads use ``os.pread``: the descriptor's own offset (a writer's position) never moves.
    """

    def __init__(self, fd: int, base: int, size: int) -> None:
        super().__init__()
        self.fd, self.base, self.size, self.pos = fd, base, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        origin = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        if origin + offset < 0:
            raise OSError(f"negative seek position {origin + offset}")
        self.pos = origin + offset
        return self.pos

    def read_at(self, offset: int, n: int) -> bytes:
        n = max(0, min(n, self.size - offset))
        return os.pread(self.fd, n, self.base + offset) if n else b""

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read_at(self.pos, view.nbytes)
        view[: len(data)] = data
        self.pos += len(data)
        return len(data)


__all__ = ["FdWindow", "Record", "ZipLayoutError", "bad_record", "frame_crc32", "records"]
