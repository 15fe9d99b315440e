"""Input checks shared by the golden model: one fixed sentence per rule, naming the value."""

import numbers

import numpy as np

__all__ = [
    "check_bits", "check_int", "check_int_array", "check_real_array", "check_scale",
    "check_zero_point", "check_choice", "int_range", "first_of",
]


def int_range(bits, signed):
    """Return ``(lo, hi)`` of a ``bits``-wide integer, signed or not."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def check_int(name, value, lo=None, hi=None):
    """Return ``value`` as a Python int, or raise naming ``name`` and the allowed range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must be an integer in {_span(lo, hi)}, not {value}")
    return value


def check_bits(name, value, lo=1, hi=16):
    """Check a bit width."""
    return check_int(name, value, lo, hi)


def check_choice(name, value, choices):
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, not {value!r}")
    return value


def check_int_array(name, value, lo=None, hi=None, ndim=None, widen=True):
    """Return ``value`` as an int64 array, refusing floats, bools and out-of-range values.

    Integer-valued data must arrive as an integer array: a float array is refused rather
    than silently rounded or truncated. With ``widen=False`` the array keeps its own
    integer dtype (no copy), for callers that convert it themselves.
    """
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, not an array of dtype {arr.dtype}")
    if ndim is not None and arr.ndim not in _as_tuple(ndim):
        raise ValueError(
            f"{name} must have {_ndim_text(ndim)} dimensions, not shape {arr.shape}")
    if arr.size and (lo is not None or hi is not None):
        amin, amax = int(arr.min()), int(arr.max())
        if lo is not None and amin < lo:
            raise ValueError(f"{name} must hold integers in {_span(lo, hi)}, not {amin}")
        if hi is not None and amax > hi:
            raise ValueError(f"{name} must hold integers in {_span(lo, hi)}, not {amax}")
    return arr.astype(np.int64, copy=False) if widen else arr


def check_scale(name, value, dtype=None):
    """Return a scale (scalar or array), refusing non-positive or non-finite values.

    With ``dtype`` (a floating type), the scale is returned cast to it and must still be
    positive and finite there: TFLite stores scales as float32, and a scale that rounds to 0
    or to infinity there cannot be divided by.
    """
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating)
                                     or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a real number or array of them, not {value!r}")
    bad = ~(np.isfinite(arr) & (arr > 0))
    if np.any(bad):
        raise ValueError(f"{name} must be positive and finite, not {first_of(arr, bad)!r}")
    if dtype is None:
        return arr
    with np.errstate(over="ignore"):
        cast = arr.astype(dtype)
    bad = ~(np.isfinite(cast) & (cast > 0))
    if np.any(bad):
        raise ValueError(f"{name} must be positive and finite in {np.dtype(dtype)}, "
                         f"not {first_of(arr, bad)!r}")
    return cast


def check_zero_point(name, value, bits, signed):
    """Return a zero point (scalar or array) as int64, inside the ``bits``-wide range."""
    lo, hi = int_range(bits, signed)
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an integer or integer array, not {value!r}")
    bad = (arr < lo) | (arr > hi)
    if np.any(bad):
        raise ValueError(f"{name} must be in {lo}..{hi} for {bits}-bit "
                         f"{'signed' if signed else 'unsigned'} values, "
                         f"not {first_of(arr, bad)}")
    return arr.astype(np.int64)


def check_real_array(name, value, show_dtype=False):
    """Return ``value`` as a float64 array, refusing non-real dtypes and non-finite values.

    Integer and floating values are accepted; bools, strings, objects and complex numbers
    are not. The refusal names the value itself, or with ``show_dtype`` its dtype (for
    arrays, whose repr would be long).
    """
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating)
                                     or np.issubdtype(arr.dtype, np.integer)):
        if show_dtype:
            raise TypeError(f"{name} must be a real-valued array, not an array of dtype "
                            f"{arr.dtype}")
        raise TypeError(f"{name} must be a real number or array of them, not {value!r}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if np.any(bad):
        raise ValueError(f"{name} must be finite, not {first_of(arr, bad)!r}")
    return arr


def first_of(arr, bad):
    """The first element of ``arr`` where ``bad`` holds, as a plain Python number.

    numpy 2 spells a numpy scalar's repr ``np.float64(-1.0)``; a message shows ``-1.0``.
    """
    return (arr[bad].flat[0] if arr.ndim else arr[()]).item()


def _span(lo, hi):
    if lo is None:
        return f"..{hi}"
    if hi is None:
        return f"{lo}.."
    return f"{lo}..{hi}"


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _ndim_text(ndim):
    return " or ".join(str(n) for n in _as_tuple(ndim))
