"""Output files the user names (``-o``, ``--json``, ``--report``) are never replaced silently.

A command checks its outputs before it connects or analyses anything, so a refusal costs
nothing and writes nothing; ``--force`` overwrites.  Recordings (``--record``) have their
own, stricter rule: :class:`bridge.recording.RecordingWriter` never overwrites one.
"""

from __future__ import annotations

from pathlib import Path

from bridge.errors import ConfigError


def check_new(path, *, force: bool = False, folder: bool = False) -> None:
    """Raise :class:`ConfigError` (one line) when ``path`` exists, unless ``force``.

    ``folder``: ``path`` is an output folder (CSV export): it may exist, but a
    previous export in it (its ``events.csv``) is not overwritten without ``force``.
    """
    if path is None:
        return
    p = Path(path)
    if folder:
        if p.exists() and not p.is_dir():
            raise ConfigError(f"{path} is a file; --to csv writes a folder of CSV files: "
                              "give a folder name")
        p = p / "events.csv"
    elif p.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name")
    else:
        # Said now, before a session streams for minutes only to fail writing its results.
        parent = p.parent
        if not parent.is_dir():
            raise ConfigError(f"cannot write {path}: the folder {parent} does not exist; "
                              "create it first or choose another place")
    if force or not (p.exists() or p.is_symlink()):
        return
    if folder:
        raise ConfigError(f"{path} already holds an export ({p.name}); pass --force to "
                          "overwrite its files, or choose another folder")
    raise ConfigError(f"{path} exists; pass --force to overwrite it, or choose another name")
