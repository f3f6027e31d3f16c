"""Live vs replay: a recorded session replays to the identical item and event lists."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.errors import RecordingError
from bridge.recording import Kind, RecordingReader, RecordingWriter
from bridge.session import Session
from bridge.simulator.device import Faults, Signals
from bridge.simulator.emg_model import Burst, simulate_emg
from bridge.sources import make_transport
from bridge.sources.base import Connection
from bridge.sources.replay import RecordingTransport, ReplayTransport, recording_meta
from bridge.stream import SampleChunk


def _signals():
    bursts = [Burst(0, t, t + 1.5, 0.4) for t in (2, 5, 8)] + [
        Burst(1, t + 0.1, t + 1.5, 0.3) for t in (2, 5, 8)]
    emg, _ = simulate_emg(2000, 11, bursts, channels=2, snr_db=16, seed=5)
    rng = np.random.default_rng(1)
    imu = np.column_stack([rng.normal(0, 0.01, (2200, 2)), 1 + rng.normal(0, 0.01, 2200),
                           rng.normal(0, 1, (2200, 3))])
    return Signals(emg, 2000.0, ("glute_max_L", "glute_max_R"), imu, 200.0,
                   markers=((0.0, 1, "rest"), (1.8, 1, "reps:bridge")))


def _key(item):
    if isinstance(item, SampleChunk):
        return ("chunk", item.stream, item.first_sample, round(item.host_time, 9),
                item.samples.tobytes())
    return (type(item).__name__, repr(item))


async def _consume(conn):
    """Open ``conn``, take every item through a Session, close it."""
    session, items, events = Session(), [], []
    await conn.open()
    try:
        async for item in conn:
            items.append(_key(item))
            events += session.handle(item)
    finally:
        await conn.close()
    events += session.finish()
    return items, [repr(e) for e in events], session


async def test_replay_gives_identical_items_and_events(tmp_path):
    path = tmp_path / "live.gbrec"
    faults = Faults(drop_rate=0.01, bit_error_rate=2e-5, disconnect_at=(6.0,), seed=4)
    inner = make_transport("sim://test", signals=_signals(), faults=faults, speed=25)
    with RecordingWriter(path, recording_meta(inner)) as writer:
        conn = Connection(RecordingTransport(inner, writer), device="pod",
                          backoff=(0.01, 0.05))
        live_items, live_events, live_session = await _consume(conn)
    assert conn.stats["link_losses"] == 1 and conn.stats["decoder"]["crc_errors"] > 0
    assert len(live_session.contractions()) >= 6

    replay = Connection(ReplayTransport(path), device="pod", autostart=False)
    rep_items, rep_events, _ = await _consume(replay)
    assert rep_items == live_items
    assert rep_events == live_events
    assert replay.stats["decoder"]["crc_errors"] == conn.stats["decoder"]["crc_errors"]
    # The recorded loss replays as one; the end of the file is not another.
    assert replay.stats["link_losses"] == 1


@pytest.mark.parametrize("legacy_end", [False, True])
async def test_the_end_of_a_recording_is_not_a_link_loss(tmp_path, legacy_end):
    path = tmp_path / "live.gbrec"
    inner = make_transport("sim://test", signals=_signals(), speed=40)
    with RecordingWriter(path, recording_meta(inner)) as writer:
        conn = Connection(RecordingTransport(inner, writer), device="pod")
        live_items, _, _ = await _consume(conn)
        if legacy_end:  # older recordings noted the end of the scenario as a reason-less loss
            writer.write(Kind.LINK_LOST, b"", 0.0)
    assert conn.stats["link_losses"] == 0
    assert [r.kind for r in RecordingReader(path).records()][-1] == (
        Kind.LINK_LOST if legacy_end else Kind.DATA_IN)

    replay = Connection(ReplayTransport(path), device="pod", autostart=False)
    rep_items, _, _ = await _consume(replay)
    assert rep_items == live_items
    for key in ("link_losses", "reconnect_attempts", "reconnects"):
        assert replay.stats[key] == conn.stats[key] == 0, key


async def test_replay_of_a_truncated_recording_still_plays(tmp_path):
    path = tmp_path / "cut.gbrec"
    inner = make_transport("sim://test", signals=_signals(), speed=25)
    with RecordingWriter(path, recording_meta(inner)) as writer:
        conn = Connection(RecordingTransport(inner, writer), device="pod")
        full, _, _ = await _consume(conn)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3 + 7])  # torn in the middle of a record
    replay = Connection(ReplayTransport(path), device="pod", autostart=False)
    items, _, _ = await _consume(replay)
    assert 0.5 * len(full) < len(items) < len(full)
    assert items == full[:len(items)]
    assert RecordingReader(path).truncated_bytes == 0  # fresh reader, counts on iteration
    assert replay.transport.extra_stats()["truncated_bytes"] > 0


def test_not_a_recording_is_one_clear_error(tmp_path):
    p = tmp_path / "emg.csv"
    p.write_text("time,emg\n")
    with pytest.raises(RecordingError, match="not a glutebridge recording"):
        ReplayTransport(p)


async def test_replay_at_full_speed_of_large_recorded_reads_drops_nothing(tmp_path):
    # A host that fell behind reads a byte stream in large pieces (a --speed 100 demo
    # recorded reads of ~0.5 MB, thousands of packets each). Replayed as fast as possible,
    # those reads overflowed the connection's queue: `analyze` of a demo recording lost
    # 100k samples (the hold and both stance trials) that the live run had.
    bursts = [Burst(c, t + 0.1 * c, t + 1.5, 0.4) for t in range(2, 38, 4) for c in (0, 1)]
    emg, _ = simulate_emg(2000, 40, bursts, channels=2, snr_db=16, seed=3)
    rng = np.random.default_rng(2)
    imu = np.column_stack([rng.normal(0, 0.01, (8000, 2)), 1 + rng.normal(0, 0.01, 8000),
                           rng.normal(0, 1, (8000, 3))])
    sig = Signals(emg, 2000.0, ("glute_max_L", "glute_max_R"), imu, 200.0,
                  markers=((0.0, 1, "rest"), (1.8, 1, "reps:bridge")))
    path, merged = tmp_path / "live.gbrec", tmp_path / "big_reads.gbrec"
    inner = make_transport("sim://test", signals=sig, speed=200)
    with RecordingWriter(path, recording_meta(inner)) as writer:
        conn = Connection(RecordingTransport(inner, writer), device="pod")
        live_items, live_events, live_session = await _consume(conn)
    assert conn.stats["queue_dropped"] == 0
    assert len(live_session.contractions()) == 18
    # The same bytes as a few large reads: the first record (the handshake) stays alone.
    recs = list(RecordingReader(path).records())
    data = [r for r in recs if r.kind == Kind.DATA_IN]
    with RecordingWriter(merged, RecordingReader(path).meta) as writer:
        for r in recs:
            if r.kind != Kind.DATA_IN:
                writer.write(r.kind, r.payload, r.host_time)
        writer.write(Kind.DATA_IN, data[0].payload, data[0].host_time)
        rest = b"".join(r.payload for r in data[1:])
        for k in range(3):
            piece = rest[k * len(rest) // 3:(k + 1) * len(rest) // 3]
            writer.write(Kind.DATA_IN, piece, data[-1].host_time)
    assert len(live_items) > 3 * 4096 // 2  # more items than a third of them fit the queue

    replay = Connection(ReplayTransport(merged), device="pod", autostart=False)
    rep_items, rep_events, rep_session = await _consume(replay)
    assert replay.stats["queue_dropped"] == replay.stats["samples_dropped"] == 0
    n_samples = sum(len(i[4]) for i in rep_items if i[0] == "chunk")
    assert n_samples == sum(len(i[4]) for i in live_items if i[0] == "chunk")
    assert [(c.channel, c.onset_sample, c.offset_sample) for c in rep_session.contractions()] \
        == [(c.channel, c.onset_sample, c.offset_sample) for c in live_session.contractions()]
