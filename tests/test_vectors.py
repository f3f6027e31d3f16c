"""Golden vectors: Python generator, Python decoders, C encoder and C header agree.

(a) regenerating the vectors gives exactly the committed files;
(b) every vector decodes (whole, byte by byte, all concatenated) to its packets
    with zero error counters, and the notification vectors through
    NotificationDecoder;
(c) the C encoder rebuilds every vector byte for byte (``make test``) and frames
    random packets exactly like ``framing.frame``;
(d) every constant in ``gbp.h`` equals its Python counterpart.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from firmware_protocol import (
    NotificationDecoder,
    StreamDecoder,
    framing,
    packets,
)
from firmware_protocol.decoder import DecoderStats
from firmware_protocol.vectors import generate

REPO = Path(__file__).resolve().parent.parent
VECTOR_DIR = REPO / "firmware_protocol" / "vectors"
C_DIR = REPO / "firmware_protocol" / "c"

VECTORS = generate.packet_vectors()
FILES = generate.all_files()
PACKET_FILES = {"%02d_%s.hex" % (i, v.name): v for i, v in enumerate(VECTORS, start=1)}


def read_hex(path: Path) -> tuple[str, list[str]]:
    """(comment line, data lines) of a vector file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0], lines[1:]


# ---------------------------------------------------------------- (a) files


def test_committed_files_equal_regenerated():
    on_disk = {p.name for p in VECTOR_DIR.glob("*.hex")}
    assert on_disk == set(FILES), "run: python -m firmware_protocol.vectors.generate"
    for name, text in FILES.items():
        assert (VECTOR_DIR / name).read_text(encoding="utf-8") == text, name


def test_generation_is_deterministic(tmp_path):
    assert generate.main(["--out", str(tmp_path)]) == 0
    again = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.hex")}
    assert again == FILES


