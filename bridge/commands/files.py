"""``analyze``, ``export`` and ``report``: work on recordings and CSV files."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from bridge.commands.outfiles import check_new
from bridge.errors import ConfigError, GlutebridgeError, RecordingError
from bridge.export import Collector, annotations_from, to_c3d, to_csv, to_edf
from bridge.profiles import ProfileNote, resolve_profile
from bridge.recording import MAGIC, RecordingReader
from bridge.results import session_results
from bridge.session import Session
from bridge.sources.base import Connection
from bridge.sources.replay import ReplayTransport, damage_note
from bridge.stream import Gap, SampleChunk


def is_recording(path) -> bool:
    """A glutebridge recording by its header, or by its .gbrec name (the reader then says
    what is wrong with it); anything else is read as CSV."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC or Path(path).suffix.lower() == ".gbrec"
    except PermissionError:
        raise ConfigError(f"{path}: permission denied; check the file's owner and mode "
                          "(`ls -l`)") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory; give a recording (.gbrec) or a CSV file") \
            from None


#: What the file commands read, for the errors that say a file is neither.
ACCEPTED = ("analyze, report and export read recordings made with --record and CSV files of "
            "EMG columns in mV (a time column, or --rate HZ)")


def not_readable(path, looks: str | None = None) -> ConfigError:
    """The error for a file that is neither a recording nor a CSV file of numbers."""
    return ConfigError(f"{path} is not a glutebridge recording (.gbrec) or a CSV file of EMG "
                       f"samples: it looks like {looks or describe_file(path)}. {ACCEPTED}")


