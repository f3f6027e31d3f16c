"""Golden vectors of the wire protocol (see README.md; regenerate with generate.py)."""
