"""TFLite's integer pooling and MEAN reference kernels: max and average pooling, quantized mean."""

import numpy as np

from ._validate import check_choice, check_int, check_zero_point, int_range
from .conv import _pair, conv_output_shape
from .fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap

__all__ = ["max_pool2d", "average_pool2d", "quantized_mean", "mean_multiplier"]

_PADDINGS = ("VALID", "SAME")
_INT_TYPES = {np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)}


def _check_pool_input(x, act_min, act_max):
    arr = np.asarray(x)
    if arr.dtype not in _INT_TYPES:
        raise TypeError(f"x must be an int8, uint8 or int16 array, not an array of dtype "
                        f"{arr.dtype}")
    if arr.ndim != 4:
        raise ValueError(f"x must be NHWC with 4 dimensions, not shape {arr.shape}")
    info = np.iinfo(arr.dtype)
    act_min = info.min if act_min is None else check_int("act_min", act_min, info.min, info.max)
    act_max = info.max if act_max is None else check_int("act_max", act_max, info.min, info.max)
    if act_min > act_max:
        raise ValueError(f"act_min must not exceed act_max, not {act_min} > {act_max}")
    return arr, act_min, act_max


def _windows(padded, kh, kw, sh, sw, oh, ow):
    """Yield the (N, oh, ow, C) slice of ``padded`` under each of the kh x kw filter taps."""
    for i in range(kh):
        for j in range(kw):
            yield padded[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :]


def _geometry(x, filter, stride, padding):
    check_choice("padding", padding, _PADDINGS)
    kh, kw = _pair("filter", filter)
    sh, sw = _pair("stride", stride)
    _, h, w, _ = x.shape
    oh, ow, (pt, pb), (pl, pr) = conv_output_shape(h, w, (kh, kw), (sh, sw), padding)
    if oh == 0 or ow == 0:
        raise ValueError(f"filter {kh}x{kw} with VALID padding does not fit an input of "
                         f"{h}x{w}")
    return kh, kw, sh, sw, oh, ow, ((0, 0), (pt, pb), (pl, pr), (0, 0))


def max_pool2d(x, filter, stride=1, padding="VALID", act_min=None, act_max=None):
    """TFLite's integer ``MAX_POOL_2D``: the largest code in each window, then the clamp.

    Windows follow TensorFlow's padding rule (:func:`golden.conv.conv_output_shape`);
    padded taps are skipped (they hold the type's lowest value here, which is TFLite's
    initial maximum). Quantization passes through unchanged (TFLite's integer kernel
    assumes the output's scale and zero point equal the input's).

    Parameters
    ----------
    x : int8, uint8 or int16 array (N, H, W, C)
    filter, stride : int or (int, int)
    padding : "VALID" or "SAME"
    act_min, act_max : int, optional
        The fused activation's clamp (:func:`golden.fixedpoint.activation_range`); the
        type's range by default.

    Returns
    -------
    numpy.ndarray of ``x``'s dtype, shape (N, out_h, out_w, C)
    """
    x, act_min, act_max = _check_pool_input(x, act_min, act_max)
    kh, kw, sh, sw, oh, ow, pads = _geometry(x, filter, stride, padding)
    padded = np.pad(x, pads, constant_values=np.iinfo(x.dtype).min)
    out = None
    for window in _windows(padded, kh, kw, sh, sw, oh, ow):
        out = window.copy() if out is None else np.maximum(out, window)
    return np.clip(out, act_min, act_max).astype(x.dtype)


