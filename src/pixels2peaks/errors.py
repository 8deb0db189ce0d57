"""Errors shown to users as one clear line (the CLI exits with code 2)."""


class InputError(ValueError):
    """Bad user input: unreadable file, empty grid, invalid parameter. One-line message."""


def check_cell_size(dx_m: object, what: str = "dx_m") -> float:
    """``dx_m`` as a float if it is a finite number of metres > 0, else :class:`InputError`.

    >>> check_cell_size("2.5")
    2.5
    """
    import math

    try:
        dx = float(dx_m)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a positive number of metres, got {dx_m!r}") from None
    if not math.isfinite(dx) or dx <= 0.0:
        raise InputError(f"{what} must be a positive number of metres, got {dx_m!r}")
    return dx


def check_finite(v: object, what: str) -> float:
    """``v`` as a float if it is a finite number (not a bool), else :class:`InputError`.

    >>> check_finite("1e3", "height")
    1000.0
    """
    import math

    if isinstance(v, bool):
        raise InputError(f"{what} must be a finite number, got {v!r}")
    try:
        out = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a finite number, got {v!r}") from None
    if not math.isfinite(out):
        raise InputError(f"{what} must be a finite number, got {v!r}")
    return out
