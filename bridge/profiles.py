"""Calibration profiles: a client's rest and MVC recordings, reused by later sessions.

``glutebridge calibrate`` records a rest phase and a maximal voluntary
contraction (MVC) per channel and saves them; sessions started with
``--profile NAME`` calibrate every contraction detector with them, so onsets
use the client's real rest baseline and amplitudes come out in %MVC.  The raw
blocks are stored (not derived numbers) so that newer detectors, with other
filters, calibrate correctly from the same profile.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
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


def profile_dir() -> Path:
    base = os.environ.get("GLUTEBRIDGE_HOME") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config")), "glutebridge")
    return Path(base) / "profiles"


def _path(name: str) -> Path:
    if os.sep in name or name.endswith(".npz"):
        return Path(name)
    if not re.fullmatch(r"[\w.-]+", name):
        raise ConfigError(f"profile name {name!r}: use letters, digits, '-', '_' or '.'")
    return profile_dir() / f"{name}.npz"


def save_profile(p: Profile) -> Path:
    path = _path(p.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"rest": p.rest}
    if p.mvc is not None:
        arrays["mvc"] = p.mvc
    meta = json.dumps({"labels": list(p.labels), "rate": p.rate, "name": p.name})
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, meta=np.array(meta), **arrays)
    os.replace(tmp, path)  # never leave a half-written profile
    return path


def load_profile(name: str) -> Profile:
    path = _path(name)
    if not path.exists():
        raise ConfigError(f"no calibration profile {name!r} (looked for {path}); create it with "
                          f"`glutebridge calibrate URL --profile {name}`")
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            mvc = z["mvc"] if "mvc" in z.files else None
            return Profile(meta["name"], tuple(meta["labels"]), float(meta["rate"]), z["rest"],
                           mvc)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{path} is not a glutebridge profile ({exc})") from None


def apply_profile(detector, labels, rate: float, profile: Profile) -> list[str]:
    """Calibrate ``detector`` from ``profile`` where channel labels match; return notes."""
    if abs(rate - profile.rate) > 1e-6:
        return [f"profile {profile.name} was recorded at {profile.rate:g} Hz, stream runs at "
                f"{rate:g} Hz: not applied"]
    if tuple(labels) != profile.labels:
        return [f"profile {profile.name} channels {list(profile.labels)} differ from the "
                f"stream's {list(labels)}: not applied"]
    detector.calibrate_rest(profile.rest)
    if profile.mvc is not None:
        detector.calibrate_mvc(profile.mvc)
    return []
