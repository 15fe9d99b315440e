"""TFLite's integer ADD, requantizing QUANTIZE, PAD and CONCATENATION reference kernels."""

import numpy as np

from ._validate import check_choice, check_int, check_scale, check_zero_point
from .fixedpoint import (
    activation_range,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    wrap,
)

__all__ = ["quantized_add", "add_parameters", "requantize_codes", "pad", "concatenate"]

_CODE_TYPES = {np.dtype(np.int8): (8, True), np.dtype(np.uint8): (8, False),
               np.dtype(np.int16): (16, True)}
#: TFLite's 8-bit ADD scales both inputs up by 2**20 before rescaling them.
ADD_LEFT_SHIFT = 20


def _code_array(name, value, types=(np.int8, np.uint8)):
    arr = np.asarray(value)
    allowed = [np.dtype(t) for t in types]
    if arr.dtype not in allowed:
        raise TypeError(f"{name} must be an array of {' or '.join(map(str, allowed))}, not an "
                        f"array of dtype {arr.dtype}")
    return arr


def add_parameters(a_scale, b_scale, y_scale):
    """The three ``(m0, shift)`` pairs of TFLite's 8-bit ADD, as its Prepare computes them.

    With ``twice = 2 * max(a_scale, b_scale)`` (float32): inputs ``a_scale / twice`` and
    ``b_scale / twice``, output ``twice / (2**20 * y_scale)`` (the product in float32, the
    quotients in double), each split by ``QuantizeMultiplier``. Every shift must be <= 0
    (``QuantizeMultiplierSmallerThanOneExp``).

    Raises
    ------
    ValueError
        If the output multiplier is 1 or more (``y_scale`` below ``max(a_scale, b_scale) /
        2**19``), which TFLite refuses.
    """
    a32 = np.float32(check_scale("a_scale", a_scale, np.float32))
    b32 = np.float32(check_scale("b_scale", b_scale, np.float32))
    y32 = np.float32(check_scale("y_scale", y_scale, np.float32))
    twice = np.float64(np.float32(2) * max(a32, b32))
    reals = (np.float64(a32) / twice, np.float64(b32) / twice,
             twice / np.float64(np.float32(1 << ADD_LEFT_SHIFT) * y32))
    pairs = [tuple(int(v) for v in quantize_multiplier(r)) for r in reals]
    if pairs[2][1] > 0:
        raise ValueError(f"y_scale must be at least max(a_scale, b_scale) / 2**19 for an int8 "
                         f"ADD, not {float(y_scale)!r}")
    return pairs


def quantized_add(a, b, *, a_scale, a_zero_point, b_scale, b_zero_point, y_scale,
                  y_zero_point, activation="linear"):
    """TFLite's 8-bit ``ADD`` (``reference_integer_ops::Add``), bit for bit, with broadcasting.

    Each input is centred, shifted left by 20 and rescaled by its multiplier of
    :func:`add_parameters` (two-step rounding, ``MultiplyByQuantizedMultiplier
    SmallerThanOneExp``); the int32 sum is rescaled by the output multiplier, moved to
    ``y_zero_point`` and clamped to the fused activation's range. ``a`` and ``b`` broadcast
    as numpy arrays do (TFLite's broadcasting rule).

    Parameters
    ----------
    a, b : int8 (or uint8) arrays of one dtype
    a_scale, b_scale, y_scale : float
    a_zero_point, b_zero_point, y_zero_point : int in the type's range
    activation : "linear", "relu", "relu6" or "relu_n1_to_1"

    Returns
    -------
    numpy.ndarray of the inputs' dtype, their broadcast shape
    """
    a = _code_array("a", a)
    b = _code_array("b", b, (a.dtype,))
    bits, signed = _CODE_TYPES[a.dtype]
    check_choice("activation", activation, ("linear", "relu", "relu6", "relu_n1_to_1"))
    a_zero_point = int(check_zero_point("a_zero_point", a_zero_point, bits, signed))
    b_zero_point = int(check_zero_point("b_zero_point", b_zero_point, bits, signed))
    y_zero_point = int(check_zero_point("y_zero_point", y_zero_point, bits, signed))
    (ma, sa), (mb, sb), (my, sy) = add_parameters(a_scale, b_scale, y_scale)
    act_min, act_max = activation_range(activation, float(np.float32(y_scale)), y_zero_point,
                                        bits, signed)
    scaled_a = multiply_by_quantized_multiplier(
        (a.astype(np.int64) - a_zero_point) << ADD_LEFT_SHIFT, ma, sa)
    scaled_b = multiply_by_quantized_multiplier(
        (b.astype(np.int64) - b_zero_point) << ADD_LEFT_SHIFT, mb, sb)
    raw_sum = wrap(scaled_a.astype(np.int64) + scaled_b, 32)
    out = multiply_by_quantized_multiplier(raw_sum, my, sy).astype(np.int64) + y_zero_point
    return np.clip(out, act_min, act_max).astype(a.dtype)


