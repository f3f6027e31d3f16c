"""Implementations of the ``glutebridge`` commands (the CLI only parses arguments)."""
