"""Errors shown to users as one clear line (the CLI exits with code 2)."""


class InputError(ValueError):
    """Bad user input: unreadable file, empty grid, invalid parameter. One-line message."""
