"""TFLite's int8 SOFTMAX reference kernel, with gemmlowp's fixed-point exp and reciprocal."""

import numpy as np

from ._validate import check_scale
from .fixedpoint import (
    INT32_MAX,
    INT32_MIN,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap,
)

__all__ = ["quantized_softmax", "softmax_parameters", "exp_on_negative_values",
           "one_over_one_plus_x_for_x_in_0_1"]

# Integer bits of the fixed-point formats of TFLite's quantized softmax: the scaled input
# differences are Q5.26, the sum of exponentials Q12.19 (reference_ops::Softmax).
SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12

_srdhm = saturating_rounding_doubling_high_mul
_rdpot = rounding_divide_by_pot


def _add(a, b):
    # gemmlowp's int32 Add is a plain C++ addition: two's complement wrap-around.
    return wrap(np.asarray(a, dtype=np.int64) + b, 32)


def _saturating_shift_left(x, exponent):
    """gemmlowp's ``SaturatingRoundingMultiplyByPOT<exponent>`` for ``exponent > 0`` (int32)."""
    x = np.asarray(x, dtype=np.int64)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """``exp(a)`` for Q0.31 ``a`` in [-1/4, 0): gemmlowp's Taylor series around -1/8."""
    constant_term = 1895147668          # exp(-1/8) in Q0.31
    constant_1_over_3 = 715827883       # 1/3 in Q0.31
    x = _add(a, 1 << 28)                # a + 1/8
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdpot(x4, 2)
    tail = _rdpot(_add(_srdhm(_add(x4_over_4, x3), constant_1_over_3), x2), 1)
    return _add(constant_term, _srdhm(constant_term, _add(x, tail)))