def average_pool2d(x, filter, stride=1, padding="VALID", act_min=None, act_max=None):
    """TFLite's integer ``AVERAGE_POOL_2D``: the rounded mean of each window's valid taps.

    ``sum`` over the taps inside the input (padded taps are not counted), ``count`` of
    them, then C's rounding division of TFLite's reference kernel:
    ``(sum + count / 2) / count`` for a positive sum, ``(sum - count / 2) / count``
    otherwise, both truncating toward zero (ties go away from zero), then the clamp.
    Quantization passes through unchanged, as in :func:`max_pool2d`.

    Parameters and return value as :func:`max_pool2d`.
    """
    x, act_min, act_max = _check_pool_input(x, act_min, act_max)
    kh, kw, sh, sw, oh, ow, pads = _geometry(x, filter, stride, padding)
    padded = np.pad(x.astype(np.int64), pads)
    inside = np.pad(np.ones((1,) + x.shape[1:3] + (1,), dtype=np.int64), pads)
    total = np.zeros((x.shape[0], oh, ow, x.shape[3]), dtype=np.int64)
    count = np.zeros((1, oh, ow, 1), dtype=np.int64)
    for window, mask in zip(_windows(padded, kh, kw, sh, sw, oh, ow),
                            _windows(inside, kh, kw, sh, sw, oh, ow), strict=True):
        total += window
        count += mask
    if np.any(count == 0):
        raise ValueError("every pooling window must overlap the input; one lies wholly in "
                         "the padding")
    half = count // 2
    numerator = np.where(total > 0, total + half, total - half)
    mean = np.sign(numerator) * (np.abs(numerator) // count)
    return np.clip(mean, act_min, act_max).astype(x.dtype)


def mean_multiplier(x_scale, y_scale, count):
    """``(m0, shift)`` of TFLite's quantized MEAN over ``count`` elements.

    ``QuantizeMultiplier(double(x_scale) / double(y_scale))`` gives ``(m, s)``; the
    division by ``count`` is folded in with ``k = min(floor(log2(count)), 32, 31 + s)``:
    ``m0 = (m << k) / count`` (integer division) and ``shift = s - k``, as
    ``reference_ops::QuantizedMeanOrSum`` does.
    """
    count = check_int("count", count, 1)
    real = np.float64(np.float32(x_scale)) / np.float64(np.float32(y_scale))
    m, s = quantize_multiplier(real)
    m, s = int(m), int(s)
    k = min(count.bit_length() - 1, 32, 31 + s)
    return int(np.int32((m << k) // count)), s - k


def quantized_mean(x, axis, keep_dims=False, *, x_scale, x_zero_point, y_scale, y_zero_point):
    """TFLite's quantized ``MEAN`` (reference kernel), bit for bit.

    The raw codes are summed over ``axis`` in int32, the input zero point is taken off once
    per element (``sum - x_zp * count``, wrapped to int32), and the result is rescaled by
    :func:`mean_multiplier` with gemmlowp's two-step rounding, moved to ``y_zero_point``
    and clamped to the output type's range (no fused activation). Negative axes count from
    the end; repeated axes count once.

    Parameters
    ----------
    x : int8, uint8 or int16 array
    axis : int or sequence of int
    keep_dims : bool
        Keep the reduced axes as size 1.
    x_scale, y_scale : float
    x_zero_point, y_zero_point : int, in the range of ``x``'s type

    Returns
    -------
    numpy.ndarray of ``x``'s dtype
    """
    arr = np.asarray(x)
    if arr.dtype not in _INT_TYPES:
        raise TypeError(f"x must be an int8, uint8 or int16 array, not an array of dtype "
                        f"{arr.dtype}")
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    resolved = sorted({check_int("axis", a, -arr.ndim, arr.ndim - 1) % arr.ndim for a in axes})
    if not resolved:
        raise ValueError("axis must name at least one axis to reduce, not none")
    info = np.iinfo(arr.dtype)
    bits, signed = info.bits, info.min < 0
    x_zero_point = int(check_zero_point("x_zero_point", x_zero_point, bits, signed))
    y_zero_point = int(check_zero_point("y_zero_point", y_zero_point, bits, signed))
    count = int(np.prod([arr.shape[a] for a in resolved]))
    if count == 0:
        raise ValueError(f"x must not be empty along the reduced axes, not shape {arr.shape}")
    m0, shift = mean_multiplier(x_scale, y_scale, count)
    total = wrap(arr.astype(np.int64).sum(axis=tuple(resolved), keepdims=keep_dims), 32)
    centred = wrap(total - x_zero_point * count, 32)
    scaled = multiply_by_quantized_multiplier(centred, m0, shift).astype(np.int64)
    lo, hi = int_range(bits, signed)
    out = np.clip(wrap(scaled + y_zero_point, 32), lo, hi)
    return out.astype(arr.dtype)