def describe_file(path) -> str:
    """What a file looks like, in words (for errors): 'an HTML page', 'a PDF document'..."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        return f"an unreadable file ({exc.strerror})"
    if not head:
        return "an empty file (0 bytes)"
    if head.startswith(MAGIC):
        return "a glutebridge recording"
    if p.name.lower().endswith(".gbrec.idx"):
        return "the index beside a recording (give the .gbrec file itself)"
    for magic, what in _MAGICS:
        if head.startswith(magic):
            return what
    if b"\x00" in head:
        return "binary data" + (" (a C3D file?)" if p.suffix.lower() == ".c3d" else "")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the 4096th byte
            return "binary data"
        text = head[:exc.start].decode("utf-8")
    start = text.lstrip().lower()
    if start.startswith(("<!doctype html", "<html")) or "<html" in start[:1000]:
        return "an HTML page" + (" (a glutebridge report? analyze the recording it came "
                                 "from)" if "glutebridge" in start else "")
    if start.startswith("<"):
        return "an XML document"
    if start.startswith(("{", "[")):
        return "JSON" + (" (glutebridge results: they are already analysed)"
                         if '"devices"' in text else "")
    lines = text.splitlines()[1:]  # past a header
    if len(head) == 4096:
        lines = lines[:-1]  # cut at 4096 bytes
    try:
        delimiter = csv.Sniffer().sniff(text, delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = None
    if lines and delimiter and sum(_numeric_row(r) for r in csv.reader(
            lines, delimiter=delimiter)) >= len(lines) / 2:
        return "a CSV file of numbers"
    return "text without rows of numbers"


_MAGICS = (
    (b"0       ", "an EDF file (export output, not input)"),
    (b"\xffBIOSEMI", "a BDF file (export output, not input)"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an Excel or OpenDocument sheet? save it as CSV)"),
    (b"\x1f\x8b", "gzip-compressed data (decompress it first)"),
)


async def _replay_all(path, session: Session, collector: Collector | None,
                      progress: bool, console: Console, note=None) -> dict:
    transport = ReplayTransport(path, speed=0)
    size = max(1, Path(path).stat().st_size)
    conn = Connection(transport, autostart=False,
                      device=transport.reader.meta.get("device") or transport.url)
    await conn.open()
    try:
        # (no bar when the console is not a terminal: it would only leave a blank line)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                      console=console, transient=True,
                      disable=not (progress and console.is_terminal)) as bar:
            task = bar.add_task(f"analysing {Path(path).name}", total=size)
            n = 0
            async for item in conn:
                if collector is not None:
                    collector.add(item)
                if note is not None:
                    note.on_item(item)
                session.handle(item)
                n += 1
                if n % 500 == 0:
                    # Records are delivered in file order: offset tracks progress.
                    bar.update(task, completed=transport.position)
        session.finish()
    finally:
        await conn.close()
    return conn.stats


def load_csv(path, rate: float | None, columns: list[str] | None,
             time_column: str | None = "auto") -> tuple[np.ndarray, list[str], float]:
    """Numeric columns of a CSV file as (n, channels), their names and the rate.

    The rate comes from ``rate`` or from a time column (``time``, ``t``,
    ``time_s``...) when the samples are evenly spaced.
    """
    try:
        with open(path, newline="") as fh:
            sample = fh.read(4096)
            fh.seek(0)
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t ")
            rows = [r for r in csv.reader(fh, dialect) if r]
    except (csv.Error, UnicodeDecodeError):
        raise not_readable(path) from None
    if not rows:
        raise not_readable(path)
    header = [h.strip() for h in rows[0]]
    if all(_is_number(h) for h in header):
        header = [f"ch{i}" for i in range(len(header))]
        body = rows
    else:
        body = rows[1:]
    numeric = sum(1 for r in body if len(r) == len(header) and _numeric_row(r))
    if numeric == 0 or numeric < len(body) / 2:
        # e.g. an HTML page or notes: no table of numbers
        raise not_readable(path, _table_kind(header, body, dialect.delimiter))
    data = np.array([[float(v) if _is_number(v) else np.nan for v in r] for r in body
                     if len(r) == len(header)])
    if data.size == 0:
        raise ConfigError(f"{path}: no numeric rows")
    tcol = None
    if time_column == "auto":
        tcol = next((i for i, h in enumerate(header)
                     if h.lower().split(" ")[0] in ("time", "t", "time_s", "f_time", "seconds")),
                    None)
    elif time_column:
        tcol = header.index(time_column)
    if rate is None:
        if tcol is None:
            raise ConfigError(f"{path}: no time column; pass --rate HZ")
        dt = np.diff(data[:, tcol])
        if dt.size == 0 or np.any(dt <= 0) or np.ptp(dt) > 0.01 * np.median(dt):
            raise ConfigError(f"{path}: the time column is not evenly spaced; pass --rate HZ")
        rate = 1.0 / float(np.median(dt))
    if columns:
        # a column by its header or by its muscle name (``glute_max_L [mV]`` or glute_max_L)
        named = [_muscle_name(h) for h in header]
        missing = [c for c in columns if c not in header and c not in named]
        if missing:
            raise ConfigError(f"{path}: no column(s) {missing}; columns are {header}")
        idx = [header.index(c) if c in header else named.index(c) for c in columns]
    else:
        idx = [i for i in range(len(header)) if i != tcol]
    x = data[:, idx]
    # Rows with an empty cell are samples that were lost (an export leaves them empty and
    # keeps their time): they stay, as NaN, so every later sample keeps its time and the
    # session sees a gap there, as live.  Dropping them spliced the signal: every onset
    # after a hole came early by the samples lost (-0.36 s at the end of an exported
    # 3 x 10 bridge session) and each splice's step read as a contraction on quiet
    # channels.  Only trailing incomplete rows (e.g. holding only some columns) are cut.
    complete = np.flatnonzero(~np.isnan(x).any(axis=1))
    if complete.size == 0:
        raise ConfigError(f"{path}: no row has a number in every column")
    x = x[:complete[-1] + 1]
    return x, [_muscle_name(header[i]) for i in idx], float(rate)


def _muscle_name(header: str) -> str:
    """A column header as a muscle name: an export's ``glute_max_L [mV]`` is glute_max_L.

    The unit is not part of the name: with it, the names matched no side pattern
    (``glute_max_L [mV]``), so the firing order and latencies per side were left out and
    the symmetry rows read ``glute_max_``.
    """
    name = header.strip()
    if name.endswith("[mV]") and name[:-4].strip():
        return name[:-4].strip()
    return name


def _table_kind(header: list[str], body: list[list[str]], delimiter: str) -> str | None:
    """A table with text in its rows, in words; None when it is no table (describe_file)."""
    if [h.lower() for h in header] == ["onset_s", "duration_s", "event"]:
        return ("the events of an export (its samples are in the *_emg*.csv file beside "
                "it)")
    if len(header) < 2 or delimiter == " ":  # words split at spaces: prose, not a table
        return None
    for r in body:
        if len(r) == len(header) and any(_is_number(v) for v in r):
            text = next(v for v in r if v.strip() and not _is_number(v))
            return f"a table with text in its rows ({text.strip()[:40]!r})"
    return None


def _numeric_row(row: list[str]) -> bool:
    """Numbers in every cell but empty ones (lost samples in an export), at least one."""
    cells = [v for v in row if v.strip()]
    return bool(cells) and all(_is_number(v) for v in cells)


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _csv_session(path, rate, columns, session: Session, collector: Collector | None,
                 note=None) -> None:
    x, names, rate = load_csv(path, rate, columns)
    device = Path(path).stem
    block = max(1, int(rate // 20))
    lost = np.isnan(x).any(axis=1)
    # Runs of complete rows become sample chunks at their own sample index; runs of rows
    # with an empty cell become gaps, as the stream marks lost samples live (the session
    # bridges short ones in the detector and closes contractions across long ones).
    edges = np.flatnonzero(np.diff(lost.astype(np.int8))) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [x.shape[0]]])
    for a, b in zip(starts.tolist(), ends.tolist()):
        if lost[a]:
            items = [Gap(device, 1, a, b - a, a / rate, "lost")]
        else:
            items = [SampleChunk(device, 1, "emg", tuple(names), ("",) * len(names), rate,
                                 i, i / rate, np.ascontiguousarray(x[i:min(i + block, b)]))
                     for i in range(a, b, block)]
        for item in items:
            if collector is not None:
                collector.add(item)
            if note is not None:
                note.on_item(item)
            session.handle(item)
    session.finish()


def analyze(path, *, rate: float | None = None, columns: list[str] | None = None,
            progress: bool = True, console: Console | None = None,
            collector: Collector | None = None, profile: str | None = None,
            no_profile: bool = False, age: float | None = None) -> tuple[dict, Session]:
    """Results of a recording or a CSV file (EMG columns), and the session behind them.

    A recording made with a calibration profile is analysed with it (one line
    on ``console`` says so); ``profile`` names another one, ``no_profile``
    ignores it.
    """
    console = console or Console(stderr=True)
    session = Session()
    recording = is_recording(path)
    if recording and (rate is not None or columns):
        # A recording carries its own rates and channel labels: say so rather than
        # silently analysing something other than what was asked for.
        given = " and ".join(o for o, v in (("--rate", rate is not None),
                                            ("--columns", bool(columns))) if v)
        both = " and " in given
        raise ConfigError(f"{given} appl{'y' if both else 'ies'} to CSV files only; {path} is a "
                          "recording, which carries its own sample rates and channel names: "
                          f"leave {'them' if both else 'it'} out")
    recorded = RecordingReader(path).meta.get("profile") if recording else None
    session.profile, origin = resolve_profile(profile, recorded=recorded,
                                              no_profile=no_profile)
    note = ProfileNote(session.profile, lambda text: console.print(text, highlight=False, soft_wrap=True),
                       origin)
    if recording:
        stats = asyncio.run(_replay_all(path, session, collector, progress, console, note))
        results = session_results(session, age=age)
        results["link"] = json.loads(json.dumps(stats, default=str))
        damage = damage_note(results["link"])
        if damage:  # on stderr at once (export prints no summary), and in the results' notes
            console.print(f"warning: {path}: {damage}", highlight=False, soft_wrap=True)
            results["notes"].append(damage)
    else:
        _csv_session(path, rate, columns, session, collector, note)
        results = session_results(session, age=age)
    note.after(results)
    results["source"] = str(path)
    return results, session


def results_table(results: dict, console: Console) -> None:
    from bridge.sinks.console import ConsoleSink
    ConsoleSink(console).summary(results)


def results_csv(results: dict, out) -> None:
    """Contractions as CSV rows (one per contraction)."""
    w = csv.writer(out)
    w.writerow(["device", "channel", "muscle", "onset_s", "offset_s", "duration_s", "peak_mV",
                "mean_mV", "pct_mvc", "truncated", "censored_onset"])
    for dev, d in results["devices"].items():
        for c in d["contractions"]:
            w.writerow([dev, c["channel"], c["muscle"], f"{c['onset']:.4f}",
                        f"{c['offset']:.4f}", f"{c['offset'] - c['onset']:.4f}",
                        f"{c['peak']:.6g}", f"{c['mean']:.6g}",
                        "" if c["pct_mvc"] is None else f"{c['pct_mvc']:.1f}",
                        int(c["truncated"]), int(bool(c.get("censored_onset")))])


def export(path, fmt: str, out, *, rate=None, columns=None, console=None, profile=None,
           no_profile: bool = False, force: bool = False) -> list[Path]:
    """Export a recording or CSV file to csv (a folder), edf, bdf or c3d.

    Existing output files are not overwritten (nothing is written) unless ``force``.
    """
    if fmt not in ("csv", "edf", "bdf", "c3d"):
        raise ConfigError(f"unknown export format {fmt!r}: choose csv, edf, bdf or c3d")
    check_new(out, force=force, folder=fmt == "csv")
    _check_exporter(fmt)  # before the analysis, which may take a while
    collector = Collector()
    _, session = analyze(path, rate=rate, columns=columns, console=console, collector=collector,
                         profile=profile, no_profile=no_profile)
    streams = collector.streams()
    ann = annotations_from(session, collector)
    if fmt == "csv":
        return to_csv(streams, ann, out, overwrite=force)
    if fmt in ("edf", "bdf"):
        return [to_edf(streams, ann, out, bdf=fmt == "bdf")]
    if fmt == "c3d":
        return [to_c3d(streams, ann, out)]
    raise ConfigError(f"unknown export format {fmt!r}: choose csv, edf, bdf or c3d")


def _check_exporter(fmt: str) -> None:
    """The optional library a format needs, checked before any work (same words as
    bridge.export's own check)."""
    try:
        if fmt in ("edf", "bdf"):
            import pyedflib  # noqa: F401
        elif fmt == "c3d":
            import ezc3d  # noqa: F401
    except ImportError:
        extra = "c3d" if fmt == "c3d" else "export"
        what, lib = ("C3D", "ezc3d") if fmt == "c3d" else ("EDF/BDF", "pyedflib")
        raise GlutebridgeError(f"{what} export needs {lib}: pip install "
                               f"'glutebridge[{extra}]'") from None


def report(path, out, *, rate=None, columns=None, console=None, profile=None,
           no_profile: bool = False, age: float | None = None, force: bool = False) -> Path:
    """Self-contained HTML report of a recording or CSV file (an existing ``out`` is not
    overwritten unless ``force``)."""
    from bridge.report import ReportTraces, write_report

    check_new(out, force=force)
    collector = Collector()
    results, _ = analyze(path, rate=rate, columns=columns, console=console,
                         collector=collector, profile=profile, no_profile=no_profile, age=age)
    traces = ReportTraces.from_streams(collector.streams(), results)
    return write_report(out, results, traces, title=f"glutebridge — {Path(path).name}",
                        age=age)


def check_readable(path) -> None:
    """Raise a clear error early for paths that cannot be analysed."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{path}: no such file")
    if p.suffix == ".gbrec" and not is_recording(p):
        raise RecordingError(f"{path} is not a glutebridge recording (no GBREC header)")