def requantize_codes(x, *, x_scale, x_zero_point, y_scale, y_zero_point, dtype=np.int8):
    """TFLite's integer-to-integer ``QUANTIZE`` (``reference_ops::Requantize``), bit for bit.

    ``clamp(MultiplyByQuantizedMultiplier(x - x_zp, m0, shift) + y_zp)`` to ``dtype``'s
    range, with ``(m0, shift) = QuantizeMultiplier(double(x_scale) / double(y_scale))``
    (two-step rounding). int8 and uint8 in and out, and int16 in.

    Returns
    -------
    numpy.ndarray of ``dtype``, ``x``'s shape
    """
    x = _code_array("x", x, (np.int8, np.uint8, np.int16))
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.int8), np.dtype(np.uint8)):
        raise TypeError(f"dtype must be int8 or uint8, not {dtype}")
    x_bits, x_signed = _CODE_TYPES[x.dtype]
    y_bits, y_signed = _CODE_TYPES[dtype]
    x_zero_point = int(check_zero_point("x_zero_point", x_zero_point, x_bits, x_signed))
    y_zero_point = int(check_zero_point("y_zero_point", y_zero_point, y_bits, y_signed))
    real = (np.float64(np.float32(check_scale("x_scale", x_scale, np.float32)))
            / np.float64(np.float32(check_scale("y_scale", y_scale, np.float32))))
    m0, shift = quantize_multiplier(real)
    out = multiply_by_quantized_multiplier(x.astype(np.int64) - x_zero_point, m0, shift)
    info = np.iinfo(dtype)
    return np.clip(out.astype(np.int64) + y_zero_point, info.min, info.max).astype(dtype)


def pad(x, paddings, pad_value):
    """TFLite's ``PAD`` of a quantized tensor: ``pad_value`` (its zero point) around ``x``.

    Parameters
    ----------
    x : integer array
    paddings : sequence of (before, after) pairs, one per axis of ``x``, non-negative
    pad_value : int that ``x``'s dtype holds
    """
    x = np.asarray(x)
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"x must be an integer array, not an array of dtype {x.dtype}")
    pairs = np.asarray(paddings)
    if pairs.shape != (x.ndim, 2) or not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"paddings must be {x.ndim} (before, after) integer pairs for x of "
                         f"shape {x.shape}, not {np.asarray(paddings).tolist()}")
    if np.any(pairs < 0):
        raise ValueError(f"paddings must be non-negative, not {pairs.tolist()}")
    info = np.iinfo(x.dtype)
    pad_value = check_int("pad_value", pad_value, info.min, info.max)
    return np.pad(x, [tuple(int(v) for v in p) for p in pairs], constant_values=pad_value)


def concatenate(arrays, axis):
    """TFLite's ``CONCATENATION`` of quantized tensors with equal scales and zero points.

    TFLite's int8 kernel requires every input's quantization to be the output's, so the
    codes are copied unchanged; inputs share a dtype and all dimensions but ``axis``.
    """
    arrays = [np.asarray(a) for a in arrays]
    if not arrays:
        raise ValueError("arrays must hold at least one array, not none")
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) != 1:
        raise TypeError(f"arrays must share one dtype, not {sorted(map(str, dtypes))}")
    ndim = arrays[0].ndim
    axis = check_int("axis", axis, -ndim, ndim - 1) % ndim
    rest = {a.shape[:axis] + a.shape[axis + 1:] for a in arrays}
    if len(rest) != 1 or any(a.ndim != ndim for a in arrays):
        raise ValueError(f"arrays must agree on every dimension but axis {axis}, not shapes "
                         f"{[a.shape for a in arrays]}")
    return np.concatenate(arrays, axis=axis)
