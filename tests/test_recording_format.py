"""Recording file format: round trip, torn tails, corruption, foreign files, SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from bridge.errors import RecordingError
from bridge.recording import Kind, RecordingReader, RecordingWriter


def _write(path, n=500):
    with RecordingWriter(path, {"url": "tcp://x:1", "transport": "stream"}) as w:
        for i in range(n):
            w.data_in(bytes([i % 251]) * (1 + i % 300), 1000.0 + i * 0.01)
            if i % 100 == 0:
                w.data_out(b"cmd", 1000.0 + i * 0.01)
    return path


def test_round_trip_and_index(tmp_path):
    p = _write(tmp_path / "a.gbrec")
    r = RecordingReader(p)
    assert r.meta["url"] == "tcp://x:1"
    recs = list(r.records())
    ins = [x for x in recs if x.kind == Kind.DATA_IN]
    assert len(ins) == 500 and len(recs) == 505
    assert ins[7].payload == bytes([7]) * 8 and ins[7].host_time == pytest.approx(1000.07)
    idx = r.index()
    assert len(idx) == 5  # one entry per second of host time
    off = r.offset_at(1003.5)
    first = next(r.records(off))
    assert 1002.99 <= first.host_time <= 1003.5
    assert r.truncated_bytes == r.corrupt_records == 0


def test_missing_index_is_rebuilt(tmp_path):
    p = _write(tmp_path / "a.gbrec")
    (tmp_path / "a.gbrec.idx").write_bytes(b"garbage")
    assert len(RecordingReader(p).index()) == 5


@pytest.mark.parametrize("cut", [1, 5, 17, 200])
def test_torn_tail_loses_only_the_last_record(tmp_path, cut):
    p = _write(tmp_path / "a.gbrec")
    data = p.read_bytes()
    p.write_bytes(data[:-cut])
    r = RecordingReader(p)
    recs = list(r.records())
    assert len(recs) in (503, 504)
    assert r.truncated_bytes > 0


def test_corrupt_record_in_the_middle_is_skipped(tmp_path):
    p = _write(tmp_path / "a.gbrec")
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    r = RecordingReader(p)
    recs = list(r.records())
    assert 500 <= len(recs) == 504
    assert r.corrupt_records >= 1 and r.skipped_bytes > 0


_REC_HEAD = 16  # a record's head: sync, kind, flags, u32 length, f64 host time (CRC after)


def test_damaged_length_field_does_not_end_the_file(tmp_path):
    """A bit flip in a length field makes a record in the middle look like one running
    past the end of the file: that is damage, not the torn tail, and every record after
    it is still read (it was: the rest of the recording was dropped without a word)."""
    p = _write(tmp_path / "a.gbrec")
    r = RecordingReader(p)
    victim = [x for x in r.records()][250]
    data = bytearray(p.read_bytes())
    data[victim.offset + 6] ^= 0x0F  # length + 983,040 bytes: under MAX_RECORD, past the end
    p.write_bytes(bytes(data))
    r = RecordingReader(p)
    recs = list(r.records())
    assert len(recs) == 504 and victim.offset not in [x.offset for x in recs]
    assert recs[-1].host_time == pytest.approx(1000.0 + 499 * 0.01)
    assert (r.corrupt_records, r.truncated_bytes) == (1, 0)
    assert r.skipped_bytes == _REC_HEAD + len(victim.payload) + 4


def test_damage_then_a_torn_tail_counts_both(tmp_path):
    p = _write(tmp_path / "a.gbrec")
    recs = list(RecordingReader(p).records())
    data = bytearray(p.read_bytes())
    data[recs[100].offset + 25] ^= 0xFF  # a payload byte: the checksum fails
    p.write_bytes(bytes(data[:-5]))  # and the last record torn
    r = RecordingReader(p)
    got = list(r.records())
    assert len(got) == 503
    assert r.corrupt_records == 1 and r.truncated_bytes == _REC_HEAD + len(recs[-1].payload) + 4 - 5


def test_sync_words_inside_a_damaged_record_count_as_one(tmp_path):
    p = tmp_path / "a.gbrec"
    with RecordingWriter(p, {"transport": "stream"}) as w:
        for i in range(20):
            w.data_in(b"\xa5\x5a" * 50 + bytes([i]), 1.0 + i)
    recs = list(RecordingReader(p).records())
    data = bytearray(p.read_bytes())
    data[recs[5].offset + 2] ^= 0x01  # the kind byte
    p.write_bytes(bytes(data))
    r = RecordingReader(p)
    assert len(list(r.records())) == 19
    assert r.corrupt_records == 1 and r.skipped_bytes == _REC_HEAD + 101 + 4


@pytest.mark.parametrize("content,msg", [
    (b"", "is empty"),
    (b"time,emg\n0,1\n", "not a glutebridge recording"),
    (b"GBREC\x00\x09\x00\x02\x00\x00\x00{}", "version 9"),
    (b"GBREC\x00\x01\x00\x40\x00\x00\x00{", "truncated inside its header"),
])
def test_foreign_or_broken_files_give_one_clear_error(tmp_path, content, msg):
    p = tmp_path / "x.gbrec"
    p.write_bytes(content)
    with pytest.raises(RecordingError, match=msg):
        RecordingReader(p)


def test_missing_file_and_no_overwrite(tmp_path):
    with pytest.raises(RecordingError, match="no such file"):
        RecordingReader(tmp_path / "nope.gbrec")
    p = _write(tmp_path / "a.gbrec")
    with pytest.raises(RecordingError, match="exists"):
        RecordingWriter(p)


def test_index_that_cannot_be_created_is_one_error_and_leaves_no_file(tmp_path, monkeypatch):
    """<file>.gbrec.idx a directory: RecordingError naming the index (not a raw
    IsADirectoryError), and no empty .gbrec left to block the next attempt."""
    (tmp_path / "a.gbrec.idx").mkdir()
    with pytest.raises(RecordingError, match=r"cannot create the index .*a\.gbrec\.idx"):
        RecordingWriter(tmp_path / "a.gbrec", {})
    assert not (tmp_path / "a.gbrec").exists()
    (tmp_path / "a.gbrec.idx").rmdir()
    _write(tmp_path / "a.gbrec")  # the same name works once the cause is gone
    assert len(list(RecordingReader(tmp_path / "a.gbrec").records())) > 100

    def broken(fd):  # the disk fails as the header is synced
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(RecordingError, match="cannot write .*b.gbrec: No space left"):
        RecordingWriter(tmp_path / "b.gbrec", {})
    assert not (tmp_path / "b.gbrec").exists() and not (tmp_path / "b.gbrec.idx").exists()


def test_cli_record_with_an_unusable_index_path_is_one_line(tmp_path):
    (tmp_path / "x.gbrec.idx").mkdir()
    p = subprocess.run([sys.executable, "-m", "bridge.cli", "stream", "sim://demo?speed=20",
                        "--record", str(tmp_path / "x.gbrec"), "--duration", "1", "--view",
                        "quiet"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip().splitlines() == [
        f"glutebridge: error: cannot create the index {tmp_path / 'x.gbrec.idx'}: "
        "Is a directory; nothing was recorded"]
    assert not (tmp_path / "x.gbrec").exists()


def test_sigkill_mid_recording_loses_at_most_the_last_second(tmp_path):
    p = tmp_path / "killed.gbrec"
    code = textwrap.dedent(f"""
        import sys, time
        from bridge.recording import RecordingWriter
        w = RecordingWriter({str(p)!r}, {{"transport": "stream"}})
        i = 0
        while True:
            w.data_in(b"x" * 256, time.time())
            i += 1
            if i == 50:
                print("started", flush=True)
            time.sleep(0.001)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.stdout.readline().strip() == b"started"
    time.sleep(1.5)
    killed_at = time.time()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = RecordingReader(p)
    recs = list(r.records())
    assert len(recs) > 100
    assert killed_at - recs[-1].host_time < 1.0  # at most the last second lost
    assert r.corrupt_records == 0