@pytest.mark.parametrize("name", sorted(FILES))
def test_file_format(name):
    comment, data = read_hex(VECTOR_DIR / name)
    assert comment.startswith("# ") and len(comment) > 10
    assert data, "no data lines"
    for line in data:
        assert re.fullmatch(r"(?:[0-9a-f]{2})+", line), line
    if name in PACKET_FILES:
        assert all(len(line) == 64 for line in data[:-1]) and len(data[-1]) <= 64
        assert bytes.fromhex("".join(data)) == PACKET_FILES[name].framed
    else:
        payload = int(re.fullmatch(r"notify_payload(\d+)\.hex", name).group(1))
        assert all(len(line) // 2 <= payload for line in data)


def test_coverage_of_the_protocol():
    """Every packet type, opcode, ack status, flag and edge value the brief lists."""
    pkts = [p for v in VECTORS for p in v.packets]
    types = {int(p.type) if isinstance(p, packets.SampleBlock) else
             int(packets.pack_body(p)[0]) for p in pkts}
    assert types == {int(t) for t in packets.PacketType}
    assert {int(p.opcode) for p in pkts if isinstance(p, packets.Command)} == \
        {int(o) for o in packets.Opcode}
    assert {int(p.status) for p in pkts if isinstance(p, packets.Ack)} == \
        {int(s) for s in packets.AckStatus}
    flags = 0
    for p in pkts:
        if isinstance(p, packets.Status):
            flags |= int(p.flags)
    assert flags == sum(int(f) for f in packets.StatusFlags)
    seqs = {p.seq for p in pkts}
    assert {0, 0xFFFF} <= seqs
    assert 0xFFFFFFFF in {p.t_us for p in pkts if hasattr(p, "t_us")}
    blocks = [p for p in pkts if isinstance(p, packets.SampleBlock)]
    assert any(p.sample_format == packets.SampleFormat.INT32 for p in blocks)
    extremes = {int(x) for b in blocks if b.sample_format == packets.SampleFormat.INT16
                for x in b.counts().ravel()}
    assert {-32768, 32767} <= extremes
    assert any(len(generate.encode(b)) > 254 for b in blocks)
    assert any(generate.encode(b)[:-1].count(0) == 0 and b.data.count(0) > 500 for b in blocks)
    assert max(len(generate.encode_packet(p)) for p in pkts) == packets.MAX_PACKET_SIZE
    infos = [p for p in pkts if isinstance(p, packets.DeviceInfo)]
    assert any([len(s.channels) for s in d.streams] == [8, 6] for d in infos)
    strings = [s for p in pkts for s in (getattr(p, "text", None), getattr(p, "message", None),
                                         getattr(p, "name", None)) if s is not None]
    assert "" in strings and 255 in {len(s.encode()) for s in strings}


@pytest.mark.parametrize("run", [253, 254, 255])
def test_cobs_run_vectors_hit_the_group_limit(run):
    vec = next(v for v in VECTORS if v.name == f"marker_cobs_run_{run}")
    frame = vec.framed
    # walk the COBS groups: the last one(s) must hold exactly `run` bytes
    pos, groups = 0, []
    while frame[pos] != 0:
        groups.append(frame[pos])
        pos += frame[pos]
    assert pos == len(frame) - 1
    tail = {253: [0xFE], 254: [0xFF], 255: [0xFF, 0x02]}[run]
    assert groups[-len(tail):] == tail
    assert sum(g - 1 for g in groups[-len(tail):]) == run


# ---------------------------------------------------------------- (b) decoding

CLEAN = DecoderStats().as_dict()
ERROR_COUNTERS = ("crc_errors", "framing_errors", "resyncs", "bytes_discarded", "malformed",
                  "unknown_types", "incompatible", "seq_gaps", "samples_lost", "duplicates",
                  "restarts", "notifications_lost")


def assert_clean(stats: DecoderStats) -> None:
    d = stats.as_dict()
    assert {k: d[k] for k in ERROR_COUNTERS} == {k: CLEAN[k] for k in ERROR_COUNTERS}


@pytest.mark.parametrize("vec", VECTORS, ids=[v.name for v in VECTORS])
def test_vector_decodes_whole_and_byte_by_byte(vec):
    dec = StreamDecoder()
    assert dec.feed(vec.framed) == list(vec.packets)
    assert_clean(dec.stats)
    assert dec.stats.packets == len(vec.packets)

    dec = StreamDecoder()
    got = []
    for i in range(len(vec.framed)):
        got += dec.feed(vec.framed[i:i + 1])
    assert got == list(vec.packets)
    assert_clean(dec.stats)


def test_all_vectors_concatenated_are_one_clean_session():
    stream = b"".join(v.framed for v in VECTORS)
    want = [p for v in VECTORS for p in v.packets]
    dec = StreamDecoder()
    assert dec.feed(stream) == want
    assert_clean(dec.stats)
    assert dec.stats.frames == dec.stats.packets == len(want)
    assert dec.stats.bytes == len(stream)
    # the same through random chunking, including empty chunks
    rng = random.Random(7)
    dec, got, pos = StreamDecoder(), [], 0
    while pos < len(stream):
        n = rng.choice((0, 1, 2, 7, 64, 300))
        got += dec.feed(stream[pos:pos + n])
        pos += n
    assert got == want
    assert_clean(dec.stats)


@pytest.mark.parametrize("payload", generate.NOTIFY_PAYLOADS)
def test_notification_vectors(payload):
    _, lines = read_hex(VECTOR_DIR / f"notify_payload{payload}.hex")
    notes = [bytes.fromhex(line) for line in lines]
    stream = generate.notification_stream()
    assert [n[0] for n in notes] == [i % 256 for i in range(len(notes))]
    assert all(len(n) == payload for n in notes[:-1]) and 2 <= len(notes[-1]) <= payload
    assert b"".join(n[1:] for n in notes) == stream
    dec = NotificationDecoder()
    got = [p for n in notes for p in dec.feed(n)]
    by_name = {v.name: v for v in VECTORS}
    assert got == [p for name in generate.NOTIFY_STREAM for p in by_name[name].packets]
    assert_clean(dec.stats)
    assert dec.stats.notifications == len(notes)


# ---------------------------------------------------------------- (c) C encoder

HAVE_TOOLCHAIN = shutil.which("make") is not None and (
    shutil.which("cc") is not None or shutil.which("gcc") is not None)
needs_cc = pytest.mark.skipif(not HAVE_TOOLCHAIN,
                              reason="C toolchain (make and cc/gcc) not installed; "
                                     "apt-get install build-essential to run the C checks")


@pytest.fixture(scope="module")
def c_test_output():
    proc = subprocess.run(["make", "-s", "-C", str(C_DIR), "test"], capture_output=True,
                          text=True, timeout=120)
    return proc


@needs_cc
def test_c_encoder_matches_every_vector(c_test_output):
    out = c_test_output.stdout
    assert c_test_output.returncode == 0, out + c_test_output.stderr
    passed = {m.group(1) for m in re.finditer(r"^PASS (\S+?):", out, re.M)}
    # every committed vector file is checked by the C program
    assert {Path(name).stem for name in FILES} <= passed
    assert {"crc16_check_value", "buffer_bounds"} <= passed
    assert not re.search(r"^FAIL", out, re.M)
    assert re.search(r"^\d+ passed, 0 failed$", out, re.M)


@needs_cc
def test_c_frame_equals_python_frame_on_random_packets(c_test_output):
    """COBS edge cases beyond the vectors: lengths around 254 multiples, zero densities."""
    assert c_test_output.returncode == 0
    rng = random.Random(2026)
    lengths = [0, 1, 2, 251, 252, 253, 254, 255, 256, 505, 506, 507, 508, 509, 1016,
               packets.MAX_PACKET_SIZE] + [rng.randrange(0, 600) for _ in range(150)]
    pkts = []
    for n in lengths:
        p_zero = rng.choice((0.0, 0.0, 0.01, 0.3, 1.0))
        pkts.append(bytes(0 if rng.random() < p_zero else rng.randrange(1, 256)
                          for _ in range(n)))
    proc = subprocess.run([str(C_DIR / "build" / "test_vectors"), "--frame"],
                          input="".join(p.hex() + "\n" for p in pkts), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = proc.stdout.splitlines()
    assert len(got) == len(pkts)
    for p, line in zip(pkts, got):
        assert bytes.fromhex(line) == framing.frame(p), len(p)
        assert len(line) // 2 <= framing.max_frame_size(len(p))


@needs_cc
@pytest.mark.parametrize("payload", [2, 3, 20, 23, 244, 512])
def test_c_packer_equals_python_packer(c_test_output, payload):
    """Random pushes, with and without flush, including empty ones."""
    assert c_test_output.returncode == 0
    rng = random.Random(payload)
    pushes = [(rng.random() < 0.5, bytes(rng.randrange(256) for _ in range(
        rng.choice((0, 1, 5, payload - 1, payload, 3 * payload + 1, 700))))) for _ in range(60)]
    proc = subprocess.run([str(C_DIR / "build" / "test_vectors"), "--notify", str(payload)],
                          input="".join("%s %s\n" % ("F" if f else "N", d.hex()) for f, d in pushes),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = [[bytes.fromhex(x) for x in block.split("\n") if x]
           for block in proc.stdout.split("-\n")[:-1]]
    packer = generate.NotificationPacker(payload)
    want = [packer.push(d, flush=f) for f, d in pushes]
    assert got == want


# ---------------------------------------------------------------- (d) header constants


def header_defines() -> dict[str, object]:
    text = (C_DIR / "gbp.h").read_text(encoding="utf-8")
    out = {}
    for name, value in re.findall(r"^#define (GBP_\w+) +(\"[^\"]*\"|[-0-9xXa-fA-F()]+)",
                                  text, re.M):
        value = value.strip("()")
        out[name] = value.strip('"') if value.startswith('"') else int(value, 0)
    return out


DEFINES = header_defines()

ENUMS = [("GBP_TYPE_", packets.PacketType), ("GBP_KIND_", packets.ChannelKind),
         ("GBP_FORMAT_", packets.SampleFormat), ("GBP_OP_", packets.Opcode),
         ("GBP_ACK_", packets.AckStatus), ("GBP_FLAG_", packets.StatusFlags)]


@pytest.mark.parametrize("prefix,enum", ENUMS, ids=[p for p, _ in ENUMS])
def test_header_enum_constants_match_python(prefix, enum):
    in_c = {k[len(prefix):]: v for k, v in DEFINES.items() if k.startswith(prefix)}
    in_py = {m.name: int(m) for m in enum.__members__.values()}
    assert in_c == in_py


def test_header_scalar_constants_match_python():
    assert DEFINES["GBP_PROTOCOL_VERSION"] == packets.PROTOCOL_VERSION
    assert DEFINES["GBP_MAX_PACKET_SIZE"] == packets.MAX_PACKET_SIZE
    assert DEFINES["GBP_HEADER_SIZE"] == packets.HEADER_SIZE
    assert DEFINES["GBP_BLOCK_HEADER_SIZE"] == packets.BLOCK_HEADER_SIZE
    assert DEFINES["GBP_CONTROL_STREAM"] == packets.CONTROL_STREAM
    assert DEFINES["GBP_CRC_CHECK_VALUE"] == framing.CRC_CHECK_VALUE
    assert DEFINES["GBP_SERVICE_UUID"] == packets.SERVICE_UUID
    assert DEFINES["GBP_DATA_CHAR_UUID"] == packets.DATA_CHAR_UUID
    assert DEFINES["GBP_COMMAND_CHAR_UUID"] == packets.COMMAND_CHAR_UUID


def test_header_max_frame_macro_matches_python():
    text = (C_DIR / "gbp.h").read_text(encoding="utf-8")
    macro = re.search(r"#define GBP_MAX_FRAME_SIZE\(n\) (.+)", text).group(1)
    expr = macro.replace("/", "//")
    for n in (0, 1, 251, 252, 253, 506, packets.MAX_PACKET_SIZE):
        assert eval(expr, {"n": n}) == framing.max_frame_size(n)  # noqa: S307 - our own header


def test_readme_lists_every_vector():
    readme = (VECTOR_DIR / "README.md").read_text(encoding="utf-8")
    missing = [name for name in FILES if f"`{name}`" not in readme]
    assert not missing, f"describe these in firmware_protocol/vectors/README.md: {missing}"