# exp(-2**e) in Q0.31 for the bits of the integer part of -a (gemmlowp's barrel shifter).
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a, integer_bits=SCALED_DIFF_INTEGER_BITS):
    """gemmlowp's ``exp_on_negative_values``: ``exp(a)`` of a fixed-point ``a <= 0``.

    ``a`` holds raw int32 values of the format with ``integer_bits`` integer bits
    (Q``integer_bits``.``31 - integer_bits``); the result is raw Q0.31. The fractional part
    modulo 1/4 goes through a Taylor series; each set bit of the rest multiplies by a
    constant ``exp(-2**e)``; ``a == 0`` gives ``INT32_MAX`` (Q0.31's one) and, with more
    than 5 integer bits, ``a < -32`` gives 0.
    """
    a = np.asarray(a, dtype=np.int64)
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter
    rescaled = a_mod_quarter_minus_one_quarter
    if integer_bits > 0:
        rescaled = _saturating_shift_left(rescaled, integer_bits)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(rescaled)
    remainder = wrap(a_mod_quarter_minus_one_quarter - a, 32)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (fractional_bits + exponent)
            result = np.where(remainder & bit, _srdhm(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result).astype(np.int32)


def one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp's ``1 / (1 + a)`` for Q0.31 ``a`` in [0, 1): three Newton-Raphson steps.

    Raw int32 in (Q0.31), raw int32 out (Q0.31).
    """
    a = np.asarray(a, dtype=np.int64)
    total = a + INT32_MAX               # RoundingHalfSum(a, one): (a + b + sign) / 2, truncated
    total = total + np.where(total >= 0, 1, -1)
    half_denominator = np.sign(total) * (np.abs(total) // 2)
    constant_48_over_17 = 1515870810    # Q2.29
    constant_neg_32_over_17 = -1010580540
    x = _add(constant_48_over_17, _srdhm(half_denominator, constant_neg_32_over_17))
    for _ in range(3):
        half_denominator_times_x = _srdhm(half_denominator, x)
        one_minus = _add(1 << 29, -half_denominator_times_x.astype(np.int64))
        x = _add(x, _saturating_shift_left(_srdhm(x, one_minus), 2))
    return _saturating_shift_left(x, 1).astype(np.int32)


def _count_leading_zeros32(x):
    x = np.asarray(x, dtype=np.int64) & 0xFFFFFFFF
    length = np.zeros(x.shape, dtype=np.int64)
    for k in range(32):
        length += (x >> k) > 0
    return 32 - length


def _reciprocal(x, integer_digits):
    """TFLite's ``GetReciprocal``: ``(1 / x)`` as raw Q0.31 and the number of bits over one."""
    headroom_plus_one = _count_leading_zeros32(x)
    num_bits_over_unit = integer_digits - headroom_plus_one
    shifted = ((np.asarray(x, dtype=np.int64) << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    return one_over_one_plus_x_for_x_in_0_1(shifted), num_bits_over_unit


def softmax_parameters(beta, x_scale):
    """``(input_multiplier, input_left_shift, diff_min)`` as TFLite's Prepare computes them.

    ``PreprocessSoftmaxScaling``: ``QuantizeMultiplier(min(beta * x_scale * 2**26,
    2**31 - 1))`` in double, which must exceed 1 (a left shift); ``diff_min`` is
    ``-floor(31 * 2**26 / 2**left_shift)`` (``CalculateInputRadius``): a difference from the
    row's maximum below it gives exp 0. ``beta`` and ``x_scale`` are float32 in a model.

    Raises
    ------
    ValueError
        If ``beta * x_scale * 2**26`` is not above 1 (TFLite refuses such a model too).
    """
    beta64 = np.float64(np.float32(check_scale("beta", beta, np.float32)))
    scale64 = np.float64(np.float32(check_scale("x_scale", x_scale, np.float32)))
    real = min(beta64 * scale64 * float(1 << (31 - SCALED_DIFF_INTEGER_BITS)),
               float((1 << 31) - 1))
    if not real > 1.0:
        raise ValueError(f"beta * x_scale must exceed 2**-26 for an int8 softmax, not "
                         f"{float(beta)!r} * {float(x_scale)!r}")
    multiplier, left_shift = quantize_multiplier(real)
    radius = np.floor(((1 << SCALED_DIFF_INTEGER_BITS) - 1)
                      * float(1 << (31 - SCALED_DIFF_INTEGER_BITS)) / float(1 << int(left_shift)))
    return int(multiplier), int(left_shift), -int(radius)


def quantized_softmax(x, *, x_scale, beta=1.0):
    """TFLite's int8 ``SOFTMAX`` (reference kernel, ``reference_ops::Softmax``), bit for bit.

    Along the last axis: ``d = x - max(x)``; where ``d >= diff_min``
    (:func:`softmax_parameters`) ``d`` is scaled to Q5.26 by ``SaturatingRoundingDoublingHighMul
    (d << left_shift, multiplier)``, ``e = exp_on_negative_values(d)`` (Q0.31) and
    ``sum += RoundingDivideByPOT(e, 12)`` (Q12.19); the reciprocal of the sum comes from
    ``GetReciprocal`` (Newton-Raphson, Q0.31, and ``b`` bits over one); each output is
    ``RoundingDivideByPOT(SRDHM(reciprocal, e), b + 23) - 128`` clamped to int8, and -128
    where ``d < diff_min``. The input zero point cancels in ``d``. The output is quantized
    with scale 1/256 and zero point -128, which TFLite requires of an int8 softmax.

    Parameters
    ----------
    x : int8 array, at least 1-D
    x_scale : float
        The input scale (float32 in a model).
    beta : float
        Softmax's inverse temperature (float32 in a model).

    Returns
    -------
    numpy.ndarray of int8, ``x``'s shape
    """
    arr = np.asarray(x)
    if arr.dtype != np.int8:
        raise TypeError(f"x must be an int8 array, not an array of dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last axis, not shape {arr.shape}")
    multiplier, left_shift, diff_min = softmax_parameters(beta, x_scale)
    diff = arr.astype(np.int64) - arr.max(axis=-1, keepdims=True)
    used = diff >= diff_min
    scaled = _srdhm(wrap(np.where(used, diff, 0) << left_shift, 32), multiplier)
    exps = exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS)
    rescaled = np.where(used, _rdpot(exps, ACCUMULATION_INTEGER_BITS), 0)
    sum_of_exps = wrap(rescaled.sum(axis=-1, keepdims=True), 32)
    reciprocal, bits_over_unit = _reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
    exponent = bits_over_unit + 31 - 8
    if np.any((exponent < 0) | (exponent > 31)):
        raise ValueError("softmax's sum of exponentials is out of TFLite's range "
                         f"(exponent {int(exponent.min())}..{int(exponent.max())}, allowed 0..31)")
    unsaturated = _rdpot(_srdhm(reciprocal, exps), np.broadcast_to(exponent, exps.shape))
    out = np.clip(unsaturated.astype(np.int64) - 128, -128, 127)
    return np.where(used, out, -128).astype(np.int8)