def test_disk_sync_runs_off_the_loop_and_its_failure_is_reported(tmp_path, monkeypatch):
    """fsync happens on a background thread; an I/O error there surfaces as RecordingError."""
    import threading

    calls = []
    real = getattr(os, "fdatasync", os.fsync)

    def slow_sync(fd):
        calls.append(threading.current_thread().name)
        time.sleep(0.05)
        return real(fd)

    monkeypatch.setattr(os, "fdatasync", slow_sync, raising=False)
    w = RecordingWriter(tmp_path / "a.gbrec", {}, sync_interval=0.0, flush_interval=0.0)
    w.data_in(b"x" * 100, 1.0)  # flush + background sync
    w.data_in(b"y" * 100, 1.1)  # sync still in flight: not queued again
    w.close()  # waits for it, then syncs once more on the caller's thread
    assert calls[0].startswith("gbrec-sync") and len(calls) == 2
    assert [r.payload[:1] for r in RecordingReader(tmp_path / "a.gbrec").records()] == [b"x", b"y"]

    def broken(fd):
        raise OSError(5, "Input/output error")

    w = RecordingWriter(tmp_path / "b.gbrec", {}, sync_interval=0.0, flush_interval=0.0)
    monkeypatch.setattr(os, "fdatasync", broken, raising=False)  # the disk fails from now on
    w.data_in(b"x" * 100, 1.0)
    time.sleep(0.1)
    with pytest.raises(RecordingError, match="cannot write .*b.gbrec to disk"):
        w.data_in(b"y" * 100, 1.1)
    with pytest.raises(RecordingError, match="to disk"):
        w.close()
