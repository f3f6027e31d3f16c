"""Numbers in source URL query strings (``sim://demo?speed=4``), with clear errors."""

from __future__ import annotations

import math

from bridge.errors import ConfigError


def query_number(url: str, query: dict, key: str, default, kind=float):
    """Pop ``key`` from ``query`` as a finite ``kind`` (float or int), else ``default``."""
    if key not in query:
        return default
    raw = query.pop(key)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{url}: {key}={raw!r} is not {what} (e.g. {key}=4)") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{url}: {key}={raw!r} must be finite")
    return value
