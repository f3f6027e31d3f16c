"""Crash-safe recordings of the raw link, with an index for seeking.

A recording holds what the transport delivered — byte chunks or BLE
notifications, exactly as they arrived, with their host receive times — and
what the host sent.  Replaying it through the same decoder, assembler and
cores gives the same events as the live session did, and newer detectors can
re-analyse old sessions.

File layout (``.gbrec``)::

    header  : b"GBREC\\x00" u16 version  u32 json_len  json metadata  u32 crc32(json)
    record* : b"\\xA5\\x5A"  u8 kind  u8 flags  u32 length  f64 host_time  payload[length]
              u32 crc32(kind .. payload)

All little-endian.  Records are appended and flushed to the OS at least every
``flush_interval`` (default 0.2 s) and fsync'ed every ``sync_interval``
(default 1 s), so a process killed with SIGKILL loses nothing that was
flushed and a power cut loses at most the last second or so.  The fsync runs
on a background thread: it waits for the disk (milliseconds, more on a busy
one) and must not stall the event loop that receives the data.  A reader stops at a
torn tail record (counted in ``truncated_bytes``) and skips a corrupted
record by hunting for the next sync word whose CRC checks (``corrupt_records``
regions, ``skipped_bytes``); a record is only the torn tail when no valid record
follows it (a damaged length field also reads as a record running past the end).

The index (``<file>.idx``: u64 offset, f64 host_time pairs, one per second of
recording) makes seeking cheap; it is rebuilt by scanning when missing or
stale, since the recording alone is the truth.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import threading
import os
import struct
import time
import zlib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Iterator

from concurrent.futures import Future, ThreadPoolExecutor

from bridge.errors import RecordingError

MAGIC = b"GBREC\x00"
VERSION = 1
SYNC = b"\xa5\x5a"
_HEAD = struct.Struct("<6sHI")
_REC = struct.Struct("<2sBBId")  # sync, kind, flags, length, host_time
_CRC = struct.Struct("<I")
_IDX = struct.Struct("<Qd")
MAX_RECORD = 1 << 20  # a byte chunk larger than 1 MiB is split by the writer

_syncer: ThreadPoolExecutor | None = None
_syncer_lock = threading.Lock()


def _sync_in_background(fd: int) -> Future:
    """fdatasync ``fd`` on the shared background thread (one for all writers)."""
    global _syncer
    with _syncer_lock:
        if _syncer is None:
            _syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gbrec-sync")
        return _syncer.submit(getattr(os, "fdatasync", os.fsync), fd)


class Kind(IntEnum):
    DATA_IN = 1  #: bytes from the device (one read, or one BLE notification)
    DATA_OUT = 2  #: bytes the host sent to the device
    LINK_LOST = 3  #: the link dropped (payload: UTF-8 reason)
    LINK_UP = 4  #: the link is back (payload: empty)
    NOTE = 5  #: annotation (payload: UTF-8 JSON)


@dataclass(frozen=True, slots=True)
class Record:
    kind: Kind
    host_time: float
    payload: bytes
    offset: int  # file offset of the record, for seeking


class RecordingWriter:
    """Append records to a new recording file.

    ``meta`` is stored as JSON in the header (source URL, device, transport
    kind "stream"/"notifications", start wall-clock time...).  Use as a
    context manager or call :meth:`close`.
    """

    def __init__(self, path, meta: dict | None = None, *, flush_interval: float = 0.2,
                 sync_interval: float = 1.0, index_interval: float = 1.0) -> None:
        self.path = Path(path)
        meta = dict(meta or {})
        meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        meta.setdefault("format", "glutebridge recording")
        try:
            self._fh = open(self.path, "xb", buffering=1 << 20)  # few syscalls; flushed on time
        except FileExistsError:
            raise RecordingError(f"{self.path} exists; choose a new file name "
                                 "(recordings are never overwritten)") from None
        except OSError as exc:
            raise RecordingError(f"cannot create {self.path}: {exc.strerror}") from exc
        idx_path = self.path.with_name(self.path.name + ".idx")
        try:
            self._idx = open(idx_path, "wb")
            raw = json.dumps(meta, default=str).encode()
            self._fh.write(_HEAD.pack(MAGIC, VERSION, len(raw)) + raw
                           + _CRC.pack(zlib.crc32(raw)))
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            # Nothing was recorded: leave no half-made file behind (an empty .gbrec would
            # only block the same command, run again once the cause is fixed).
            idx = getattr(self, "_idx", None)
            for fh in (idx, self._fh):
                if fh is not None:
                    with contextlib.suppress(OSError):
                        fh.close()
            self.path.unlink(missing_ok=True)
            if idx is not None:
                idx_path.unlink(missing_ok=True)
                what = f"cannot write {self.path}"
            else:
                what = f"cannot create the index {idx_path}"
            raise RecordingError(f"{what}: {exc.strerror or exc}; nothing was recorded"
                                 ) from exc
        self.flush_interval = flush_interval
        self.sync_interval = sync_interval
        self.index_interval = index_interval
        self._offset = self._fh.tell()
        self._last_flush = self._last_sync = time.monotonic()
        self._next_index: float | None = None
        self._sync: Future | None = None  # the background fsync in flight, if any
        self.records = 0
        self.bytes = 0

    def write(self, kind: Kind, payload: bytes, host_time: float) -> None:
        """Append one record (large payloads are split)."""
        if self._fh.closed:
            raise RecordingError(f"{self.path} is closed")
        if len(payload) <= MAX_RECORD:  # the usual case: one read, one record
            self._write_one(kind, payload, host_time)
        else:
            payload = bytes(payload)
            for i in range(0, len(payload), MAX_RECORD):
                self._write_one(kind, payload[i:i + MAX_RECORD], host_time)
        now = time.monotonic()
        if now - self._last_flush >= self.flush_interval:
            self.flush(sync=now - self._last_sync >= self.sync_interval)

    def _write_one(self, kind: Kind, payload: bytes, host_time: float) -> None:
        if self._next_index is None or host_time >= self._next_index:
            self._idx.write(_IDX.pack(self._offset, host_time))
            self._next_index = host_time + self.index_interval
        head = _REC.pack(SYNC, kind, 0, len(payload), host_time)
        crc = zlib.crc32(payload, zlib.crc32(head[2:]))
        fh = self._fh  # three buffered writes: no copy of the payload
        fh.write(head)
        fh.write(payload)
        fh.write(_CRC.pack(crc))
        n = len(head) + len(payload) + 4
        self._offset += n
        self.records += 1
        self.bytes += n

    def data_in(self, data: bytes, host_time: float) -> None:
        self.write(Kind.DATA_IN, data, host_time)

    def data_out(self, data: bytes, host_time: float) -> None:
        self.write(Kind.DATA_OUT, data, host_time)

    def note(self, obj: dict, host_time: float) -> None:
        self.write(Kind.NOTE, json.dumps(obj, default=str).encode(), host_time)

    def flush(self, sync: bool = False) -> None:
        """Hand buffered records to the OS (and to the disk with ``sync``)."""
        self._fh.flush()
        self._idx.flush()
        self._last_flush = time.monotonic()
        if sync and (self._sync is None or self._sync.done()):
            self._check_sync()
            # fdatasync: the data reach the disk; metadata other than the size may lag.
            self._sync = _sync_in_background(self._fh.fileno())
            self._last_sync = self._last_flush

    def _check_sync(self) -> None:
        if self._sync is not None and self._sync.done() and self._sync.exception() is not None:
            exc = self._sync.exception()
            self._sync = None
            raise RecordingError(f"cannot write {self.path} to disk: {exc}") from exc

    def close(self) -> None:
        if self._fh.closed:
            return
        try:
            self._fh.flush()
            self._idx.flush()
            if self._sync is not None:
                self._sync.result()  # never close the fd under a running fsync
            getattr(os, "fdatasync", os.fsync)(self._fh.fileno())
        except OSError as exc:
            raise RecordingError(f"cannot write {self.path} to disk: {exc}") from exc
        finally:
            self._sync = None
            self._fh.close()
            self._idx.close()

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RecordingReader:
    """Read a recording: metadata, records, seeking by host time.

    Raises :class:`~bridge.errors.RecordingError` with a clear message when
    the file is missing, not a glutebridge recording, or of a newer version.
    Torn or corrupt records are counted (``truncated_bytes``,
    ``corrupt_records``, ``skipped_bytes``), never returned.
    """

    def __init__(self, path) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                # mmap: hour-long recordings are read lazily, not loaded whole.
                self._data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except FileNotFoundError:
            raise RecordingError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise RecordingError(f"{self.path} is a directory, not a recording") from None
        except OSError as exc:
            raise RecordingError(f"cannot read {self.path}: {exc.strerror}") from exc
        d = self._data
        if len(d) == 0:
            raise RecordingError(f"{self.path} is empty (0 bytes): the recording never started "
                                 "writing; record again with `glutebridge stream URL --record FILE`")
        if len(d) < _HEAD.size or d[:6] != MAGIC:
            raise RecordingError(
                f"{self.path} is not a glutebridge recording (no GBREC header); "
                "record one with `glutebridge stream URL --record FILE`")
        magic, version, n = _HEAD.unpack_from(d, 0)
        if version > VERSION:
            raise RecordingError(f"{self.path} is a version {version} recording; this "
                                 f"glutebridge reads up to version {VERSION}: upgrade glutebridge")
        end = _HEAD.size + n
        if end + 4 > len(d):
            raise RecordingError(f"{self.path} is truncated inside its header; nothing to replay")
        raw = d[_HEAD.size:end]
        if _CRC.unpack_from(d, end)[0] != zlib.crc32(raw):
            raise RecordingError(f"{self.path}: header checksum fails; the file is corrupt")
        self.meta = json.loads(raw)
        self.data_start = end + 4
        self.truncated_bytes = 0
        self.corrupt_records = 0
        self.skipped_bytes = 0

    def records(self, start_offset: int | None = None) -> Iterator[Record]:
        """Every valid record from ``start_offset`` (default: the first)."""
        d = self._data
        pos = self.data_start if start_offset is None else start_offset
        n = len(d)
        while pos < n:
            if n - pos < _REC.size + 4:
                self.truncated_bytes += n - pos
                return
            _sync, kind, _flags, length, host_time = _REC.unpack_from(d, pos)
            end = pos + _REC.size + length
            if not self._valid_at_record(pos):
                # A damaged record, or the torn tail a crash left.  Which one is decided by
                # what follows: a record that checks means damage in the middle (a flipped
                # length field reads as a record running past the end of the file, and
                # must not end the file there); nothing valid after it means a torn tail.
                nxt = self._next_valid(pos + 1)
                if nxt is not None:
                    self.corrupt_records += 1
                    self.skipped_bytes += nxt - pos
                    pos = nxt
                    continue
                torn = self._torn_from(pos)
                if torn > pos:
                    self.corrupt_records += 1
                    self.skipped_bytes += torn - pos
                self.truncated_bytes += n - torn
                return
            try:
                k = Kind(kind)
            except ValueError:  # a newer kind: skip it, keep going
                pos = end + 4
                continue
            yield Record(k, host_time, bytes(d[pos + _REC.size:end]), pos)
            pos = end + 4

    def _valid_at_record(self, pos: int) -> bool:
        """A whole record whose checksum holds starts at ``pos``."""
        d = self._data
        if len(d) - pos < _REC.size + 4:
            return False
        sync, _kind, _flags, length, _t = _REC.unpack_from(d, pos)
        end = pos + _REC.size + length
        if sync != SYNC or length > MAX_RECORD or end + 4 > len(d):
            return False
        crc = zlib.crc32(d[pos + _REC.size:end], zlib.crc32(d[pos + 2:pos + _REC.size]))
        return crc == _CRC.unpack_from(d, end)[0]

    def _next_valid(self, pos: int) -> int | None:
        """Offset of the first valid record at or after ``pos`` (None: there is none)."""
        d = self._data
        while True:
            pos = d.find(SYNC, pos)
            if pos < 0:
                return None
            if self._valid_at_record(pos):
                return pos
            pos += 1

    def _torn_from(self, pos: int) -> int:
        """Where the torn tail starts, past ``pos`` after which no record is valid: the
        first record head that runs past the end of the file (the one being written when
        the writer died); ``len`` when there is none (damaged bytes up to the end)."""
        d, n = self._data, len(self._data)
        while 0 <= pos < n:
            if n - pos < _REC.size + 4:
                return pos  # too short for a record: a head cut short
            sync, _kind, _flags, length, _t = _REC.unpack_from(d, pos)
            if sync == SYNC and length <= MAX_RECORD and pos + _REC.size + length + 4 > n:
                return pos
            pos = d.find(SYNC, pos + 1)
        return n

    def index(self) -> list[tuple[int, float]]:
        """(offset, host_time) about once per second; rebuilt if the .idx is unusable."""
        idx_path = self.path.with_name(self.path.name + ".idx")
        try:
            raw = idx_path.read_bytes()
            entries = [_IDX.unpack_from(raw, i) for i in range(0, len(raw) - len(raw) % _IDX.size,
                                                                 _IDX.size)]
            if entries and all(self._valid_at(off) for off, _ in (entries[0], entries[-1])):
                return entries
        except OSError:
            pass
        out, nxt = [], None
        for rec in self.records():
            if nxt is None or rec.host_time >= nxt:
                out.append((rec.offset, rec.host_time))
                nxt = rec.host_time + 1.0
        return out

    def _valid_at(self, off: int) -> bool:
        return 0 < off < len(self._data) and self._data[off:off + 2] == SYNC

    def offset_at(self, host_time: float) -> int:
        """Offset of the last indexed record at or before ``host_time``."""
        best = self.data_start
        for off, t in self.index():
            if t > host_time:
                break
            best = off
        return best

    @property
    def duration(self) -> float:
        """Host seconds from the first to the last record."""
        first = last = None
        for rec in self.records():
            if first is None:
                first = rec.host_time
            last = rec.host_time
        return 0.0 if first is None else last - first
