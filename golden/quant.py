"""Affine quantization parameters, quantize and dequantize (per tensor or per channel)."""

import numpy as np

from ._validate import (
    check_bits,
    check_int,
    check_int_array,
    check_real_array,
    check_scale,
    check_zero_point,
    int_range,
)
from .fixedpoint import round_half_away

__all__ = ["choose_qparams", "quantize", "dequantize", "qrange"]


def qrange(bits=8, signed=True, narrow_range=False):
    """Integer range ``(qmin, qmax)`` of a type; ``narrow_range`` drops the lowest code."""
    bits = check_bits("bits", bits, 1, 16)
    lo, hi = int_range(bits, signed)
    return lo + int(bool(narrow_range)), hi


def choose_qparams(min, max, bits=8, signed=True, symmetric=False, narrow_range=False):
    """Scale and zero point covering ``[min, max]``, nudged so that real 0.0 is exact.

    The range is first widened to contain 0. Asymmetric (the rule of gemmlowp's and
    TFLite's ``ChooseQuantizationParams``): ``scale = (max - min) / (qmax - qmin)``; the zero
    point is computed from whichever end (``qmin - min/scale`` or ``qmax - max/scale``) has
    the smaller rounding error, then clamped to ``[qmin, qmax]`` and rounded half away from
    zero. Symmetric (TFLite's weight quantizer): zero point 0 and
    ``scale = max(|min|, |max|) / qmax``; it needs ``signed=True`` and ``bits >= 2``. A range
    that is the single point 0 gives scale 1.0 and zero point 0, clamped into
    ``[qmin, qmax]`` (TFLite gives scale 0, which cannot be used); a range so narrow that
    its scale underflows to 0 (about 1e-321) is refused.

    ``min`` and ``max`` may be scalars (per tensor) or arrays of equal shape (per channel:
    one entry per channel); the result has the same shape. To quantize per channel, pass
    the resulting arrays to :func:`quantize` with ``axis=`` naming the channel axis.

    Returns
    -------
    scale : float64 scalar or array
    zero_point : int64 scalar or array
    """
    qmin, qmax = qrange(bits, signed, narrow_range)
    if qmax <= qmin:
        raise ValueError(f"bits must leave at least two codes, not {bits} with "
                         f"narrow_range={narrow_range}")
    lo = check_real_array("min", min)
    hi = check_real_array("max", max)
    if lo.shape != hi.shape:
        raise ValueError(f"min and max must have the same shape, not {lo.shape} and {hi.shape}")
    bad = lo > hi
    if np.any(bad):
        raise ValueError(f"min must not exceed max, not {lo[bad].flat[0]} > {hi[bad].flat[0]}")
    lo = np.minimum(lo, 0.0)
    hi = np.maximum(hi, 0.0)
    point = hi == lo
    if symmetric:
        if not signed:
            raise ValueError("symmetric quantization needs signed=True, not signed=False")
        if qmax < 1:
            # A signed 1-bit code has no positive value to scale onto: qmax is 0.
            raise ValueError(f"symmetric quantization needs bits >= 2, not {bits}")
        scale = np.maximum(np.abs(lo), np.abs(hi)) / qmax
    else:
        scale = (hi - lo) / float(qmax - qmin)
    # A range narrower than about 255 * 5e-324 has a scale that underflows to 0: there is
    # no usable scale (and the zero point would divide by it), so refuse it.
    underflow = (scale == 0) & ~point
    if np.any(underflow):
        raise ValueError(f"min and max must span a range with a positive float64 scale, not "
                         f"[{lo[underflow].flat[0]}, {hi[underflow].flat[0]}]")
    scale = np.where(point, 1.0, scale)
    if symmetric:
        zero_point = np.zeros(lo.shape, dtype=np.int64)
    else:
        from_min = qmin - lo / scale
        from_max = qmax - hi / scale
        err_min = abs(qmin) + np.abs(lo / scale)
        err_max = abs(qmax) + np.abs(hi / scale)
        zp = np.where(err_min < err_max, from_min, from_max)
        zp = np.where(point, 0.0, zp)
        zero_point = np.clip(round_half_away(np.clip(zp, qmin, qmax)), qmin, qmax).astype(np.int64)
    if lo.ndim == 0:
        return float(scale), int(zero_point)
    return scale, zero_point


def _broadcast_channel(name, value, x, axis):
    """Shape a per-channel parameter to broadcast along ``axis`` of ``x``."""
    value = np.asarray(value)
    if axis is None:
        if value.ndim != 0:
            raise ValueError(f"{name} must be a scalar when axis is None, not shape {value.shape}")
        return value
    axis = check_int("axis", axis, -x.ndim, x.ndim - 1) % x.ndim
    if value.ndim != 1 or value.shape[0] != x.shape[axis]:
        raise ValueError(f"{name} must have one entry per channel ({x.shape[axis]} along axis "
                         f"{axis}), not shape {value.shape}")
    shape = [1] * x.ndim
    shape[axis] = -1
    return value.reshape(shape)


def quantize(x, scale, zero_point, bits=8, signed=True, narrow_range=False, axis=None):
    """Quantize real values: ``clamp(round_half_away(x / scale) + zero_point, qmin, qmax)``.

    This is TFLite's ``AffineQuantize`` (C's ``round``, not numpy's banker's rounding). The
    division happens in ``x``'s floating type (float32 for float32 inputs, as in TFLite).
    ``axis`` names the channel axis when ``scale`` and ``zero_point`` are per-channel arrays.

    Returns
    -------
    numpy.ndarray of the smallest integer dtype holding ``bits`` (int8/uint8, int16/uint16).
    """
    qmin, qmax = qrange(bits, signed, narrow_range)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a floating-point array, not an array of dtype {x.dtype}")
    scale = _broadcast_channel("scale", check_scale("scale", scale, x.dtype), x, axis)
    zero_point = _broadcast_channel(
        "zero_point", check_zero_point("zero_point", zero_point, bits, signed), x, axis)
    q = round_half_away(x / scale)
    q = np.clip(q, qmin - (1 << 17), qmax + (1 << 17)).astype(np.int64) + zero_point
    dtype = (np.int8 if signed else np.uint8) if bits <= 8 else (np.int16 if signed else np.uint16)
    return np.clip(q, qmin, qmax).astype(dtype)


def dequantize(q, scale, zero_point, axis=None):
    """Real values of quantized codes: ``scale * (q - zero_point)`` in float64."""
    q = check_int_array("q", q)
    scale = _broadcast_channel("scale", check_scale("scale", scale), q, axis).astype(np.float64)
    zp = np.asarray(zero_point)
    if zp.dtype == np.bool_ or not np.issubdtype(zp.dtype, np.integer):
        raise TypeError(f"zero_point must be an integer or integer array, not {zero_point!r}")
    zp = _broadcast_channel("zero_point", zp, q, axis)
    return scale * (q - zp).astype(np.float64)
