"""gemmlowp / TensorFlow Lite fixed-point requantization, bit for bit, over numpy arrays.

Every function here mirrors a C++ routine of TFLite's reference kernels:

* :func:`quantize_multiplier` is ``QuantizeMultiplier`` (``quantization_util.cc``);
* :func:`saturating_rounding_doubling_high_mul` and :func:`rounding_divide_by_pot` are
  gemmlowp's ``SaturatingRoundingDoublingHighMul`` and ``RoundingDivideByPOT``;
* :func:`multiply_by_quantized_multiplier` is TFLite's double-rounding
  ``MultiplyByQuantizedMultiplier``;
* :func:`activation_range` is ``CalculateActivationRangeQuantized``.

Arithmetic is done in int64 so that no intermediate can overflow; results are int32.
Where C++ would overflow a signed int32 (the left shift ``x * (1 << left)`` in
``MultiplyByQuantizedMultiplier``), qmac defines the result as two's complement
wrap-around, which is what the compiled C++ does in practice and what the hardware does.
"""

import numpy as np

from ._validate import (
    check_bits,
    check_choice,
    check_int,
    check_int_array,
    check_scale,
    first_of,
    int_range,
)

__all__ = [
    "INT32_MIN", "INT32_MAX", "quantize_multiplier", "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot", "multiply_by_quantized_multiplier", "requantize",
    "activation_range", "round_half_away", "wrap", "real_multiplier", "requantize_fp64",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

#: Allowed range of the ``shift`` of :func:`multiply_by_quantized_multiplier`: a right
#: shift of more than 31 or a left shift of more than 30 has no meaning for int32.
SHIFT_MIN, SHIFT_MAX = -31, 30


def wrap(x, bits):
    """Wrap integers to ``bits``-wide two's complement (the accumulator's overflow rule).

    ``bits`` is 1..64; ``x`` must be integers (an int64 array results).
    """
    bits = check_bits("bits", bits, 1, 64)
    x = check_int_array("x", x)
    if bits >= 64:
        return x
    half = np.int64(1) << np.int64(bits - 1)
    return ((x + half) & ((half << np.int64(1)) - np.int64(1))) - half


def round_half_away(x):
    """Round to the nearest integer, ties away from zero (C's ``std::round``).

    ``np.round`` rounds ties to even, which is not what TFLite's ``TfLiteRound`` does.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    whole = np.trunc(x)
    # x - trunc(x) is exact in binary floating point; floor(|x| + 0.5) is not (0.49999997).
    return whole + np.where(np.abs(x - whole) >= 0.5, np.sign(x), 0).astype(x.dtype)


def quantize_multiplier(real):
    """Split a real multiplier into ``(m0, shift)`` exactly as TFLite's ``QuantizeMultiplier``.

    ``real ~= m0 * 2**(shift - 31)`` with ``m0`` an int32 in ``[2**30, 2**31)`` (negated for a
    negative ``real``). The steps are those of the C++: ``frexp``, round half away from zero
    of ``q * 2**31``, the fix-up that turns ``q_fixed == 2**31`` into ``2**30`` with
    ``shift + 1``, and the flush of ``shift < -31`` to ``(0, 0)``. ``real == 0`` gives ``(0, 0)``.

    Parameters
    ----------
    real : float or array_like of float
        Finite multiplier(s), typically ``s_in * s_w / s_out`` computed in double.

    Returns
    -------
    m0, shift : int32 scalars (for a scalar input) or int32 arrays of the input's shape.

    Raises
    ------
    TypeError
        If ``real`` is not real-valued.
    ValueError
        If any ``real`` is not finite.
    """
    arr = np.asarray(real)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating)
                                     or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"real multiplier must be a real number or array of them, not {real!r}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"real multiplier must be finite, not "
                         f"{first_of(arr, ~np.isfinite(arr))!r}")
    q, shift = np.frexp(arr)
    # q * 2**31 is exact in double (a power-of-two scaling), so this is TfLiteRound's input.
    q_fixed = round_half_away(q * float(1 << 31)).astype(np.int64)
    carry = q_fixed == (1 << 31)
    q_fixed = np.where(carry, q_fixed // 2, q_fixed)
    shift = shift.astype(np.int64) + carry
    flush = shift < -31
    q_fixed = np.where(flush, 0, q_fixed)
    shift = np.where(flush, 0, shift)
    m0, shift = q_fixed.astype(np.int32), shift.astype(np.int32)
    if arr.ndim == 0:
        return m0[()], shift[()]
    return m0, shift


def _int32_array(name, value):
    return check_int_array(name, value, INT32_MIN, INT32_MAX)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp's ``SaturatingRoundingDoublingHighMul``: ``round(a * b / 2**31)``.

    Ties round toward +infinity (the nudge is ``2**30`` for a non-negative product and
    ``1 - 2**30`` for a negative one, followed by C's truncating division). The only
    saturating case is ``INT32_MIN * INT32_MIN``, which gives ``INT32_MAX``.
    Element-wise with numpy broadcasting; int32 in, int32 out.
    """
    a = _int32_array("a", a)
    b = _int32_array("b", b)
    ab = a * b
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    total = ab + nudge
    # C++ division truncates toward zero; an arithmetic shift alone would floor.
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, high).astype(np.int32)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero.

    ``exponent`` is in ``0..31`` (scalar or array broadcasting against ``x``).
    """
    x = _int32_array("x", x)
    exponent = check_int_array("exponent", exponent, 0, 31)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return ((x >> exponent) + (remainder > threshold)).astype(np.int32)


def multiply_by_quantized_multiplier(x, m0, shift):
    """TFLite's ``MultiplyByQuantizedMultiplier`` with gemmlowp's two-step rounding.

    ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x << left, m0), right)`` with
    ``left = max(shift, 0)`` and ``right = max(-shift, 0)``. The left shift wraps in int32
    (two's complement) where C++ would overflow. ``shift`` is in ``-31..30``; ``m0`` is any
    int32. Element-wise with numpy broadcasting (per-channel ``m0``/``shift`` broadcast along
    the last axis of ``x`` when given as 1-D arrays of matching length).
    """
    x = _int32_array("x", x)
    m0 = _int32_array("m0", m0)
    shift = check_int_array("shift", shift, SHIFT_MIN, SHIFT_MAX)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap(x << left, 32)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, m0), right)


def requantize(acc, m0, shift, out_zero_point, act_min, act_max, out_bits=8, out_signed=True):
    """Requantize int32 accumulators to ``out_bits``-wide outputs, per column.

    ``clamp(MultiplyByQuantizedMultiplier(acc, m0[c], shift[c]) + out_zero_point,
    act_min, act_max)``, the output stage of TFLite's integer conv and fully-connected
    kernels. ``m0`` and ``shift`` are scalars (per tensor) or 1-D arrays with one entry per
    column of ``acc`` (per channel). The addition of the zero point is done in int32
    without saturation, as in TFLite.

    Raises
    ------
    ValueError
        If the zero point or clamp bounds do not fit ``out_bits``, if ``act_min > act_max``,
        or if per-channel parameters do not match the number of columns.
    """
    acc, out_bits, out_zero_point, act_min, act_max = _output_stage_args(
        acc, out_zero_point, act_min, act_max, out_bits, out_signed)
    m0 = _per_channel("m0", m0, acc)
    shift = _per_channel("shift", shift, acc)
    scaled = multiply_by_quantized_multiplier(acc, m0, shift).astype(np.int64)
    out = np.clip(wrap(scaled + out_zero_point, 32), act_min, act_max)
    return out.astype(_out_dtype(out_bits, out_signed))


def requantize_fp64(acc, multiplier, out_zero_point, act_min, act_max, out_bits=8,
                    out_signed=True):
    """Requantize int32 accumulators in double precision, as TFLite's reference FULLY_CONNECTED.

    ``clamp(int32(round_half_away(double(acc) * multiplier[c])) + out_zero_point, act_min,
    act_max)``: one IEEE double multiplication and C's ``round``, no fixed-point multiplier.
    This is what ``reference_integer_ops::FullyConnected`` does since TF 2.20 (public:
    tensorflow/tensorflow issue 119412); it differs from :func:`requantize` (gemmlowp's
    two-step rounding of a 31-bit multiplier) by one code on a few elements. Products past
    the int32 range (undefined behaviour in the C++) saturate to it.

    Parameters
    ----------
    acc : array_like of int32
    multiplier : float or 1-D array of float
        The real multiplier(s) in double, one per column of ``acc`` or one for all, e.g.
        :func:`real_multiplier` ``(x_scale, w_scale, y_scale)``.
    out_zero_point, act_min, act_max, out_bits, out_signed
        As in :func:`requantize`.
    """
    acc, out_bits, out_zero_point, act_min, act_max = _output_stage_args(
        acc, out_zero_point, act_min, act_max, out_bits, out_signed)
    multiplier = _per_channel("multiplier", check_scale("multiplier", multiplier), acc)
    scaled = round_half_away(acc.astype(np.float64) * multiplier.astype(np.float64))
    scaled = np.clip(scaled, INT32_MIN, INT32_MAX).astype(np.int64)
    out = np.clip(wrap(scaled + out_zero_point, 32), act_min, act_max)
    return out.astype(_out_dtype(out_bits, out_signed))


def _output_stage_args(acc, out_zero_point, act_min, act_max, out_bits, out_signed):
    """The checked arguments of an output stage: ``(acc, out_bits, out_zero_point, act_min,
    act_max)``, the zero point and clamp bounds within ``out_bits``, ``act_min <= act_max``."""
    out_bits = check_bits("out_bits", out_bits, 1, 16)
    lo, hi = int_range(out_bits, out_signed)
    acc = _int32_array("acc", acc)
    out_zero_point = check_int("out_zero_point", out_zero_point, lo, hi)
    act_min = check_int("act_min", act_min, lo, hi)
    act_max = check_int("act_max", act_max, lo, hi)
    if act_min > act_max:
        raise ValueError(f"act_min must not exceed act_max, not {act_min} > {act_max}")
    return acc, out_bits, out_zero_point, act_min, act_max


def _per_channel(name, value, acc):
    arr = np.asarray(value)
    if acc.ndim == 0 and arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar when acc is a scalar, not shape {arr.shape}")
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != acc.shape[-1]):
        raise ValueError(f"{name} must be a scalar or have one entry per column "
                         f"({acc.shape[-1]}), not shape {arr.shape}")
    return arr


def _out_dtype(bits, signed):
    if bits <= 8:
        return np.int8 if signed else np.uint8
    return np.int16 if signed else np.uint16


_ACTIVATIONS = ("linear", "relu", "relu6", "relu_n1_to_1")


def activation_range(activation, scale, zero_point, bits=8, signed=True):
    """Clamp bounds of a fused activation, as TFLite's ``CalculateActivationRangeQuantized``.

    ``quantize(f) = zero_point + int(round_half_away(float32(f) / float32(scale)))``;
    ``relu``: ``[max(qmin, quantize(0)), qmax]``; ``relu6``: also ``min(qmax, quantize(6))``;
    ``relu_n1_to_1``: ``[max(qmin, quantize(-1)), min(qmax, quantize(1))]``;
    ``linear``: ``[qmin, qmax]``. The division is done in float32, as in TFLite.

    Returns
    -------
    (act_min, act_max) : tuple of int
    """
    check_choice("activation", activation, _ACTIVATIONS)
    bits = check_bits("bits", bits, 1, 16)
    scale32 = np.float32(check_scale("scale", scale, np.float32))
    qmin, qmax = int_range(bits, signed)
    zero_point = check_int("zero_point", zero_point, qmin, qmax)

    def quantize(f):
        q = round_half_away(np.float32(f) / scale32)
        # A huge quotient is clamped below anyway; keep it out of int conversion trouble.
        return zero_point + int(max(min(float(q), 2.0 ** 31 - 1), -(2.0 ** 31)))

    if activation == "relu":
        return max(qmin, quantize(0.0)), qmax
    if activation == "relu6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == "relu_n1_to_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    return qmin, qmax


def real_multiplier(x_scale, w_scale, y_scale):
    """TFLite's effective output scale ``double(s_in) * double(s_w) / double(s_out)``.

    Each scale is first rounded to float32, as it is stored in a ``.tflite`` file, and must
    be positive and finite there.
    """
    x_scale = check_scale("x_scale", x_scale, np.float32).astype(np.float64)
    w_scale = check_scale("w_scale", w_scale, np.float32).astype(np.float64)
    y_scale = check_scale("y_scale", y_scale, np.float32).astype(np.float64)
    return x_scale * w_scale / y_scale


