"""Calibration profiles: a client's rest and MVC recordings, reused by later sessions.

``glutebridge calibrate`` records a rest phase and a maximal voluntary
contraction (MVC) per channel and saves them; sessions started with
``--profile NAME`` calibrate every contraction detector with them, so onsets
use the client's real rest baseline and amplitudes come out in %MVC.  The raw
blocks are stored (not derived numbers) so that newer detectors, with other
filters, calibrate correctly from the same profile.  A recording made with a
profile carries the whole profile in its header (:func:`profile_to_meta`), so
replays and file analyses reproduce the live %MVC anywhere.  :func:`check_profile`
is the quality gate ``calibrate`` applies before saving.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bridge.errors import ConfigError


@dataclass(frozen=True)
class Profile:
    name: str
    labels: tuple[str, ...]
    rate: float
    rest: np.ndarray  # (n, channels) raw EMG at rest
    mvc: np.ndarray | None  # (n, channels) raw EMG during the MVC, or None
    created: str | None = None  # local date and time of the calibration, "YYYY-MM-DD HH:MM"

    def describe(self) -> str:
        """``calibrated DATE; channels a, b, ...`` (for one-line notes)."""
        when = self.created or "date unknown"
        return f"calibrated {when}; channels {', '.join(self.labels)}"


def now_stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M")


def profile_dir() -> Path:
    base = os.environ.get("GLUTEBRIDGE_HOME") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config")), "glutebridge")
    return Path(base) / "profiles"


def profile_path(name: str) -> Path:
    """Where profile ``name`` lives (a bare name, or a path to an .npz); checks the name."""
    if os.sep in name or name.endswith(".npz"):
        return Path(name)
    if not re.fullmatch(r"[\w.-]+", name) or name.startswith("."):
        raise ConfigError(f"profile name {name!r}: use letters, digits, '-', '_' or '.' "
                          "(no spaces or slashes, not starting with '.'), e.g. anna or "
                          "anna_smith")
    return profile_dir() / f"{name}.npz"


_path = profile_path


def _npz_bytes(p: Profile) -> bytes:
    arrays = {"rest": np.asarray(p.rest)}
    if p.mvc is not None:
        arrays["mvc"] = np.asarray(p.mvc)
    meta = json.dumps({"labels": list(p.labels), "rate": p.rate, "name": p.name,
                       "created": p.created})
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.array(meta), **arrays)
    return buf.getvalue()


def _from_npz(src, where: str, created_default: str | None = None) -> Profile:
    try:
        with np.load(src) as z:
            meta = json.loads(str(z["meta"]))
            mvc = z["mvc"] if "mvc" in z.files else None
            return Profile(meta["name"], tuple(meta["labels"]), float(meta["rate"]), z["rest"],
                           mvc, meta.get("created") or created_default)
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise ConfigError(f"{where} is not a glutebridge profile ({exc})") from None


def save_profile(p: Profile, *, keep_previous: bool = False) -> Path:
    """Write ``p`` (atomically).  ``keep_previous``: an existing profile of that name
    is kept as ``NAME.prev`` (one generation) instead of being lost."""
    path = profile_path(p.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if p.created is None:
        p = replace(p, created=now_stamp())
    tmp = path.with_suffix(".tmp.npz")
    tmp.write_bytes(_npz_bytes(p))
    if keep_previous and path.exists():
        os.replace(path, previous_path(path))
    os.replace(tmp, path)  # never leave a half-written profile
    return path


def previous_path(path: Path) -> Path:
    return path.with_name(path.name[:-len(".npz")] + ".prev.npz")


def load_profile(name: str) -> Profile:
    path = profile_path(name)
    if not path.exists():
        raise ConfigError(f"no calibration profile {name!r} (looked for {path}); create it with "
                          f"`glutebridge calibrate URL --profile {name}`")
    # Profiles saved before "created" was stored: the file's time stands in.
    mtime = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    return _from_npz(path, str(path), mtime)


# ------------------------------------------------------- profiles inside recordings
def profile_to_meta(p: Profile) -> dict:
    """``p`` as a JSON-able dict for a recording's header: the whole profile (its raw
    blocks, compressed), so the recording is analysed with it on any machine."""
    return {"name": p.name, "created": p.created, "labels": list(p.labels), "rate": p.rate,
            "npz_base64": base64.b64encode(_npz_bytes(p)).decode("ascii")}


def profile_from_meta(d: dict, where: str = "the recording's header") -> Profile:
    try:
        raw = base64.b64decode(d["npz_base64"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: unreadable calibration profile ({exc}); "
                          "use --no-profile or --profile NAME") from None
    return _from_npz(io.BytesIO(raw), where, d.get("created"))


def apply_profile(detector, labels, rate: float, profile: Profile) -> list[str]:
    """Calibrate ``detector`` from ``profile`` where channel labels match; return notes."""
    notes = compatibility(profile, labels, rate)
    if notes:
        return notes
    detector.calibrate_rest(profile.rest)
    if profile.mvc is not None:
        detector.calibrate_mvc(profile.mvc)
    return []


def compatibility(profile: Profile, labels, rate: float) -> list[str]:
    """Why ``profile`` cannot calibrate a stream of ``labels`` at ``rate`` ([] = it can)."""
    if abs(rate - profile.rate) > 1e-6:
        return [f"profile {profile.name} was recorded at {profile.rate:g} Hz, stream runs at "
                f"{rate:g} Hz: not applied"]
    if tuple(labels) != profile.labels:
        return [f"profile {profile.name} channels {list(profile.labels)} differ from the "
                f"stream's {list(labels)}: not applied"]
    return []


# ----------------------------------------------------------------- quality checks
#: A rest block is "not at rest" on a channel when, in 0.5 s windows of its envelope,
#: the loudest window is more than REST_STEADY x the median window (or the quietest
#: below 1/REST_STEADY of it).
REST_STEADY = 2.0
REST_WINDOW = 0.5
#: The MVC must reach MVC_MARGIN x the detector's onset threshold on every channel.
MVC_MARGIN = 2.0


@dataclass(frozen=True)
class ChannelCheck:
    label: str
    rest_mean: float
    rest_sd: float
    rest_steady: float  # loudest / median 0.5 s window of the rest envelope (1 = steady)
    rest_dip: float  # median / quietest window
    onset: float  # the detector's onset threshold from this rest
    mvc: float | None
    rest_ok: bool
    mvc_ok: bool | None  # None: no MVC block

    @property
    def ratio(self) -> float | None:
        return None if self.mvc is None else self.mvc / self.rest_mean


def rest_steadiness(env: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Per channel of a rest envelope (n, channels): (loudest / median, median /
    quietest) of its 0.5 s window means, after the envelope's start-up.  Both
    are near 1 at rest; either above REST_STEADY means the block was not rest."""
    n = env.shape[1]
    skip = int(round(0.25 * rate))  # the envelope's start-up, as the detector skips it
    env = env[skip:] if len(env) > 2 * skip else env
    w = max(1, int(round(REST_WINDOW * rate)))
    k = max(1, len(env) // w)
    wins = env[:k * w].reshape(k, -1, n).mean(axis=1) if len(env) >= w else env.mean(0)[None]
    med = np.median(wins, axis=0)
    tiny = np.finfo(float).tiny
    return wins.max(axis=0) / np.maximum(med, tiny), med / np.maximum(wins.min(axis=0), tiny)


def check_profile(p: Profile, detector_params: dict | None = None) -> list[ChannelCheck]:
    """Per-channel quality of a calibration (see REST_STEADY and MVC_MARGIN).

    Rest: at rest the envelope of surface EMG is the electrode and amplifier noise,
    which is stationary: its 0.5 s means stay within about +-20 %.  A contraction,
    even a weak one (a few %MVC), at least doubles the envelope for longer than
    0.5 s; a client who relaxes only part way into the phase leaves quiet windows
    well below the rest of it.  Either way the baseline (mean, SD) would be inflated
    and the detector's onset threshold (mean + k_on SD) pushed above real
    contractions, so such a rest is rejected.
    MVC: the detector fires at max(mean + k_on SD, min_ratio x mean) of the rest
    envelope.  The MVC level must be at least MVC_MARGIN times that, so that a
    contraction at half the MVC is still detected and %MVC is not dominated by noise.
    """
    from bridge.emg import ContractionDetector

    params = dict(detector_params or {})
    k_on = float(params.get("k_on", 10.0))
    min_ratio = float(params.get("min_ratio", 2.5))
    n = len(p.labels)
    det = ContractionDetector(n, p.rate, **params)
    mu, sd = det.calibrate_rest(p.rest)
    env = det.filter.fresh().process(np.ascontiguousarray(p.rest, dtype=float))
    steady, dip = rest_steadiness(env, p.rate)
    onset = np.maximum(mu + k_on * sd, min_ratio * mu)
    mvc = det.calibrate_mvc(p.mvc) if p.mvc is not None else None
    out = []
    for i, label in enumerate(p.labels):
        rest_ok = bool(steady[i] <= REST_STEADY and dip[i] <= REST_STEADY)
        m = None if mvc is None else float(mvc[i])
        out.append(ChannelCheck(label, float(mu[i]), float(sd[i]), float(steady[i]),
                                float(dip[i]), float(onset[i]), m, rest_ok,
                                None if m is None else bool(m >= MVC_MARGIN * onset[i])))
    return out


# ------------------------------------------------------------ choosing and announcing
def resolve_profile(name: str | None = None, *, recorded: dict | None = None,
                    no_profile: bool = False) -> tuple[Profile | None, str]:
    """The profile a session uses, and where it came from.

    ``--profile NAME`` wins over the profile stored in a recording
    (``recorded``: its header entry); ``no_profile`` ignores both.
    """
    if no_profile:
        return None, ""
    if name:
        return load_profile(name), ""
    if recorded:
        return profile_from_meta(recorded), "stored in the recording"
    return None, ""


class ProfileNote:
    """A sink that says, at each EMG stream's first block, whether the profile applied.

    ``say(text)`` prints the line (the caller picks stdout, stderr or nothing).
    After the run, ``applied`` tells whether any stream was calibrated by it.
    """

    def __init__(self, profile: Profile | None, say, origin: str = "") -> None:
        self.profile = profile
        self.say = say
        self.origin = origin
        self.seen: set = set()
        self.applied = False

    def on_item(self, item) -> None:
        from bridge.stream import SampleChunk

        if self.profile is None or not isinstance(item, SampleChunk) or item.kind != "emg":
            return
        key = (item.device, item.stream)
        if key in self.seen:
            return
        self.seen.add(key)
        why = compatibility(self.profile, item.labels, item.rate)
        if why:
            self.say(f"warning: {why[0]}; results are not calibrated (no %MVC)")
            return
        self.applied = True
        origin = f"; {self.origin}" if self.origin else ""
        self.say(f"profile {self.profile.name} applied ({self.profile.describe()}{origin})")

    def after(self, results: dict) -> None:
        """Warn when the calibrated run found no contraction at all, where the
        session asked for some (a free stream, or an mvc/reps/hold phase; a
        stance-only protocol expects none)."""
        if not self.applied:
            return
        devices = results.get("devices", {}).values()
        n = sum(len(d.get("contractions", ())) for d in devices)
        expected = any(not d.get("phases") or any(ph.get("phase") in ("mvc", "reps", "hold")
                                                  for ph in d["phases"])
                       for d in devices)
        if n == 0 and expected:
            self.say(f"warning: no contractions detected with profile {self.profile.name}. If "
                     "the client did contract, its rest baseline is probably too high (a "
                     "contraction during the rest phase): calibrate again, or compare with "
                     "--no-profile")
